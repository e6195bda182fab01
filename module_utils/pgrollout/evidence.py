"""The evidence record of a run: a versioned JSON document and a Markdown summary.

Built from the registered results of the roles, keeping only the fields an
auditor needs (never a module's invocation, which carries its arguments), and
scrubbed of every secret passed in as a last line of defence.
"""
from __future__ import annotations

import datetime
import getpass
import hashlib
import hmac
import json
import os
import platform
import re
import subprocess
from typing import Any

from .timeline import mermaid, svg

SCHEMA_VERSION = 1
MIGRATION_FIELDS = ("version", "name", "path", "direction", "checksum", "changed", "statements", "duration_ms",
                    "lock_hold_ms", "locks", "attempts", "schema_changes", "msg", "error", "checks_summary",
                    "dry_run", "transactional", "dry_runnable", "too_slow_to_dry_run", "drift_accepted", "spec",
                    "notes", "failed", "lock_report")
LEASE_FIELDS = ("event", "holder", "leftovers", "msg")
BACKUP_FIELDS = ("path", "manifest", "format", "sha256", "size_bytes", "database_size_bytes", "table_count",
                 "validated", "removed", "msg")
REHEARSAL_FIELDS = ("rehearsal", "msg")
RESTORE_FIELDS = ("path", "sha256", "drop_first", "tables", "discard_report", "msg")
CHECK_FIELDS = ("name", "spec", "severity", "status", "expected", "actual", "error")


# pgrollout_evidence's options: the module and its action plugin (controller side) share them.
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "dir": {"type": "path", "required": True},
    "run_id": {"type": "str", "required": True},
    "kind": {"type": "str", "choices": ["rollout", "rollback", "rehearsal", "baseline", "repair"],
             "default": "rollout"},
    "environment": {"type": "str", "required": True},
    "host": {"type": "str", "required": True},
    "started_at": {"type": "str", "required": True},
    "dry_run": {"type": "bool", "default": False},
    "steps": {"type": "dict", "default": {}},
    "failure": {"type": "dict"},
    "repo_dir": {"type": "path"},
    "tool_versions": {"type": "dict", "default": {}},
    "marks": {"type": "dict", "default": {}},
    "redact": {"type": "list", "elements": "str", "default": [], "no_log": True},
    "signing_key": {"type": "str", "default": "", "no_log": True},
    "outcome_log": {"type": "path", "default": ""},
    "probe": {"type": "bool", "default": False},
    # whether a failed rollout would have been rolled back (pgrollout_auto_rollback): the failure note says so
    "auto_rollback": {"type": "bool", "default": True},
}
# Free space the evidence folder needs when a run starts (a record with its Markdown, SVG and JUnit is tens of kB).
EVIDENCE_FREE_BYTES = 10 * 2**20


def _pick(result: dict[str, Any] | None, fields: tuple[str, ...]) -> dict[str, Any] | None:
    if not result or result.get("skipped"):
        return None
    return {k: result[k] for k in fields if k in result}


def _checks(result: dict[str, Any] | None, spec: str | None) -> dict[str, Any] | None:
    if not result or result.get("skipped"):
        return None
    specs = sorted({r["spec"] for r in result.get("results", []) if r.get("spec")})
    return {"spec": spec or ", ".join(specs) or None, "passed": result.get("passed"),
            "failed": result.get("not_passed"), "results": [_pick(r, CHECK_FIELDS) for r in result.get("results", [])]}


def _migrations(steps: dict[str, Any]) -> list[dict[str, Any]]:
    results = [*(steps.get("migrate") or {}).get("results", []), *(steps.get("rollback") or {}).get("results", [])]
    picked = [entry for entry in (_pick(r, MIGRATION_FIELDS) for r in results if r) if entry]
    for entry in picked:
        # a change without a spec: audited, but not verified (pgrollout_require_verification decides)
        entry["verified"] = bool(entry.get("spec")) if entry.get("changed") else None
    return picked


# Every run ends in one of these (README, "Outcomes"); a pipeline reads it from the summary line.
OUTCOMES = ("succeeded", "no_change", "refused", "failed_rolled_back", "failed_not_rolled_back",
            "failed_partially_applied", "dry_run")
# A failure while one of these steps ran stopped the run before it changed anything (lease and gates
# run inside the preflight step, the backup only reads the target).
BEFORE_CHANGE = ("start", "preflight", "backup")


def changed_here(steps: dict[str, Any], kind: str) -> list[str]:
    """Versions this run changed on the target (a rehearsal changes only its scratch database)."""
    if kind == "rehearsal":
        return []
    changed = [str(m.get("version")) for m in _migrations(steps) if m.get("changed") and not m.get("dry_run")]
    ledger = steps.get("ledger") or {}
    if ledger.get("changed"):
        changed += [str(ledger.get("version") or ledger.get("mark") or "ledger")]
    if (steps.get("restore") or {}).get("changed"):
        changed.append("restore")
    return list(dict.fromkeys(changed))  # a version applied and rolled back in one run is listed once


def partially_applied(steps: dict[str, Any]) -> dict[str, Any] | None:
    """What a failed file left on the target (pg_migrate's `partial`), going forward or back."""
    return (steps.get("migrate") or {}).get("partial") or (steps.get("rollback") or {}).get("partial")


def last_step(marks: dict[str, str] | None) -> str:
    return max(marks.items(), key=lambda item: item[1])[0] if marks else "start"


def outcome(failure: dict[str, Any] | None, dry_run: bool, steps: dict[str, Any] | None = None,
            marks: dict[str, str] | None = None, kind: str = "rollout") -> str:
    """One of OUTCOMES. failed_rolled_back: the target is as before the run (the failed file's transaction,
    or the automatic rollback, undid it); failed_not_rolled_back: what this run changed is still there."""
    steps = steps or {}
    changed = changed_here(steps, kind)
    if not failure:
        return "dry_run" if dry_run else ("succeeded" if changed or kind == "rehearsal" else "no_change")
    if partially_applied(steps) and not dry_run and kind != "rehearsal":
        return "failed_partially_applied"
    if dry_run or (not changed and last_step(marks) in BEFORE_CHANGE):
        return "refused"
    undone = kind == "rollout" and bool(steps.get("rollback_path"))
    return "failed_rolled_back" if undone or not changed else "failed_not_rolled_back"


def timings(marks: dict[str, str], finished: datetime.datetime) -> list[dict[str, Any]]:
    """Each step's start and seconds, from the time marks the play set at step boundaries."""
    starts = sorted(((datetime.datetime.fromisoformat(v.replace("Z", "+00:00")), k) for k, v in marks.items()))
    ends = [at for at, _unused in starts[1:]] + [finished] if starts else []
    return [{"step": step, "started_at": at.isoformat(timespec="milliseconds"),
             "seconds": round((end - at).total_seconds(), 3)} for (at, step), end in zip(starts, ends, strict=True)]


def build_record(*, run_id: str, kind: str, environment: str, host: str, started_at: str,
                 dry_run: bool, steps: dict[str, Any], failure: dict[str, Any] | None,
                 context: dict[str, Any], marks: dict[str, str] | None = None) -> dict[str, Any]:
    preflight = (steps.get("preflight") or {}).get("facts") or {}
    finished = datetime.datetime.now(datetime.UTC)
    gates = steps.get("gates") or {}
    ended = outcome(failure, dry_run, steps, marks, kind)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "kind": kind,
        "environment": environment,
        "host": host,
        "outcome": ended,
        "refused_by": (failure or {}).get("task") if ended == "refused" else None,
        "changed": changed_here(steps, kind),
        "dry_run": dry_run,
        "started_at": started_at,
        "finished_at": finished.isoformat(timespec="seconds"),
        "timings": timings(marks or {}, finished),
        **context,
        "target": {
            "server_version": preflight.get("server_version"),
            "database": preflight.get("database"),
            "applied_before": (preflight.get("migrations") or {}).get("applied"),
            "pending_before": (preflight.get("migrations") or {}).get("pending"),
            "target_version": (preflight.get("migrations") or {}).get("target_version"),
            "not_run_beyond_target": (preflight.get("migrations") or {}).get("beyond_target") or [],
            "long_running_sessions": preflight.get("long_running_sessions"),
            # runs that changed the target and never finished (killed): their changes have no record
            "unfinished_runs": preflight.get("unfinished_runs") or [],
            # pgrollout's extension stubs met (they send nothing): a run on one is named so
            "extension_stubs": preflight.get("extension_stubs") or [],
        },
        # the catalog against the last changing run's snapshot: one entry per drifted object
        "schema_drift": preflight.get("schema_drift"),
        "backup": _pick(steps.get("backup"), BACKUP_FIELDS),
        "backup_rehearsal": _pick(steps.get("backup_rehearsal"), REHEARSAL_FIELDS),
        "restore": _pick(steps.get("restore"), RESTORE_FIELDS),
        "lease": _pick(steps.get("lease"), LEASE_FIELDS),
        "migrations": _migrations(steps),
        "partially_applied": partially_applied(steps),
        # a dry run's stand-in for the verify step: the checks the run verifies after its commit
        "dry_run_after_commit": _pick((steps.get("migrate") or {}).get("after_commit"),
                                      ("specs", "lasting_specs", "checks_summary")) if dry_run else None,
        "unverified": [m["version"] for m in _migrations(steps) if m.get("changed") and not m.get("spec")],
        "rollback": None if not steps.get("rollback_path") and not steps.get("rollback_script_failure") else {
            "path_taken": steps.get("rollback_path"), "script_failure": steps.get("rollback_script_failure")},
        "verification": _checks(steps.get("verify"), None),
        "audit": _checks(steps.get("verify_audit") or steps.get("rollback_verify_audit"),
                         "verification/security_audit.yml"),
        "acknowledged_warnings": steps.get("acknowledged_warnings") or [],
        "gates": None if not gates or gates.get("skipped") else {
            "window": gates.get("window"), "refusals": gates.get("refusals"), "overrides": gates.get("overrides")},
        "overrides": gates.get("overrides") or [],
        "rollback_verification": _checks(steps.get("rollback_verify"), None),
        "rollback_audit": _checks(steps.get("rollback_verify_audit"), "verification/security_audit.yml"),
        "lint": _pick(steps.get("lint"), ("findings", "blocking", "summary")),
        "watch": None if not _pick(steps.get("watch"), ("series",)) else {
            **_pick(steps.get("watch"), ("series", "peaks", "breaches", "msg")),
            "baseline": (_pick(steps.get("watch_baseline"), ("peaks",)) or {}).get("peaks")},
        "ledger": _pick(steps.get("ledger"), ("recorded", "already", "version", "mark", "reason", "msg")),
        "allowed_out_of_order": steps.get("allowed_out_of_order") or None,
        "rehearsal": [{k: step.get(k) for k in ("step", "ok", "msg", "summary") if k in step}
                      for step in steps.get("rehearsal") or []] or None,
        "failure": failure,
    }


def _applied_up(record: dict[str, Any]) -> list[str]:
    """Versions the record shows this run applied going forward (not rolled back, not dry-run)."""
    return [str(m.get("version")) for m in record.get("migrations") or []
            if m.get("changed") and not m.get("dry_run") and m.get("direction", "up") == "up"]


def failure_note(record: dict[str, Any], auto_rollback: bool = True) -> str:
    """What a failed rollout left on the target, said from the record (what each step reported), never
    "Nothing was changed" unless the steps that ran show that nothing was."""
    failure = record.get("failure")
    if not failure or record.get("kind") != "rollout":
        return ""
    if record.get("dry_run"):
        return "Nothing was changed (a dry run)."
    partial = record.get("partially_applied")
    path = (record.get("rollback") or {}).get("path_taken")
    applied = _applied_up(record)
    if partial:
        kept = [v for v in applied if v != str(partial.get("version"))]
        note = [str(partial.get("msg") or "")]
        if kept and not path:
            note.append(f"Applied before it and kept, not rolled back under it: {', '.join(kept)}.")
        if path:
            note.append(f"Rolled back automatically ({path}) what this run had applied before it.")
        return " ".join(note)
    if path:
        return f"Rolled back automatically ({path}); the database is at its state before this run."
    if record.get("outcome") == "failed_not_rolled_back":
        versions = ", ".join(record.get("changed") or applied)
        if failure.get("keep_applied"):
            why = f": this stop keeps what was applied and verified ({failure.get('kind')})."
        elif not auto_rollback:
            why = " (pgrollout_auto_rollback is off)."
        else:
            why = ": the rollback failed too (above)."
        return f"This run applied {versions} and did NOT roll back{why}"
    return "Nothing was changed."


def end_message(record: dict[str, Any], json_path: str, auto_rollback: bool = True) -> str:
    """The message a failed run ends with: the step, its message, what it left, and where the record is."""
    failure = record.get("failure") or {}
    note = failure_note(record, auto_rollback)
    said = str(failure.get("msg") or "failed").removesuffix(".")
    return (f"{record['kind'].capitalize()} failed at '{failure.get('task')}': {said}. "
            f"{note + ' ' if note else ''}Evidence: {json_path}")


NOTIFIED_OK = ("succeeded", "no_change", "dry_run")


def notify_text(record: dict[str, Any]) -> str:
    """The webhook's line: outcome, where it failed, the path a rollback took, the run id."""
    path = (record.get("rollback") or {}).get("path_taken")
    failure = record.get("failure")
    text = f"{record['environment']}/{record['host']}: {record['kind']} {record['outcome']}"
    if path and record["kind"] == "rollback":
        text += f" by {path}"
    if failure:
        text += f" at {failure.get('task')}"
    if path and record["kind"] == "rollout":
        text += f", rolled back by {path}"
    mark = ":white_check_mark:" if record["outcome"] in NOTIFIED_OK else ":x:"
    return f"{mark} pgrollout {text} ({record['run_id']})"


def redact(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "********")
    # libpq URLs that carry a password: postgresql://user:password@host
    return re.sub(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@", r"\1********@", text)


def _redact_values(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _redact_values(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_values(v, secrets) for v in value]
    return redact(value, secrets) if isinstance(value, str) else value


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# {record['kind'].capitalize()} {record['run_id']}: {record['outcome'].upper()}",
        "",
        f"- environment: {record['environment']}, host: {record['host']}",
        f"- operator: {record.get('operator')}, git commit: {record.get('git_commit')}",
        f"- started {record['started_at']}, finished {record['finished_at']}",
        f"- server: PostgreSQL {record['target'].get('server_version')}, "
        f"database {record['target'].get('database')}",
        f"- applied before: {', '.join(record['target'].get('applied_before') or []) or 'none'}",
        "",
    ]
    backup = record.get("backup")
    lines += ["## Backup", "", f"- {backup.get('path')} sha256 {backup.get('sha256')}"
              if backup and backup.get("sha256") else f"- {(backup or {}).get('msg', 'none taken')}", ""]
    rehearsal = (record.get("backup_rehearsal") or {}).get("rehearsal")
    if rehearsal:
        lines[-1:-1] = [f"- restore rehearsed: {rehearsal['tables']} tables, {rehearsal['rows']} rows, "
                        f"{len(rehearsal['differences'])} differences"]
    if record.get("rollback"):
        rb, restore = record["rollback"], record.get("restore") or {}
        lines += ["## Rollback", "", f"- path taken: {rb.get('path_taken') or 'none completed'}"]
        if rb.get("script_failure"):
            lines.append(f"- rollback script failed: {rb['script_failure']}")
        if restore:
            lines.append(f"- restored {restore.get('msg')}; dropped first: {len(restore.get('drop_first') or [])}")
        lines.append("")
    lines += ["## Migrations", ""]
    for m in record["migrations"] or []:
        locks = ", ".join(f"{lk['relation']} {lk['mode']}" for lk in m.get("locks") or [])
        lines.append(f"- {m.get('version')}_{m.get('name')} ({m.get('checksum', '')[:12]}): {m.get('msg')}"
                     + (f"; {m.get('duration_ms')} ms" if m.get("duration_ms") is not None else "")
                     + (f"; locks held {m.get('lock_hold_ms')} ms" if m.get("lock_hold_ms") is not None else "")
                     + ("; UNVERIFIED (no spec)" if m.get("verified") is False else "")
                     + (f"; locks: {locks}" if locks else ""))
    if not record["migrations"]:
        lines.append("- nothing to apply")
    lines.append("")
    for title, key in (("Verification", "verification"), ("Security audit", "audit")):
        if record.get(key):
            lines += _checks_table(title, record[key])
    if record.get("acknowledged_warnings"):
        lines += ["## Acknowledged warnings", "", *[f"- {w}" for w in record["acknowledged_warnings"]], ""]
    if record.get("rehearsal"):
        lines += ["## Rehearsal", "", "| step | result | message |", "|---|---|---|"]
        lines += [f"| {r['step']} | {'ok' if r['ok'] else 'FAILED'} | {_cell(str(r.get('msg', '')))[:120]} |"
                  for r in record["rehearsal"]]
        lines.append("")
    if record.get("timings"):
        lines += ["## Steps", "", *[f"- {t['step']}: {t['seconds']} s (from {t['started_at']})"
                                    for t in record["timings"]], "", *mermaid(record), ""]
    if record.get("overrides"):
        lines += ["## Overrides", "", *[f"- {o['gate']}: {o['reason']}" for o in record["overrides"]], ""]
    if record.get("partially_applied"):
        lines += ["## Partially applied", "", f"- {record['partially_applied'].get('msg')}", ""]
    if record.get("failure"):
        lines += ["## Failure", "", f"- task: {record['failure'].get('task')}",
                  f"- kind: {record['failure'].get('kind') or 'step_failed'}",
                  f"- message: {record['failure'].get('msg')}", ""]
    return "\n".join(lines)


def _checks_table(title: str, checks: dict[str, Any]) -> list[str]:
    lines = [f"## {title} ({checks['spec']})", "", "| check | result | expected | actual |", "|---|---|---|---|"]
    for r in checks["results"]:
        status = r["status"] + (" (warn)" if r["severity"] == "warn" and r["status"] != "passed" else "")
        shown = ("", "") if r["status"] == "passed" else (
            json.dumps(r.get("expected"), default=str)[:80], json.dumps(r.get("actual") or r.get("error"),
                                                                        default=str)[:80])
        lines.append(f"| {r['name']} | {status} | {_cell(shown[0])} | {_cell(shown[1])} |")
    return [*lines, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _git(repo_dir: str, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", repo_dir, *args], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_commit(repo_dir: str) -> str | None:
    return (_git(repo_dir, "rev-parse", "HEAD") or "").strip() or None


def git_dirty(repo_dir: str) -> bool | None:
    """True when the working tree differs from the commit (what ran is not exactly what is recorded)."""
    status = _git(repo_dir, "status", "--porcelain", "--untracked-files=normal")
    return None if status is None else bool(status.strip())


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the record without its signature, keys sorted, no white space."""
    body = {k: v for k, v in record.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def sign(record: dict[str, Any], key: str) -> dict[str, Any]:
    digest = hmac.new(key.encode("utf-8"), canonical(record), hashlib.sha256).hexdigest()
    return {**record, "signature": {"alg": "hmac-sha256", "value": digest}}


def verified(record: dict[str, Any], key: str) -> bool:
    """The record carries an HMAC-SHA256 signature made with `key` over exactly its content."""
    signature = record.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != "hmac-sha256":
        return False
    expected = hmac.new(key.encode("utf-8"), canonical(record), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, str(signature.get("value", "")))


CHECK_SECTIONS = ("verification", "audit", "rollback_verification", "rollback_audit")


def check_counts(record: dict[str, Any]) -> tuple[int, int]:
    """(passed, run) over every check the run evaluated: its verification sections, and the checks that ran
    inside the files' transactions where nothing ran after them (a dry run) or on a scratch database (a rehearsal)."""
    checks = [r for key in CHECK_SECTIONS for r in (record.get(key) or {}).get("results") or []]
    lines: list[str] = []
    if record.get("kind") == "rehearsal":
        lines = [line for step in record.get("rehearsal") or [] for line in step.get("summary") or []]
    elif record.get("dry_run"):
        lines = [line for m in record.get("migrations") or [] for line in m.get("checks_summary") or []]
        lines += (record.get("dry_run_after_commit") or {}).get("checks_summary") or []
    passed = sum(1 for r in checks if r and r.get("status") == "passed") + sum(1 for x in lines if x.startswith("PASS"))
    return passed, len(checks) + len(lines)


def summary_line(record: dict[str, Any], json_path: str) -> str:
    """One line a pipeline reads: outcome first, then what changed, the checks, and where the record is."""
    passed, total = check_counts(record)
    parts = [record["outcome"], record["kind"], f"{record['environment']}/{record['host']}",
             f"run={record['run_id']}", f"changed={','.join(record.get('changed') or []) or '-'}",
             f"checks={passed}/{total}"]
    holds = [m.get("lock_hold_ms") for m in record.get("migrations") or [] if m.get("lock_hold_ms") is not None]
    if holds:
        parts.append(f"longest_lock_hold={max(holds)}ms")
    if record.get("refused_by"):
        parts.append(f"refused_by={json.dumps(record['refused_by'])}")
    return " ".join([*parts, f"evidence={json_path}"])


def _text(value: Any) -> str:
    """A message for people (JUnit's failure message), never a Python repr of a dict."""
    if isinstance(value, dict):
        said = [str(value[k]) for k in ("sqlstate", "message", "msg", "error", "statement") if value.get(k)]
        return ": ".join(said) if said else json.dumps(value, default=str, sort_keys=True)
    return str(value if value is not None else "")


def junit(record: dict[str, Any]) -> str:
    """JUnit XML: one test case per migration of the run and one per verification check (junit.py)."""
    from .junit import case, suite

    cases = []
    for m in record.get("migrations") or []:
        failed = m.get("failed") or m.get("error")
        # a file stopped by its own spec: the checks that did not pass, expected and actual, under its message
        unpassed = [x for x in m.get("checks_summary") or [] if not str(x).startswith("PASS")]
        cases.append(case(f"migrations.{m.get('direction', 'up')}", f"{m.get('version')}_{m.get('name')}",
                          time=(m.get("duration_ms") or 0) / 1000,
                          failure="\n".join([_text(m.get("msg") or m.get("error")), *map(str, unpassed)])
                          if failed else None,
                          system_out=None if failed else _text(m.get("msg"))))
    for section in CHECK_SECTIONS:
        block = record.get(section) or {}
        for r in block.get("results") or []:
            spec = os.path.basename(str(r.get("spec") or block.get("spec") or section)).removesuffix(".yml")
            outcome: dict[str, str] = {}
            if r.get("status") != "passed" and r.get("severity") == "warn":
                outcome["skipped"] = f"warning not passed: {r.get('status')}"
            elif r.get("status") == "failed":
                outcome["failure"] = (f"expected {json.dumps(r.get('expected'), default=str)}, "
                                      f"actual {json.dumps(r.get('actual'), default=str)}")
            elif r.get("status") == "error":
                outcome["error"] = _text(r.get("error"))
            cases.append(case(f"{section}.{spec}", str(r.get("name")), **outcome))
    drift = record.get("schema_drift") or {}
    for change in drift.get("changes") or []:
        name = f"{change.get('kind')} {change.get('object')}"
        cases.append(case("schema_drift", name, skipped=f"acknowledged: {drift['accepted']}")
                     if drift.get("accepted") else case("schema_drift", name, failure=_text(change.get("message"))))
    if record.get("partially_applied"):
        left = record["partially_applied"]
        cases.append(case("run", f"{os.path.basename(str(left.get('file')))} left nothing",
                          failure=_text(left.get("msg"))))
    if record.get("failure"):
        cases.append(case("run", f"{record['kind']} finished",
                          failure=f"{record['failure'].get('task')}: {_text(record['failure'].get('msg'))}"))
    return suite(f"pgrollout {record['kind']} {record['environment']}/{record['host']}", cases,
                 timestamp=str(record.get("started_at") or "") or None)


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def write(directory: str, record: dict[str, Any], secrets: list[str], signing_key: str = "",
          outcome_log: str = "") -> dict[str, str]:
    """Write <run_id>.json (signed where a key is given), .md, .svg, .junit.xml and .outcome (the summary
    line) into `directory`, every text redacted; append the summary line to `outcome_log` if given."""
    os.makedirs(directory, mode=0o750, exist_ok=True)
    stem = os.path.join(directory, f"{record['run_id']}{'-dryrun' if record['dry_run'] else ''}")
    secrets = [*secrets, signing_key]
    record = _redact_values(record, secrets)
    if signing_key:
        record = sign(record, signing_key)
    paths = {"json_path": stem + ".json", "markdown_path": stem + ".md", "svg_path": stem + ".svg",
             "junit_path": stem + ".junit.xml", "summary_path": stem + ".outcome"}
    line = summary_line(record, paths["json_path"])
    outputs = {paths["json_path"]: json.dumps(record, indent=2, sort_keys=False, default=str) + "\n",
               paths["markdown_path"]: markdown(record) + f"\n![timeline]({os.path.basename(paths['svg_path'])})\n",
               paths["svg_path"]: svg(record), paths["junit_path"]: junit(record),
               paths["summary_path"]: line + "\n"}
    for path, text in outputs.items():
        _write_private(path, redact(text, secrets))
    if outcome_log:
        # one write of one line with O_APPEND: hosts running in parallel forks do not interleave
        fd = os.open(outcome_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        with os.fdopen(fd, "w") as handle:
            handle.write(redact(line, secrets) + "\n")
    return {**paths, "summary": line}


def find(directory: str, *, host: str | None = None, kind: str | None = None, outcome: str | None = None,
         version: str | None = None, checksum: str | None = None, signing_key: str = "") -> list[dict[str, Any]]:
    """Records in `directory`, newest first, that match every filter given; with `signing_key`, only
    records whose signature verifies with it (an unsigned or edited record is not evidence).

    `version`/`checksum` match a record where that migration changed the
    database (not a dry run, not an already-applied no-op).
    """
    records = []
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        if not name.endswith(".json") or name == "status.json":
            continue
        try:
            with open(os.path.join(directory, name)) as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            continue
        if signing_key and not verified(record, signing_key):
            continue
        if (host and record.get("host") != host) or (kind and record.get("kind") != kind) \
                or (outcome and record.get("outcome") != outcome):
            continue
        if version or checksum:
            applied = [m for m in record.get("migrations") or [] if m and m.get("changed") and not m.get("dry_run")]
            if not any((not version or m.get("version") == version)
                       and (not checksum or m.get("checksum") == checksum) for m in applied):
                continue
        records.append(record)
    return sorted(records, key=lambda r: (r.get("finished_at") or "", r.get("run_id") or ""), reverse=True)


def protected_backups(directory: str | None, host: str, applied: list[str]) -> list[str]:
    """For each applied migration, the backup named by the newest record that applied it."""
    if not directory or not applied:
        return []
    wanted = {int(v) for v in applied if str(v).isdigit()}
    protected, seen = [], set()
    for record in find(directory, host=host or None):
        backup = (record.get("backup") or {}).get("path")
        versions = {int(m["version"]) for m in record.get("migrations") or []
                    if m and m.get("changed") and not m.get("dry_run") and m.get("direction", "up") == "up"
                    and str(m.get("version", "")).isdigit()}
        for version in versions & wanted - seen:
            seen.add(version)
            if backup:
                protected.append(backup)
    return protected


def unwritable(directory: str, exc: OSError) -> str:
    """What a run that cannot write its evidence says before anything changes (the probe failed)."""
    return (f"cannot write evidence into {directory}: {exc}. Nothing was changed: fix the folder (or "
            "pgrollout_evidence_root), then run again")


def probe(directory: str, free_bytes: int = EVIDENCE_FREE_BYTES) -> dict[str, Any]:
    """That the run's record can be written here (created if missing, a file written and removed, free space),
    checked when the run starts, before anything changes; OSError saying what is wrong."""
    import shutil
    import tempfile

    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".pgrollout-probe-"):
        pass
    free = shutil.disk_usage(directory).free
    if free < free_bytes:
        raise OSError(f"only {free // 2**20} MB free in {directory}; a run needs {free_bytes // 2**20} MB for its "
                      "evidence: free space, or point pgrollout_evidence_root elsewhere")
    return {"dir": directory, "free_bytes": free, "msg": f"evidence can be written to {directory}"}


def _record_from_options(p: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return build_record(run_id=p["run_id"], kind=p["kind"], environment=p["environment"], host=p["host"],
                        started_at=p["started_at"], dry_run=p["dry_run"], steps=p["steps"], failure=p["failure"],
                        context=context, marks=p["marks"])


def unwritten_summary(p: dict[str, Any]) -> str:
    """The run's outcome line when its record could not be written (the line a pipeline reads), built anyway."""
    record = _record_from_options(p, context={})
    line = summary_line(record, "NOT-WRITTEN")
    if record["changed"]:
        line += f" -- THE TARGET CHANGED ({', '.join(record['changed'])}) BUT ITS EVIDENCE WAS NOT WRITTEN"
    return redact(line, p["redact"])


def record_run(p: dict[str, Any]) -> dict[str, Any]:
    """Build and write a run's record from pgrollout_evidence's options; where it went and the outcome."""
    if p.get("probe"):
        return probe(p["dir"])
    context = {
        "operator": os.environ.get("SUDO_USER") or getpass.getuser(),
        "git_commit": git_commit(p["repo_dir"]) if p["repo_dir"] else None,
        "git_dirty": git_dirty(p["repo_dir"]) if p["repo_dir"] else None,
        "tool_versions": {"python": platform.python_version(), **p["tool_versions"]},
    }
    record = _record_from_options(p, context)
    written = write(p["dir"], record, p["redact"], p["signing_key"], p["outcome_log"])
    said = {"notify_text": notify_text(record)}
    if record.get("failure"):
        said["end_msg"] = end_message(record, written["json_path"], p["auto_rollback"])
    return {**written, **{k: redact(v, p["redact"]) for k, v in said.items()},
            "outcome": record["outcome"], "signed": bool(p["signing_key"]),
            # what set_stats would publish (an AWX workflow's next node reads it), without a task of its own
            "ansible_stats": {"data": {"pgrollout_outcomes": {p["host"]: {
                "outcome": record["outcome"], "run_id": record["run_id"], "kind": record["kind"],
                "environment": record["environment"], "changed": record["changed"],
                "refused_by": record.get("refused_by")}}}, "per_host": False, "aggregate": True}}
