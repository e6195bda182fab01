"""The gates a run passes before it changes anything: the change window and promotion.

Change window: days and hours in a named timezone (zoneinfo, so daylight
saving time is handled by the tz database, not by hand). Promotion: the same
migration file (same checksum) must have been rolled out, verified and
rehearsed in each earlier environment, as their evidence records show.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import evidence

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class GateError(Exception):
    """A gate configured wrongly: the message says what to fix."""


@dataclass
class Window:
    days: list[str] = field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    start: str = "10:00"
    end: str = "12:00"
    timezone: str = "UTC"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        unknown = set(data) - {"days", "start", "end", "timezone"}
        if unknown:
            raise GateError(f"change window: unknown key(s) {sorted(unknown)}; use days, start, end, timezone")
        window = cls(**data)
        window.days = [str(d).lower()[:3] for d in window.days]
        bad = [d for d in window.days if d not in DAYS]
        if bad or not window.days:
            raise GateError(f"change window: days must be some of {', '.join(DAYS)} (got {window.days})")
        if _parse_time(window.start) >= _parse_time(window.end):
            raise GateError(f"change window: start {window.start} must be before end {window.end} (same day)")
        try:
            ZoneInfo(window.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise GateError(f"change window: unknown timezone {window.timezone!r} (use an IANA name such as "
                            "UTC or Europe/Berlin)") from exc
        return window

    def describe(self) -> str:
        return f"{','.join(self.days)} {self.start}-{self.end} {self.timezone}"


def _parse_time(value: str) -> datetime.time:
    try:
        return datetime.time.fromisoformat(str(value))
    except ValueError as exc:
        raise GateError(f"change window: {value!r} is not a time such as 10:00") from exc


def parse_now(value: str | None) -> datetime.datetime:
    """An aware datetime: `value` (ISO 8601 with an offset) or the current time."""
    if not value:
        return datetime.datetime.now(datetime.UTC)
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise GateError(f"now {value!r} has no UTC offset: write it like 2026-12-01T10:30:00Z")
    return moment


def in_window(window: Window, now: datetime.datetime) -> tuple[bool, str]:
    """Whether `now` falls inside the window, and the local time it was judged at."""
    local = now.astimezone(ZoneInfo(window.timezone))
    inside = (DAYS[local.weekday()] in window.days
              and _parse_time(window.start) <= local.time().replace(tzinfo=None) < _parse_time(window.end))
    return inside, local.strftime(f"%a %H:%M {window.timezone}")


# What makes each kind of promotion evidence, for the refusal to name.
EVIDENCE_COMMANDS = {"rollout": "ansible-playbook rollout.yml -i inventories/{env}",
                     "rehearsal": "ansible-playbook rehearse.yml -i inventories/{env}"}


def promotion_missing(evidence_root: str, environments: list[str],
                      migrations: list[dict[str, str]], signing_key: str = "", allow_dirty: bool = False) -> list[str]:
    """What the earlier environments' evidence lacks, one line per gap, each naming the command that makes it;
    empty when promotion may go on.

    With `signing_key`, a record counts only if its signature verifies with that key. A record written
    from a work tree with uncommitted changes (git_dirty) counts only with `allow_dirty`."""
    missing = []
    for migration in migrations:
        label = f"{migration['version']}_{migration.get('name', '')} ({migration['checksum'][:12]})"
        for env in environments:
            folder = f"{evidence_root}/{env}"
            for kind, what in (("rollout", "rolled out and verified"), ("rehearsal", "rehearsed")):
                found = evidence.find(folder, kind=kind, outcome="succeeded", checksum=migration["checksum"],
                                      signing_key=signing_key)
                clean = [r for r in found if allow_dirty or r.get("git_dirty") is not True]
                if clean:
                    continue
                signed = " signed with this key" if signing_key else ""
                dirty = (f"; {len(found)} record(s) were written from a work tree with uncommitted changes "
                         "(git_dirty), which count only with pgrollout_promotion_allow_dirty=true") if found else ""
                command = EVIDENCE_COMMANDS[kind].format(env=env)
                missing.append(f"{label} was not {what} in {env} (no succeeded {kind} record{signed} in {folder}"
                               f"{dirty}): run `{command}` from a clean checkout first")
    return missing


# pgrollout_gates' options: the module and its action plugin (controller side: the evidence it reads is there).
ARGUMENT_SPEC: dict[str, Any] = {
    "window": {"type": "dict", "default": {}},
    "now": {"type": "str"},
    "window_override": {"type": "bool", "default": False},
    "window_override_reason": {"type": "str", "default": ""},
    "evidence_root": {"type": "path"},
    "promotion_environments": {"type": "list", "elements": "str", "default": []},
    "migrations": {"type": "list", "elements": "dict", "default": []},
    "promotion_override": {"type": "bool", "default": False},
    "promotion_override_reason": {"type": "str", "default": ""},
    "signing_key": {"type": "str", "default": "", "no_log": True},
    "allow_dirty": {"type": "bool", "default": False},
    # where a backup is required, a run without one is refused first
    "backup": {"type": "bool", "default": True},
    "backup_required": {"type": "bool", "default": False},
    "environment": {"type": "str", "default": ""},
}


def judge(p: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """The gates' result: refused (failed, outside a dry run) or passed, with every override recorded."""
    for needed in ("window_override", "promotion_override"):
        if p[needed] and not p[needed + "_reason"]:
            return {"failed": True, "changed": False, "msg": f"{needed} needs {needed}_reason"}
    if p["backup_required"] and not p["backup"]:
        return {"failed": True, "changed": False, "failure_kind": "refused",
                "refused_by": "Refuse to change without a backup where one is required",
                "msg": f"A backup is required in {p['environment']}: pgrollout_backup cannot be false here."}
    refusals: list[str] = []
    overrides: list[dict[str, Any]] = []
    window_report: dict[str, Any] = {}
    try:
        if p["window"]:
            window = Window.from_dict(p["window"])
            inside, local = in_window(window, parse_now(p["now"]))
            window_report = {"window": window.describe(), "judged_at": local, "inside": inside}
            if p["now"]:  # a time other than the clock's is never silent: it is recorded like an override
                overrides.append({"gate": "clock", "reason": f"window judged at the given time {p['now']}",
                                  "judged_at": local})
            if not inside and p["window_override"]:
                overrides.append({"gate": "change_window", "reason": p["window_override_reason"],
                                  "judged_at": local})
            elif not inside:
                refusals.append(f"outside the change window ({window.describe()}; it is {local}): run inside "
                                "it, or set pgrollout_window_override=true with pgrollout_window_override_reason")
        if p["promotion_environments"] and p["migrations"]:
            missing = promotion_missing(p["evidence_root"], p["promotion_environments"], p["migrations"],
                                        p["signing_key"], p["allow_dirty"])
            if missing and p["promotion_override"]:
                overrides.append({"gate": "promotion", "reason": p["promotion_override_reason"], "missing": missing})
            elif missing:
                refusals += [f"promotion: {m}" for m in missing]
    except (GateError, ValueError) as exc:
        return {"failed": True, "changed": False, "msg": str(exc)}
    out = {"changed": False, "refusals": refusals, "overrides": overrides, "window": window_report}
    if refusals and not check_mode:
        return {**out, "failed": True, "msg": "refused: " + "; ".join(refusals)}
    return {**out, "msg": "; ".join(refusals) if refusals else "gates passed"
            + (f" with {len(overrides)} override(s)" if overrides else "")}
