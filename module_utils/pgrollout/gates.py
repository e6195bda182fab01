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
