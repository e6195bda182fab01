"""Table locks: which existing tables a migration locks (from its parse tree), taking
them all up front within one time bound, and who holds locks on them.

Why up front: lock_timeout bounds each lock WAIT, not the time a table stays
locked. A migration that locks kb_patterns and then waits for kb_correlations
keeps kb_patterns' readers queued for that whole wait too, and one wait per
blocked table adds up. Taking every lock in one statement whose
statement_timeout equals lock_timeout bounds the queue behind any of them by
lock_timeout, once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .sqlfile import Statement, nodes

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Cursor

# Table lock modes, weakest first (PostgreSQL docs, "Table-Level Locks").
LOCK_STRENGTH = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
                 "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
# In a lock plan, a dropped table: ACCESS EXCLUSIVE on it and on every table a
# foreign key links it with (dropping the key locks both ends).
DROP = "DropTable"
PLAN_STRENGTH = (*LOCK_STRENGTH, DROP)
SQL_MODE = {"AccessExclusiveLock": "ACCESS EXCLUSIVE", "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
            "ShareLock": "SHARE"}
# SQLSTATEs that mean "could not get a lock in time": retry later.
LOCK_TIMEOUT_STATES = ("55P03",)


def stronger(a: str | None, b: str) -> str:
    return b if a is None or PLAN_STRENGTH.index(b) > PLAN_STRENGTH.index(a) else a


def strongest_locks(rows: list[tuple[str, str]]) -> list[dict[str, str]]:
    """One entry per relation: the strongest mode held, which decides who waits."""
    best: dict[str, str] = {}
    for relation, mode in rows:
        best[relation] = stronger(best.get(relation), mode)
    return [{"relation": r, "mode": best[r]} for r in sorted(best)]


Relation = tuple  # (schema or None, name) as written: quoted names keep their case, unquoted are folded


def _name(range_var: Any) -> Relation:
    return (range_var.schemaname or None, range_var.relname)


def _dotted(parts: Any) -> Relation:
    names = [p.sval for p in parts]
    return (names[-2] if len(names) > 1 else None, names[-1])


def _foreign_key_targets(create: Any) -> list[Relation]:
    from pglast import ast
    from pglast.enums import ConstrType

    constraints = [c for el in create.tableElts or () if isinstance(el, ast.ColumnDef)
                   for c in el.constraints or ()]
    constraints += [el for el in create.tableElts or () if isinstance(el, ast.Constraint)]
    return [_name(c.pktable) for c in constraints if c.contype == ConstrType.CONSTR_FOREIGN and c.pktable]


def statement_locks(node: Any) -> list[tuple[Relation, str]]:
    """((schema, name), lock mode) the statement takes on relations that may already exist."""
    from pglast import ast
    from pglast.enums import ObjectType

    kind = type(node).__name__
    if isinstance(node, (ast.AlterTableStmt, ast.RenameStmt)) and node.relation:
        return [(_name(node.relation), "AccessExclusiveLock")]
    if isinstance(node, (ast.CreatePolicyStmt, ast.AlterPolicyStmt)):
        return [(_name(node.table), "AccessExclusiveLock")]
    if isinstance(node, ast.TruncateStmt):
        return [(_name(r), "AccessExclusiveLock") for r in node.relations]
    if isinstance(node, ast.CreateTrigStmt):
        return [(_name(node.relation), "ShareRowExclusiveLock")]
    if isinstance(node, ast.IndexStmt) and not node.concurrent:
        return [(_name(node.relation), "ShareLock")]
    if isinstance(node, ast.CreateStmt):
        return [(t, "ShareRowExclusiveLock") for t in _foreign_key_targets(node)]
    if kind == "DropStmt" and node.removeType == ObjectType.OBJECT_POLICY:
        return [(_dotted(obj[:-1]), "AccessExclusiveLock") for obj in node.objects]
    if kind == "DropStmt" and node.removeType == ObjectType.OBJECT_TABLE:
        return [(_dotted(obj), DROP) for obj in node.objects]
    return []


def lock_plan(statements: list[Statement]) -> dict[Relation, str]:
    """(schema, name) as written -> strongest mode the migration takes on it."""

    plan: dict[Relation, str] = {}
    for stmt in statements:
        for node in nodes(stmt):
            for relation, mode in statement_locks(node):
                plan[relation] = stronger(plan.get(relation), mode)
    return plan


def file_plan(mf: Any) -> dict[Relation, str]:
    """A MigrationFile's lock plan: the one the preflight computed where the file came from its parse, else
    read from the statements' trees."""
    return dict(mf.lock_plan) if mf.lock_plan is not None else lock_plan(mf.statements)


def merge(plans: list[dict[Relation, str]]) -> dict[Relation, str]:
    merged: dict[Relation, str] = {}
    for plan in plans:
        for relation, mode in plan.items():
            merged[relation] = stronger(merged.get(relation), mode)
    return merged


# Names are resolved as the server would (search_path for unqualified ones),
# and only the relation kinds LOCK TABLE accepts are locked up front: tables,
# partitioned tables, views and foreign tables (not indexes, sequences or
# materialized views, whose statements take their own locks under lock_timeout).
_RESOLVE_SQL = """
WITH wanted AS (
  SELECT to_regclass(CASE WHEN s IS NULL THEN format('%%I', n) ELSE format('%%I.%%I', s, n) END) AS oid, mode
  FROM unnest(%s::text[], %s::text[], %s::text[]) AS w(s, n, mode)
),
existing AS (SELECT oid, mode FROM wanted WHERE oid IS NOT NULL),
-- Dropping a table also drops the foreign keys between it and other tables,
-- which locks those tables ACCESS EXCLUSIVE too (auth.users included).
dropped_fk AS (
  SELECT CASE WHEN c.conrelid = e.oid THEN c.confrelid ELSE c.conrelid END AS oid,
         'AccessExclusiveLock' AS mode
  FROM existing e JOIN pg_constraint c ON c.contype = 'f' AND e.oid IN (c.conrelid, c.confrelid)
  WHERE e.mode = 'DropTable'
)
SELECT n.nspname, r.relname, CASE a.mode WHEN 'DropTable' THEN 'AccessExclusiveLock' ELSE a.mode END
FROM (SELECT oid, mode FROM existing UNION SELECT oid, mode FROM dropped_fk) a
JOIN pg_class r ON r.oid = a.oid JOIN pg_namespace n ON n.oid = r.relnamespace
WHERE r.relkind IN ('r', 'p', 'v', 'f')
ORDER BY 1, 2
"""


def resolve(cur: Cursor, plan: dict[Relation, str]) -> list[tuple[str, str, str]]:
    """(schema, name, strongest mode) of the planned relations that exist now and LOCK TABLE accepts."""
    if not plan:
        return []
    keys = list(plan)
    cur.execute(_RESOLVE_SQL, ([k[0] for k in keys], [k[1] for k in keys], [plan[k] for k in keys]))
    best: dict[tuple[str, str], str] = {}
    for schema, name, mode in cur.fetchall():
        best[(schema, name)] = stronger(best.get((schema, name)), mode)
    return [(s, n, m) for (s, n), m in sorted(best.items())]


def plain(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def take_all(cur: Cursor, resolved: list[tuple[str, str, str]], lock_timeout: str) -> None:
    """Take every planned lock in ONE statement bounded by lock_timeout as a whole."""
    import secrets

    from psycopg import sql

    if not resolved:
        return
    body = "\n".join(
        sql.SQL("  LOCK TABLE {}.{} IN {} MODE;").format(sql.Identifier(s), sql.Identifier(n),
                                                         sql.SQL(SQL_MODE[m])).as_string(cur)
        for s, n, m in resolved)
    tag = f"$pgrollout_locks_{secrets.token_hex(8)}$"
    # Read the statement_timeout in force BEFORE changing it (a SELECT that sets
    # and reads it in one go returns the new value twice).
    cur.execute("SHOW statement_timeout")
    previous = cur.fetchone()[0]
    cur.execute("SELECT set_config('statement_timeout', %s, true)", (lock_timeout,))
    try:
        cur.execute(f"DO {tag}\nBEGIN\n{body}\nEND\n{tag}", prepare=False)
    finally:
        if cur.connection.info.transaction_status == 2:  # INTRANS: still usable
            cur.execute("SELECT set_config('statement_timeout', %s, true)", (previous,))


BLOCKERS_SQL = """
SELECT a.pid, a.application_name, a.usename, a.state,
       to_char(a.query_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS query_start,
       extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::int AS transaction_seconds,
       left(a.query, 200) AS query,
       string_agg(DISTINCT n.nspname || '.' || c.relname || ' ' || l.mode, ', ') AS locks
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid()
  AND n.nspname || '.' || c.relname = ANY(%s)
GROUP BY a.pid, a.application_name, a.usename, a.state, a.query_start, a.xact_start, a.query
ORDER BY transaction_seconds DESC
"""


def holders(cur: Cursor, relations: list[str]) -> list[dict[str, Any]]:
    """Other sessions holding any lock on these relations (schema.table)."""
    if not relations:
        return []
    cur.execute(BLOCKERS_SQL, (relations,))
    keys = ("pid", "application_name", "user", "state", "query_start", "transaction_seconds", "query", "locks")
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]
