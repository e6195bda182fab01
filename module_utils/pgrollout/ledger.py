"""The migration ledger: Supabase's own table plus pgrollout's checksum record.

supabase_migrations.schema_migrations is written exactly as the Supabase CLI
writes it (version, statements, name), so `supabase migration list` and
`supabase db push` agree with pgrollout. pgrollout.migrations holds the
checksum of what was applied; pgrollout.history keeps every apply and rollback.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Cursor

ENSURE_SQL = (
    "CREATE SCHEMA IF NOT EXISTS supabase_migrations",
    "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations "
    "(version text NOT NULL PRIMARY KEY)",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[]",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text",
    "CREATE SCHEMA IF NOT EXISTS pgrollout",
    "REVOKE ALL ON SCHEMA pgrollout FROM PUBLIC",
    """CREATE TABLE IF NOT EXISTS pgrollout.migrations (
        version text PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        applied_by text NOT NULL DEFAULT current_user,
        duration_ms integer NOT NULL,
        run_id text)""",
    """CREATE TABLE IF NOT EXISTS pgrollout.history (
        id bigserial PRIMARY KEY,
        version text NOT NULL,
        name text NOT NULL,
        direction text NOT NULL CHECK (direction IN ('up', 'down', 'drift_accepted')),
        checksum text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        by text NOT NULL DEFAULT current_user,
        duration_ms integer NOT NULL,
        run_id text,
        note text)""",
    # Progress of a non-transactional migration, so a failed run resumes after its last step.
    """CREATE TABLE IF NOT EXISTS pgrollout.steps (
        version text NOT NULL,
        checksum text NOT NULL,
        statement_number integer NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (version, statement_number))""",
)

# One key for every pgrollout run on a database: rollouts and rollbacks exclude each other.
ADVISORY_LOCK_KEY = 0x7067726F6C6C  # "pgroll"


@dataclass(frozen=True)
class Applied:
    version: str
    name: str | None
    checksum: str | None  # None when applied by another tool (the Supabase CLI)


def ensure(cur: Cursor) -> None:
    for sql in ENSURE_SQL:
        cur.execute(sql)


def exists(cur: Cursor) -> bool:
    cur.execute("SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL")
    return bool(cur.fetchone()[0])


def read(cur: Cursor) -> dict[str, Applied]:
    """Applied migrations by version; empty when the ledger does not exist yet."""
    if not exists(cur):
        return {}
    cur.execute("SELECT to_regclass('pgrollout.migrations') IS NOT NULL")
    has_ours = cur.fetchone()[0]
    if has_ours:
        cur.execute(
            "SELECT s.version, s.name, m.checksum FROM supabase_migrations.schema_migrations s "
            "LEFT JOIN pgrollout.migrations m USING (version)"
        )
    else:
        cur.execute("SELECT version, name, NULL FROM supabase_migrations.schema_migrations")
    return {row[0]: Applied(*row) for row in cur.fetchall()}


def record(cur: Cursor, *, version: str, name: str, statements: list[str], checksum: str,
           direction: str, duration_ms: int, run_id: str | None, note: str | None = None) -> None:
    if direction == "up":
        cur.execute(
            "INSERT INTO supabase_migrations.schema_migrations (version, statements, name) "
            "VALUES (%s, %s, %s)",
            (version, statements, name),
        )
        cur.execute(
            "INSERT INTO pgrollout.migrations (version, name, checksum, duration_ms, run_id) "
            "VALUES (%s, %s, %s, %s, %s)",
            (version, name, checksum, duration_ms, run_id),
        )
    elif direction == "down":
        cur.execute("DELETE FROM supabase_migrations.schema_migrations WHERE version = %s", (version,))
        cur.execute("DELETE FROM pgrollout.migrations WHERE version = %s", (version,))
    else:  # drift_accepted: the edited file becomes the applied record
        cur.execute("UPDATE pgrollout.migrations SET checksum = %s WHERE version = %s", (checksum, version))
    cur.execute(
        "INSERT INTO pgrollout.history (version, name, direction, checksum, duration_ms, run_id, note) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (version, name, direction, checksum, duration_ms, run_id, note),
    )


def steps_done(cur: Cursor, version: str) -> dict[int, str]:
    """Statement number -> checksum of the steps of a non-transactional migration already run."""
    cur.execute("SELECT to_regclass('pgrollout.steps') IS NOT NULL")
    if not cur.fetchone()[0]:
        return {}
    cur.execute("SELECT statement_number, checksum FROM pgrollout.steps WHERE version = %s", (version,))
    return dict(cur.fetchall())


def record_step(cur: Cursor, version: str, checksum: str, number: int) -> None:
    cur.execute("INSERT INTO pgrollout.steps (version, checksum, statement_number) VALUES (%s, %s, %s)",
                (version, checksum, number))


def clear_steps(cur: Cursor, version: str) -> None:
    cur.execute("DELETE FROM pgrollout.steps WHERE version = %s", (version,))


def lock_holder(cur: Cursor) -> dict[str, Any] | None:
    """The session holding the pgrollout advisory lock, if any."""
    cur.execute(
        "SELECT a.pid, a.application_name, a.usename, a.client_addr::text, a.backend_start::text "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s AND a.pid <> pg_backend_pid()",
        (ADVISORY_LOCK_KEY,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    keys = ("pid", "application_name", "user", "client_addr", "backend_start")
    return dict(zip(keys, row, strict=True))
