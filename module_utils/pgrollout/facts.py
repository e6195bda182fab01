"""Read-only facts about a target database, for preflight and evidence."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import ledger, sqlfile

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


def migrations(cur: Cursor, migrations_dir: str | None) -> dict[str, Any]:
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
        result["drifted"] = [f.path for f in files
                             if applied.get(f.version) and applied[f.version].checksum
                             and applied[f.version].checksum != f.checksum]
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


def gather(conn: Connection, migrations_dir: str | None, rls_schemas: list[str], long_running: str) -> dict[str, Any]:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        return {
            **server(cur),
            "migrations": migrations(cur, migrations_dir),
            "rls": rls(cur, rls_schemas),
            "long_running_sessions": sessions(cur, long_running),
        }
