"""The migration ledger: Supabase's own table plus pgrollout's checksum record.

supabase_migrations.schema_migrations is written exactly as the Supabase CLI
writes it (version, statements, name), so `supabase migration list` and
`supabase db push` agree with pgrollout. pgrollout.migrations holds the
checksum of what was applied; pgrollout.history keeps every apply and rollback;
pgrollout.steps the progress of a non-transactional file; pgrollout.lease the
run that holds the database (lease.py).

The tool's tables are created or upgraded once per run, by `ensure`, in a short
transaction of its own under lock_timeout, and only when something is missing:
never inside a migration's transaction (an ALTER TABLE there would take ACCESS
EXCLUSIVE on the ledger after every other lock, behind any reader of it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor

# (what must exist, the SQL that creates it), in order.
SCHEMA_PARTS: tuple[tuple[str, str], ...] = (
    ("schema supabase_migrations", "CREATE SCHEMA IF NOT EXISTS supabase_migrations"),
    ("table supabase_migrations.schema_migrations",
     "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY)"),
    ("column supabase_migrations.schema_migrations.statements",
     "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[]"),
    ("column supabase_migrations.schema_migrations.name",
     "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text"),
    ("schema pgrollout", "CREATE SCHEMA IF NOT EXISTS pgrollout; REVOKE ALL ON SCHEMA pgrollout FROM PUBLIC"),
    ("table pgrollout.migrations", """CREATE TABLE IF NOT EXISTS pgrollout.migrations (
        version text PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        applied_by text NOT NULL DEFAULT current_user,
        duration_ms integer NOT NULL,
        run_id text)"""),
    ("table pgrollout.history", """CREATE TABLE IF NOT EXISTS pgrollout.history (
        id bigserial PRIMARY KEY,
        version text NOT NULL,
        name text NOT NULL,
        direction text NOT NULL,
        checksum text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        by text NOT NULL DEFAULT current_user,
        duration_ms integer NOT NULL,
        run_id text,
        note text)"""),
    # Older installs limited direction to up/down/drift_accepted.
    ("no constraint pgrollout.history.history_direction_check",
     "ALTER TABLE pgrollout.history DROP CONSTRAINT IF EXISTS history_direction_check"),
    ("table pgrollout.steps", """CREATE TABLE IF NOT EXISTS pgrollout.steps (
        version text NOT NULL,
        checksum text NOT NULL,
        statement_number integer NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (version, statement_number))"""),
    ("column pgrollout.steps.direction",
     "ALTER TABLE pgrollout.steps ADD COLUMN IF NOT EXISTS direction text NOT NULL DEFAULT 'up'"),
    ("column pgrollout.steps.statement_sha",
     "ALTER TABLE pgrollout.steps ADD COLUMN IF NOT EXISTS statement_sha text"),
    ("table pgrollout.lease", """CREATE TABLE IF NOT EXISTS pgrollout.lease (
        scope text PRIMARY KEY DEFAULT 'database' CHECK (scope = 'database'),
        run_id text NOT NULL,
        kind text NOT NULL,
        inventory_host text,
        os_user text,
        control_node text,
        controller_pid integer,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now(),
        ttl_seconds integer NOT NULL)"""),
    ("table pgrollout.lease_events", """CREATE TABLE IF NOT EXISTS pgrollout.lease_events (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        event text NOT NULL,
        run_id text NOT NULL,
        by_run_id text,
        by_user text NOT NULL DEFAULT current_user,
        reason text)"""),
    # the catalog as the last run that changed the target left it (schema.py): drift is measured against it
    ("table pgrollout.catalog_snapshots", """CREATE TABLE IF NOT EXISTS pgrollout.catalog_snapshots (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        run_id text,
        digest text NOT NULL,
        objects jsonb NOT NULL,
        note text)"""),
)

_EXISTING_SQL = """
SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname IN ('supabase_migrations', 'pgrollout')
UNION ALL
SELECT 'table ' || n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('supabase_migrations', 'pgrollout') AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('supabase_migrations', 'pgrollout') AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint pgrollout.history.' || conname FROM pg_constraint
WHERE conrelid = to_regclass('pgrollout.history')
"""

# One key for every pgrollout run on a database: held for each commit.
ADVISORY_LOCK_KEY = 0x7067726F6C6C  # "pgroll"


@dataclass(frozen=True)
class Applied:
    version: str
    name: str | None
    checksum: str | None  # None when applied by another tool (the Supabase CLI)


class ForeignLedgerError(RuntimeError):
    """Another tool's ledger says a migration failed halfway: a human fixes that first."""


class Recorded(dict):
    """Applied migrations by version number, with what another tool's ledger covers.

    golang-migrate records only its current version: every version up to it
    counts as applied (checksum unknown) unless pgrollout recorded it itself.
    """

    covered_upto: int | None = None
    tool: str | None = None

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (
            isinstance(key, int) and self.covered_upto is not None and key <= self.covered_upto)

    def get(self, key: int, default: Any = None) -> Any:
        if super().__contains__(key):
            return self[key]
        if key in self:
            return Applied(str(key), None, None)
        return default


# Which ledgers the database has, in one query (read runs before every file): the Supabase CLI's and
# pgrollout's tables, golang-migrate's public.schema_migrations (version, dirty), Flyway's history.
_LEDGERS_SQL = """
SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL,
       to_regclass('pgrollout.migrations') IS NOT NULL,
       (SELECT count(*) = 2 FROM pg_attribute
        WHERE attrelid = to_regclass('public.schema_migrations') AND attname IN ('version', 'dirty')
          AND attnum > 0 AND NOT attisdropped),
       to_regclass('flyway_schema_history') IS NOT NULL
"""


def _golang(cur: Cursor, recorded: Recorded) -> None:
    """golang-migrate's ledger: only its current version, every version up to it applied."""
    cur.execute("SELECT version::bigint, dirty FROM public.schema_migrations ORDER BY version DESC LIMIT 1")
    row = cur.fetchone()
    if row and row[1]:
        raise ForeignLedgerError(
            f"golang-migrate's ledger (public.schema_migrations) marks version {row[0]} dirty: a migration "
            "failed halfway under golang-migrate. Repair the database by hand, then clear the flag "
            f"(migrate force {row[0]}, or UPDATE public.schema_migrations SET dirty = false) and run again")
    if row:
        recorded.covered_upto, recorded.tool = int(row[0]), "golang-migrate"


def _flyway(cur: Cursor, recorded: Recorded) -> None:
    cur.execute("SELECT version, description, success FROM flyway_schema_history WHERE version IS NOT NULL")
    for version, description, success in cur.fetchall():
        if not success:
            raise ForeignLedgerError(
                f"Flyway's ledger (flyway_schema_history) records version {version} as failed: repair it "
                "(flyway repair) before pgrollout runs")
        if version.isdigit() and int(version) not in recorded:
            recorded[int(version)] = Applied(version, description, None)
    recorded.tool = recorded.tool or "flyway"


def missing_parts(cur: Cursor) -> list[str]:
    cur.execute(_EXISTING_SQL)
    existing = {row[0] for row in cur.fetchall()}
    result = []
    for what, _unused in SCHEMA_PARTS:
        if what.startswith("no "):
            if what[3:] in existing:
                result.append(what)
        elif what not in existing:
            result.append(what)
    return result


def ensure(conn: Connection, lock_timeout: str = "5s") -> list[str]:
    """Create or upgrade the tool's tables, in a transaction of its own; returns what it created."""
    with conn.transaction(), conn.cursor() as cur:
        missing = missing_parts(cur)
        if not missing:
            return []
        cur.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
        for what, sql in SCHEMA_PARTS:
            if what in missing:
                cur.execute(sql)
    return missing


def read(cur: Cursor) -> Recorded:
    """Applied migrations by version number (ours, the Supabase CLI's, golang-migrate's, Flyway's)."""
    result = Recorded()
    cur.execute(_LEDGERS_SQL)
    supabase, ours, golang, flyway = cur.fetchone()
    if supabase:
        _supabase(cur, result, ours)
    if golang:
        _golang(cur, result)
    if flyway:
        _flyway(cur, result)
    return result


def _supabase(cur: Cursor, result: Recorded, ours: bool) -> None:
    if ours:
        cur.execute(
            "SELECT s.version, s.name, m.checksum FROM supabase_migrations.schema_migrations s "
            "LEFT JOIN pgrollout.migrations m USING (version)")
    else:
        cur.execute("SELECT version, name, NULL FROM supabase_migrations.schema_migrations")
    for version, name, checksum in cur.fetchall():
        if version.isdigit():  # the Supabase CLI only writes digits; anything else is not ours to judge
            result[int(version)] = Applied(version, name, checksum)


def details(cur: Cursor) -> dict[int, dict[str, Any]]:
    """pgrollout's record of each applied version: when, by whom, in which run."""
    cur.execute("SELECT to_regclass('pgrollout.migrations') IS NOT NULL")
    if not cur.fetchone()[0]:
        return {}
    cur.execute("SELECT version, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                "applied_by, run_id FROM pgrollout.migrations")
    return {int(v): {"applied_at": at, "applied_by": by, "run_id": run} for v, at, by, run in cur.fetchall()
            if v.isdigit()}


def record(cur: Cursor, *, version: str, name: str, statements: list[str], checksum: str,
           direction: str, duration_ms: int, run_id: str | None, note: str | None = None,
           applied_version: str | None = None) -> None:
    """Write an apply (up, baseline, repair_applied), a rollback (down, repair_reverted) or an accepted
    edit (drift_accepted), with its history row."""
    if direction in ("up", "baseline", "repair_applied"):
        cur.execute("INSERT INTO supabase_migrations.schema_migrations (version, statements, name) "
                    "VALUES (%s, %s, %s)", (version, statements, name))
        cur.execute("INSERT INTO pgrollout.migrations (version, name, checksum, duration_ms, run_id) "
                    "VALUES (%s, %s, %s, %s, %s)", (version, name, checksum, duration_ms, run_id))
    elif direction in ("down", "repair_reverted"):
        recorded = applied_version or version
        cur.execute("DELETE FROM supabase_migrations.schema_migrations WHERE version = %s", (recorded,))
        cur.execute("DELETE FROM pgrollout.migrations WHERE version = %s", (recorded,))
    else:  # drift_accepted: the edited file becomes the applied record
        cur.execute("UPDATE pgrollout.migrations SET checksum = %s WHERE version = %s",
                    (checksum, applied_version or version))
    cur.execute(
        "INSERT INTO pgrollout.history (version, name, direction, checksum, duration_ms, run_id, note) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (version, name, direction, checksum, duration_ms, run_id, note))


def steps_done(cur: Cursor, version: str, direction: str) -> dict[int, tuple[str, str | None]]:
    """Statement number -> (file checksum, statement sha) of the steps of a non-transactional file already run."""
    cur.execute("SELECT statement_number, checksum, statement_sha FROM pgrollout.steps "
                "WHERE version = %s AND direction = %s", (version, direction))
    return {number: (checksum, sha) for number, checksum, sha in cur.fetchall()}


def record_step(cur: Cursor, version: str, direction: str, checksum: str, number: int, sha: str) -> None:
    cur.execute("INSERT INTO pgrollout.steps (version, direction, checksum, statement_number, statement_sha) "
                "VALUES (%s, %s, %s, %s, %s)", (version, direction, checksum, number, sha))


def clear_steps(cur: Cursor, version: str, direction: str) -> None:
    cur.execute("DELETE FROM pgrollout.steps WHERE version = %s AND direction = %s", (version, direction))


def lock_holder(cur: Cursor) -> dict[str, Any] | None:
    """The session holding the pgrollout advisory lock, if any."""
    cur.execute(
        "SELECT a.pid, a.application_name, a.usename, a.client_addr::text, a.backend_start::text "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s AND a.pid <> pg_backend_pid()",
        (ADVISORY_LOCK_KEY,))
    row = cur.fetchone()
    if row is None:
        return None
    keys = ("pid", "application_name", "user", "client_addr", "backend_start")
    return dict(zip(keys, row, strict=True))
