"""Read-only facts about a target database, for preflight and evidence."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import connection, extensions, lease, ledger, lint, locks, plan, privileges, schema, sqlfile

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor


def server(cur: Cursor) -> dict[str, Any]:
    cur.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int, "
        "current_database(), current_user, pg_is_in_recovery(), "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
        # from the catalog, not regclass input: that fails on a schema the role may not use
        "EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'auth' AND c.relname = 'users'), "
        "pg_database_size(current_database())"
    )
    version, num, db, user, in_recovery, superuser, has_auth, size = cur.fetchone()
    return {"server_version": version, "server_version_num": num, "server_major": num // 10000,
            "server_major_minor": f"{num // 10000}.{num % 10000}",  # as squawk's --pg-version takes it
            "database": db, "current_user": user, "in_recovery": in_recovery,
            "superuser": bool(superuser), "has_auth_schema": has_auth, "database_size_bytes": size}


def rls(cur: Cursor, schemas: list[str]) -> dict[str, bool]:
    cur.execute(
        "SELECT n.nspname || '.' || c.relname, c.relrowsecurity FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s) ORDER BY 1",
        (schemas,),
    )
    return dict(cur.fetchall())


def sessions(cur: Cursor, older_than: str) -> list[dict[str, Any]]:
    """Other sessions in a transaction (or running a query) for longer than `older_than`."""
    cur.execute(
        "SELECT pid, application_name, usename, state, "
        "extract(epoch FROM now() - coalesce(xact_start, query_start))::int AS seconds, "
        "left(query, 200) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)') "
        "AND coalesce(xact_start, query_start) < now() - %s::interval ORDER BY 5 DESC",
        (older_than,),
    )
    keys = ("pid", "application_name", "user", "state", "seconds", "query")
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]


def lock_holders(cur: Cursor, files: list[sqlfile.MigrationFile]) -> dict[str, Any]:
    """Sessions holding locks on the existing tables the given files will lock."""
    resolved = locks.resolve(cur, locks.merge([locks.file_plan(f) for f in files]))
    tables = [locks.plain(s, n) for s, n, _unused in resolved]
    return {"tables": {locks.plain(s, n): mode for s, n, mode in resolved}, "holders": locks.holders(cur, tables)}


def for_record(facts: dict[str, Any]) -> dict[str, Any]:
    """The part of the facts a run's record keeps (the evidence's target section), small enough to pass around."""
    migrations = facts.get("migrations") or {}
    return {"facts": {"server_version": facts.get("server_version"), "database": facts.get("database"),
                      "long_running_sessions": facts.get("long_running_sessions"),
                      "unfinished_runs": facts.get("unfinished_runs") or [],
                      "schema_drift": facts.get("schema_drift"),
                      "extension_stubs": facts.get("extension_stubs") or [],
                      "migrations": {"applied": migrations.get("applied"), "pending": migrations.get("pending"),
                                     "target_version": migrations.get("target_version"),
                                     "beyond_target": migrations.get("beyond_target")}}}


def accept_drift(conn: Connection, reason: str, drift: dict[str, Any]) -> None:
    """The operator acknowledged the drift: the live catalog becomes the recorded state, with the reason."""
    with conn.transaction(), conn.cursor() as cur:
        schema.store(cur, None, note=f"drift accepted: {reason.strip()}")
    drift["accepted"] = reason.strip()


def record_first_snapshot(conn: Connection, drift: dict[str, Any], lease_holder: dict[str, Any] | None) -> None:
    """No snapshot recorded yet (an adopted database, an older pgrollout): record the live catalog now.

    Only where pgrollout's records exist and no run holds the lease (a run in
    progress records its own state when it changes the target); drift is
    checked from the next run on. The message says which happened.
    """
    if lease_holder is not None:
        drift["msg"] = (f"no recorded catalog snapshot yet, and run {lease_holder.get('run_id')} holds the lease: "
                        "that run records one when it changes the database")
        return
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT to_regnamespace('pgrollout') IS NOT NULL")
        if not cur.fetchone()[0]:
            return  # pgrollout never ran here: the first run that changes the database records one
    ledger.ensure(conn)  # an older pgrollout's records get what they lack, the snapshot table among it
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT FROM pgrollout.catalog_snapshots)")
        if cur.fetchone()[0]:
            return
        found = schema.store(cur, None, note="first snapshot: none was recorded before")
    drift.update(recorded_now=found,
                 msg="no catalog snapshot was recorded before (an adopted database or an older pgrollout): the "
                     "live catalog is recorded now, and drift is checked from the next run on")


def pooler(params: dict[str, Any]) -> dict[str, Any]:
    """Detect a transaction- or statement-mode pooler (PgBouncer, Supavisor) in front of the server.

    Two client connections, used one after the other, are served by the same
    server backend only through such a pooler. Advisory locks and session
    settings do not survive a transaction there, so pgrollout refuses it.
    """
    # Both clients stay connected: without a pooler (or with session pooling) each
    # has a backend of its own; a transaction pooler hands the idle backend of the
    # first client's finished query to the second client.
    with connection.connect(params, autocommit=True) as first, connection.connect(params, autocommit=True) as second:
        pids = [c.execute("SELECT pg_backend_pid()").fetchone()[0] for c in (first, second)]
    shared = pids[0] == pids[1]
    port_hint = (connection.host_port(params)[1] or 5432) == 6543
    reason = (f"two client connections were served by one server backend (pid {pids[0]})" if shared
              else "port 6543 is Supabase's transaction pooler" if port_hint else None)
    return {"suspected": shared or port_hint, "reason": reason}


def gather(conn: Connection, layout: plan.Layout | None, rls_schemas: list[str], long_running: str,
           accept_drift: list[str] = (), rollback: dict[str, Any] | None = None,
           require_spec: bool = False, allow_out_of_order: list[str] = (),
           target_version: str | None = None, require_rollback: bool = False,
           rehearse: dict[str, Any] | None = None, backup: bool = False,
           extra_checks: list[dict[str, Any]] = (), max_file_mb: int = 0,
           review: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything preflight needs, in one READ ONLY transaction.

    With `rollback` ({"to": version or None, "version": version or None}) the
    migrations to roll back are chosen too (rollback_plan), or rollback_error says why not.
    A role that is not a superuser gets privileges_missing: what the run needs that it lacks
    (privileges.py); when pgrollout's own records exist but cannot be read, nothing else is read.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        result = server(cur)
        if not result["superuser"] and privileges.records_unreadable(cur):
            result["privileges_missing"] = [f"role {result['current_user']} cannot {what}"
                                            for what in privileges.tool_findings(cur)]
            return {**result, "migrations": {}, "locks": {"tables": {}, "holders": []}}
        result.update({"rls": rls(cur, rls_schemas), "long_running_sessions": sessions(cur, long_running),
                       "lease": lease.holder(cur)})
        result["unfinished_runs"] = lease.unfinished(cur, result["lease"])
        result["schema_drift"] = schema.drift(cur)  # the live catalog against the last changing run's
        state = plan.status(cur, layout, accept_drift, allow_out_of_order, target_version) if layout else {
            "applied": [a.version for _unused, a in sorted(ledger.read(cur).items())]}
        result["migrations"] = state
        if layout:
            missing = [f for f in state["files"] if f["path"] in state["pending_paths"] and not f["down_exists"]]
            state["pending_without_rollback"] = [f["path"] for f in missing]
            state["rollback_warning"] = (
                f"WARNING: no rollback file for {', '.join(os.path.basename(f['path']) for f in missing)}: a "
                "failure after its commit can only be undone by a restore. Write "
                f"{', '.join(f['down'] for f in missing)} (staging and prod refuse such files: "
                "pgrollout_require_rollback)") if missing else None
        to_lock: list[plan.Item] = []
        if layout and rollback is None and rehearse is None:
            try:  # every pending file and spec read and checked before anything changes
                to_lock = plan.build(layout, state["pending_paths"], "up", require_spec,
                                     require_rollback=require_rollback, max_file_mb=max_file_mb)
                state["parsed"] = plan.parsed(to_lock)  # the plan read once: pg_migrate takes this parse
            except plan.PlanError as exc:
                result["plan_error"] = str(exc)
        if rollback is not None and layout:
            try:
                targets = plan.rollback_targets(state, rollback.get("to"), rollback.get("version"))
                to_lock = plan.build(layout, [t["path"] for t in targets], "down", require_spec,
                                     max_file_mb=max_file_mb)
                result["rollback_plan"] = targets
            except plan.PlanError as exc:
                result["rollback_plan"], result["rollback_error"] = [], str(exc)
        if rehearse is not None and layout:
            try:
                result["rehearsal_plan"] = plan.rehearsal(state, rehearse.get("version"))
            except plan.PlanError as exc:
                result["rehearsal_error"] = str(exc)
        planned = [item.file for item in to_lock]
        # before anything runs: a CREATE EXTENSION the server has no files for would fail midway
        created = extensions.created(planned)
        result["extensions_unavailable"] = extensions.unavailable(cur, created, result["server_version_num"])
        result["extension_stubs"] = extensions.stubs(cur, created)
        if not result["superuser"]:
            result["privileges_missing"] = privileges.missing(
                cur, planned, [c for item in to_lock for c in item.checks or []] + list(extra_checks), backup)
        # without the privileges, locks.resolve may meet a schema the role cannot use: preflight refuses first
        result["locks"] = lock_holders(cur, planned) \
            if not result.get("privileges_missing") else {"tables": {}, "holders": []}
        if review is not None and layout and rollback is None and rehearse is None and state["pending_versions"] \
                and not result.get("plan_error") and not result.get("privileges_missing"):
            # the review in the same call and transaction (no second module process, the forward files parsed
            # once): the target's version and table sizes judge the findings
            sizes = {key: int(review[name]) for key, name in (("big_rows", "big_table_rows"),
                                                              ("big_bytes", "big_table_bytes")) if name in review}
            result["lint"] = lint.review(layout, state["pending_versions"], review.get("exposed_schemas") or [],
                                         review.get("acknowledged") or [], review.get("squawk_config"),
                                         result["server_major_minor"], cur, loaded=planned, **sizes)
        return result
