"""Read-only facts about a target database, for preflight and evidence."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import connection, ledger, locks, sqlfile

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor


def server(cur: Cursor) -> dict[str, Any]:
    cur.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int, "
        "current_database(), current_user, pg_is_in_recovery(), "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
        "to_regnamespace('auth') IS NOT NULL AND to_regclass('auth.users') IS NOT NULL, "
        "pg_database_size(current_database())"
    )
    version, num, db, user, in_recovery, superuser, has_auth, size = cur.fetchone()
    return {"server_version": version, "server_version_num": num, "server_major": num // 10000,
            "database": db, "current_user": user, "in_recovery": in_recovery,
            "superuser": bool(superuser), "has_auth_schema": has_auth, "database_size_bytes": size}


def migrations(cur: Cursor, migrations_dir: str | None, accept_drift: list[str] = ()) -> dict[str, Any]:
    applied = ledger.read(cur)
    result: dict[str, Any] = {
        "applied": sorted(applied, key=int),
        "applied_checksums": {v: a.checksum for v, a in applied.items()},
    }
    if migrations_dir:
        files = [sqlfile.load(p) for p in sqlfile.find_migrations(migrations_dir)]
        result["files"] = [{"version": f.version, "name": f.name, "path": f.path, "checksum": f.checksum}
                           for f in files]
        result["pending"] = [os.path.basename(f.path) for f in files if f.version not in applied]
        result["pending_paths"] = [f.path for f in files if f.version not in applied]
        drifted = [f for f in files if applied.get(f.version) and applied[f.version].checksum
                   and applied[f.version].checksum != f.checksum]
        result["drifted"] = [f.path for f in drifted if f.version not in accept_drift]
        result["drift_accepted"] = [f.path for f in drifted if f.version in accept_drift]
        newest = max((int(v) for v in applied), default=0)
        result["out_of_order"] = [os.path.basename(f.path) for f in files
                                  if f.version not in applied and int(f.version) < newest]
        known = {f.version for f in files}
        result["missing_files"] = sorted((v for v in applied if v not in known), key=int)
    return result


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


def lock_holders(cur: Cursor, pending_paths: list[str]) -> dict[str, Any]:
    """Sessions holding locks on the existing tables the pending migrations will lock."""
    plan: dict[str, str] = {}
    for path in pending_paths:
        for relation, mode in locks.lock_plan(sqlfile.load(path).statements).items():
            plan[relation] = locks.stronger(plan.get(relation), mode)
    resolved = locks.resolve(cur, plan)
    tables = [plain for _, plain, _ in resolved]
    return {"tables": {plain: mode for _, plain, mode in resolved}, "holders": locks.holders(cur, tables)}


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
    port_hint = int(params["login_port"]) == 6543
    reason = (f"two client connections were served by one server backend (pid {pids[0]})" if shared
              else "port 6543 is Supabase's transaction pooler" if port_hint else None)
    return {"suspected": shared or port_hint, "reason": reason}


def gather(conn: Connection, migrations_dir: str | None, rls_schemas: list[str], long_running: str,
           accept_drift: list[str] = ()) -> dict[str, Any]:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        result = {
            **server(cur),
            "migrations": migrations(cur, migrations_dir, accept_drift),
            "rls": rls(cur, rls_schemas),
            "long_running_sessions": sessions(cur, long_running),
        }
        result["locks"] = lock_holders(cur, result["migrations"].get("pending_paths", []))
        return result
