"""The evidence record of a run: a versioned JSON document and a Markdown summary.

Built from the registered results of the roles, keeping only the fields an
auditor needs (never a module's invocation, which carries its arguments), and
scrubbed of every secret passed in as a last line of defence.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
from typing import Any

from .timeline import svg

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


def outcome(failure: dict[str, Any] | None, dry_run: bool) -> str:
    if failure:
        return "failed"
    return "dry_run" if dry_run else "succeeded"


def timings(marks: dict[str, str], finished: datetime.datetime) -> list[dict[str, Any]]:
    """Each step's start and seconds, from the time marks the play set at step boundaries."""
    starts = sorted(((datetime.datetime.fromisoformat(v.replace("Z", "+00:00")), k) for k, v in marks.items()))
    ends = [at for at, _ in starts[1:]] + [finished] if starts else []
    return [{"step": step, "started_at": at.isoformat(timespec="milliseconds"),
             "seconds": round((end - at).total_seconds(), 3)} for (at, step), end in zip(starts, ends, strict=True)]


def build_record(*, run_id: str, kind: str, environment: str, host: str, started_at: str,
                 dry_run: bool, steps: dict[str, Any], failure: dict[str, Any] | None,
                 context: dict[str, Any], marks: dict[str, str] | None = None) -> dict[str, Any]:
    preflight = (steps.get("preflight") or {}).get("facts") or {}
    finished = datetime.datetime.now(datetime.UTC)
    gates = steps.get("gates") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "kind": kind,
        "environment": environment,
        "host": host,
        "outcome": outcome(failure, dry_run),
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
            "long_running_sessions": preflight.get("long_running_sessions"),
        },
        "backup": _pick(steps.get("backup"), BACKUP_FIELDS),
        "backup_rehearsal": _pick(steps.get("backup_rehearsal"), REHEARSAL_FIELDS),
        "restore": _pick(steps.get("restore"), RESTORE_FIELDS),
        "lease": _pick(steps.get("lease"), LEASE_FIELDS),
        "migrations": _migrations(steps),
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


def redact(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "********")
    # libpq URLs that carry a password: postgresql://user:password@host
    return re.sub(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@", r"\1********@", text)


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
                                    for t in record["timings"]], ""]
    if record.get("overrides"):
        lines += ["## Overrides", "", *[f"- {o['gate']}: {o['reason']}" for o in record["overrides"]], ""]
    if record.get("failure"):
        lines += ["## Failure", "", f"- task: {record['failure'].get('task')}",
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


def git_commit(repo_dir: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", repo_dir, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def write(directory: str, record: dict[str, Any], secrets: list[str]) -> tuple[str, str]:
    """Write <run_id>.json and <run_id>.md (0640) into `directory`; return both paths."""
    os.makedirs(directory, mode=0o750, exist_ok=True)
    stem = os.path.join(directory, f"{record['run_id']}{'-dryrun' if record['dry_run'] else ''}")
    picture = stem + ".svg"
    outputs = {stem + ".json": json.dumps(record, indent=2, sort_keys=False, default=str) + "\n",
               stem + ".md": markdown(record) + f"\n![timeline]({os.path.basename(picture)})\n",
               picture: svg(record)}
    for path, text in outputs.items():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as handle:
            handle.write(redact(text, secrets))
    return stem + ".json", stem + ".md"


def find(directory: str, *, host: str | None = None, kind: str | None = None, outcome: str | None = None,
         version: str | None = None, checksum: str | None = None) -> list[dict[str, Any]]:
    """Records in `directory`, newest first, that match every filter given.

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
