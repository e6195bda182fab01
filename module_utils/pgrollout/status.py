"""Status: what is applied where, from the target's facts and the last run's evidence.

One document per environment (`status.json`, one entry per target), that a
pipeline can read, and a table for people.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
from typing import Any, Iterator

from . import evidence

SCHEMA_VERSION = 1


def target_status(facts: dict[str, Any], host: str, evidence_dir: str | None) -> dict[str, Any]:
    migrations = facts.get("migrations") or {}
    applied = migrations.get("applied_details") or []
    records = evidence.find(evidence_dir, host=host) if evidence_dir else []
    # the last run of this database: a record of another database under the same inventory host name
    # (a target repointed, two databases of one server) is not this one's
    database = facts.get("database")
    last = next((r for r in records if not r.get("dry_run")
                 and (r.get("target") or {}).get("database") in (None, database)), None)
    return {
        "host": host,
        "database": facts.get("database"),
        "server_version": facts.get("server_version"),
        "checked_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "applied": [{k: a.get(k) for k in ("version", "name", "applied_at", "applied_by", "run_id",
                                           "checksum_matches")} | {"verified": bool(a.get("spec"))}
                    for a in applied],
        "pending": migrations.get("pending_versions") or [],
        "missing_files": migrations.get("missing_files") or [],
        "drifted": [os.path.basename(p) for p in migrations.get("drifted") or []],
        "out_of_order": migrations.get("out_of_order") or [],
        "unverified": [a["version"] for a in applied if not a.get("spec")],
        "lease": facts.get("lease"),
        # the catalog against the last changing run's snapshot (schema.py): one line per drifted object
        "schema_drift": [c["message"] for c in (facts.get("schema_drift") or {}).get("changes") or []],
        "unfinished_runs": [r["message"] for r in facts.get("unfinished_runs") or []],
        "extension_stubs": [s["msg"] for s in facts.get("extension_stubs") or []],
        "last_run": {k: last.get(k) for k in ("run_id", "kind", "outcome", "finished_at")} if last else None,
    }


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    with open(path + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write(path: str, environment: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Add (or replace) this target's entry in the environment's status document."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
    with _locked(path):
        try:
            with open(path) as handle:
                document = json.load(handle)
        except (OSError, ValueError):
            document = {}
        if document.get("schema_version") != SCHEMA_VERSION or document.get("environment") != environment:
            document = {"schema_version": SCHEMA_VERSION, "environment": environment, "targets": {}}
        document["targets"][entry["host"]] = entry
        document["generated_at"] = entry["checked_at"]
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
        os.replace(tmp, path)
    return document


def table(entry: dict[str, Any]) -> list[str]:
    lines = [f"{entry['host']}: database {entry['database']}, PostgreSQL {entry['server_version']}"]
    for a in entry["applied"]:
        match = {True: "checksum ok", False: "CHECKSUM DIFFERS", None: "checksum unknown"}[a["checksum_matches"]]
        lines.append(f"  applied {a['version']} {a['name'] or ''} at {a.get('applied_at') or '?'} by "
                     f"{a.get('applied_by') or '?'} ({match}{'' if a['verified'] else ', unverified'})")
    for key, label in (("pending", "pending"), ("missing_files", "applied, file missing"),
                       ("drifted", "edited after applied"), ("out_of_order", "out of order")):
        if entry[key]:
            lines.append(f"  {label}: {', '.join(entry[key])}")
    for key, label in (("schema_drift", "schema drift"), ("unfinished_runs", "unfinished run"),
                       ("extension_stubs", "STUB")):
        lines += [f"  {label}: {line}" for line in entry.get(key) or []]
    if entry["lease"]:
        lease = entry["lease"]
        lines.append(f"  run lease held by {lease['run_id']} ({lease['kind']}, heartbeat {lease['idle_seconds']}s ago)")
    if entry["last_run"]:
        run = entry["last_run"]
        lines.append(f"  last run: {run['kind']} {run['outcome']} ({run['run_id']}, {run['finished_at']})")
    return lines


def side_by_side(documents: list[dict[str, Any]]) -> list[str]:
    """Every version known anywhere, and per environment/target whether it is applied, pending or missing."""
    columns = [(d["environment"], host, t) for d in documents for host, t in sorted(d["targets"].items())]
    versions = sorted({a["version"] for _unused, _unused, t in columns for a in t["applied"]}
                      | {v for _unused, _unused, t in columns for v in t["pending"] + t["missing_files"]}, key=int)
    header = ["version"] + [f"{env}/{host}" for env, host, _unused in columns]
    rows = [header]
    for version in versions:
        row = [version]
        for _unused, _unused, t in columns:
            state = ("applied" if version in {a["version"] for a in t["applied"]} else
                     "pending" if version in t["pending"] else "no file" if version in t["missing_files"] else "-")
            row.append(state)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
