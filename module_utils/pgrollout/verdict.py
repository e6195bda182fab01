"""The preflight's verdict on what pg_facts read: refuse, warn, or go on, in one controller-side step.

Each refusal keeps the name it had as a task of its own, so the evidence's
refused_by and the operator's search for it are unchanged; the checks run in
that order and the first that refuses stops the run (nothing was changed).
Warnings and the target's state are returned as lines to show once.
"""
from __future__ import annotations

from typing import Any

ARGUMENT_SPEC: dict[str, Any] = {
    "facts": {"type": "dict", "required": True},
    "target": {"type": "str", "required": True},
    "schema_drift": {"type": "str", "choices": ["warn", "refuse"], "default": "refuse"},
    "accept_drift_reason": {"type": "str", "default": ""},
    "rolling_back": {"type": "bool", "default": False},
}


def _drift_refusal(drift: dict[str, Any], mode: str, reason: str) -> str | None:
    if not drift.get("changes") or mode == "warn" or reason:
        return None
    return (f"The catalog changed outside any migration since run {drift.get('run_id') or '?'} "
            f"({drift.get('at') or '?'}): {'; '.join(c['message'] for c in drift['changes'])}. Revert the change "
            "(or ship it as a migration), or acknowledge it: -e pgrollout_accept_drift_reason='<why>' (recorded; "
            "the live catalog becomes the recorded state). Nothing was changed.")


def refusals(facts: dict[str, Any], args: dict[str, Any]) -> list[tuple[str, str]]:
    """(check, message) for every condition no run may proceed with, in the order they are checked."""
    m = facts.get("migrations") or {}
    found: list[tuple[str, str]] = []
    if facts.get("privileges_missing"):
        found.append(("Refuse a migration role that lacks a privilege the run needs",
                      f"{'; '.join(facts['privileges_missing'])}. Nothing was changed: grant these (as a superuser, "
                      "or on Supabase as postgres) and run again (README, A migration role that is not a superuser)."))
    if facts.get("extensions_unavailable"):
        found.append(("Refuse extensions the target's server cannot provide",
                      f"{'; '.join(e['msg'] for e in facts['extensions_unavailable'])}. Nothing was changed."))
    pooler = facts.get("pooler") or {}
    if pooler.get("suspected"):
        found.append(("Refuse a transaction-mode connection pooler",
                      f"{args['target']} is reached through a transaction-mode pooler ({pooler.get('reason')}): "
                      "advisory locks and session settings do not work through it. Connect to the database "
                      "directly (Supabase: db.<ref>.supabase.co port 5432, not the pooler on 6543)."))
    if facts.get("in_recovery"):
        found.append(("Refuse a read replica",
                      f"{args['target']} is a read replica (in recovery): point the inventory at the primary."))
    if m.get("drifted") or m.get("missing_files"):
        found.append(("Refuse applied migrations whose files changed (unless accepted) or disappeared",
                      f"Ledger and files disagree. Edited after being applied: {m.get('drifted') or []}. Applied "
                      f"but no file: {m.get('missing_files') or []}. Restore the files as applied and ship changes "
                      "as new migrations, or accept an edit with pgrollout_accept_drift: {\"<version>\": "
                      "\"<reason>\"}."))
    drift = _drift_refusal(facts.get("schema_drift") or {}, args["schema_drift"], args["accept_drift_reason"])
    if drift:
        found.append(("Refuse schema drift nobody acknowledged", drift))
    if m.get("out_of_order"):
        found.append(("Refuse pending migrations older than the newest applied one, unless allowed with a reason",
                      f"{m['out_of_order']} would apply out of order after version {m.get('newest_applied')}: "
                      "renumber them after it, or allow it on purpose with pgrollout_allow_out_of_order: "
                      "{\"<version>\": \"<reason>\"} (recorded)."))
    if facts.get("plan_error"):
        found.append(("Refuse pending files or specs that cannot run as they are", facts["plan_error"]))
    return found


def warnings(facts: dict[str, Any], args: dict[str, Any]) -> list[str]:
    m, drift = facts.get("migrations") or {}, facts.get("schema_drift") or {}
    out = []
    if facts.get("extension_stubs"):
        out += ["WARNING: STUB extension(s)"] + [s["msg"] for s in facts["extension_stubs"]]
    if drift and drift.get("recorded") is False:
        out.append(drift.get("msg") or "")
    if drift.get("changes") and (args["schema_drift"] == "warn" or args["accept_drift_reason"]):
        acknowledged = (f" (acknowledged: {drift['accepted']}; the live catalog is now the recorded state)"
                        if drift.get("accepted") else
                        f" (acknowledged: {args['accept_drift_reason']}; a real run records the live catalog)"
                        if args["accept_drift_reason"] else "")
        out += [f"WARNING: schema drift{acknowledged}"] + [c["message"] for c in drift["changes"]]
    if facts.get("unfinished_runs"):
        out.append(f"WARNING: {'; '.join(r['message'] for r in facts['unfinished_runs'])}. "
                   + ("This run verifies the applied specs as they stand now. " if not m.get("pending_versions")
                      else "")
                   + "The evidence has no succeeded record of those changes, so the next environment's promotion "
                     "gate does not count them: roll them back and out again here (rollback.yml, rollout.yml) to "
                     "record one.")
    if not args["rolling_back"] and m.get("rollback_warning"):
        out.append(m["rollback_warning"])
    return out


def state(facts: dict[str, Any], args: dict[str, Any] | None = None) -> list[str]:
    m, locks = facts.get("migrations") or {}, facts.get("locks") or {}
    where = "/".join(x for x in ((args or {}).get("environment"), (args or {}).get("target")) if x)
    target = (f"target version {m['target_version']}: not run now: {', '.join(m.get('beyond_target') or []) or 'none'}"
              if m.get("target_version") else "target version: every pending file")
    server = f"PostgreSQL {facts.get('server_version')}, database {facts.get('database')}"
    return [f"{where}: {server}" if where else server,
            f"applied: {', '.join(m.get('applied') or []) or 'none'}",
            f"pending: {', '.join(m.get('pending') or []) or 'none'}", target,
            f"long-running sessions: {len(facts.get('long_running_sessions') or [])}",
            f"sessions holding locks on tables the run will lock: {len(locks.get('holders') or [])}"]


def verdict(args: dict[str, Any]) -> dict[str, Any]:
    """failed with the first refusal (refused_by names it), else the lines to show."""
    facts = args["facts"]
    found = refusals(facts, args)
    if found:
        check, msg = found[0]
        return {"failed": True, "changed": False, "msg": msg, "refused_by": check, "failure_kind": "refused",
                "refusals": [{"check": c, "msg": m} for c, m in found]}
    lines = warnings(facts, args) + state(facts, args)
    return {"changed": False, "msg": lines, "lines": lines}


# The action plugin pgrollout_preflight reads the target itself (pg_facts with `read`, the connection from the
# task's module_defaults) when no `facts` are given: one task for what were a mark, two asserts, pg_facts and
# the verdict. A refusal is returned (refusal), not failed, so the run record keeps what was read.
ACTION_SPEC: dict[str, Any] = {
    **ARGUMENT_SPEC,
    "facts": {"type": "dict"},
    "target": {"type": "str", "default": ""},
    "read": {"type": "dict", "default": {}},
    "environment": {"type": "str", "default": ""},
    # the run's evidence folder, checked writable first (the run's start need not check it separately)
    "evidence_dir": {"type": "path"},
    # a line every this many seconds while the read takes longer (0: none)
    "progress_seconds": {"type": "float", "default": 10.0},
    # which later steps run as async jobs with a progress line at each poll (long_steps)
    "progress_min_bytes": {"type": "int", "default": 268435456},
    "progress_min_file_bytes": {"type": "int", "default": 16777216},
}


def unconfigured(conn: dict[str, Any], host: str, environment: str) -> dict[str, Any] | None:
    """A failed result when no database host or password is configured (nothing read, nothing changed)."""
    if not (str(conn.get("login_host") or "") or conn.get("login_unix_socket")):
        check = "Check that a database host is configured"
        msg = (f"No database host for {host} in {environment}: set pgrollout_db_host (and pgrollout_db_port) for "
               "it in its inventory (README, Environments: Adding a target). pgrollout never assumes 127.0.0.1 "
               "outside dev.")
    elif not conn.get("login_password"):
        check = "Check that a database password is configured"
        msg = (f"No database password for {host}: set pgrollout_db_password (dev: run `make db-start`; "
               "staging/prod: vault_pgrollout_db_password in an ansible-vault file).")
    else:
        return None
    return {"failed": True, "changed": False, "msg": msg, "refused_by": check, "failure_kind": "refused"}


def long_steps(facts: dict[str, Any], min_bytes: int, min_file_bytes: int) -> dict[str, bool]:
    """The steps that run as async jobs, a progress line at each poll: the backup on a big database, the
    migrations there or when the pending files are big (a 30 MB file takes about 12 s to apply on a small one).
    The rest run as plain tasks: a poll costs up to an interval."""
    big_database = int(facts.get("database_size_bytes") or 0) >= min_bytes
    pending_bytes = int((facts.get("migrations") or {}).get("pending_bytes") or 0)
    return {"backup": big_database, "migrate": big_database or pending_bytes >= min_file_bytes}


def judged(args: dict[str, Any], facts_result: dict[str, Any]) -> dict[str, Any]:
    """pg_facts' result with the verdict: its lines, and the first refusal (for pgrollout_stop) if any."""
    decided = verdict({**args, "facts": facts_result["facts"]})
    out = {**facts_result, "changed": False, "lines": decided.get("lines") or [], "refusal": None,
           "long_steps": long_steps(facts_result["facts"], args["progress_min_bytes"],
                                    args["progress_min_file_bytes"])}
    if decided.get("failed"):
        out["refusal"] = {"check": decided["refused_by"], "msg": decided["msg"], "refusals": decided["refusals"]}
    return out
