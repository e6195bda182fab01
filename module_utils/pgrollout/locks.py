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

from .sqlfile import Statement

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


def _name(range_var: Any) -> str:
    return f"{range_var.schemaname}.{range_var.relname}" if range_var.schemaname else range_var.relname


def _foreign_key_targets(create: Any) -> list[str]:
    from pglast import ast
    from pglast.enums import ConstrType

    constraints = [c for el in create.tableElts or () if isinstance(el, ast.ColumnDef)
                   for c in el.constraints or ()]
    constraints += [el for el in create.tableElts or () if isinstance(el, ast.Constraint)]
    return [_name(c.pktable) for c in constraints if c.contype == ConstrType.CONSTR_FOREIGN and c.pktable]


def statement_locks(node: Any) -> list[tuple[str, str]]:
    """(relation as written, lock mode) the statement takes on tables that may already exist."""
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
        return [(".".join(s.sval for s in obj[:-1]), "AccessExclusiveLock") for obj in node.objects]
    if kind == "DropStmt" and node.removeType == ObjectType.OBJECT_TABLE:
        return [(".".join(s.sval for s in obj), DROP) for obj in node.objects]
    return []


def lock_plan(statements: list[Statement]) -> dict[str, str]:
    """Relation as written -> strongest mode the migration takes on it."""
    import pglast

    plan: dict[str, str] = {}
    for stmt in statements:
        (raw,) = pglast.parse_sql(stmt.text)
        for relation, mode in statement_locks(raw.stmt):
            plan[relation] = stronger(plan.get(relation), mode)
    return plan


_RESOLVE_SQL = """
WITH wanted AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS w(name, mode)),
existing AS (
  SELECT to_regclass(name) AS oid, mode FROM wanted WHERE to_regclass(name) IS NOT NULL
),
-- Dropping a table also drops the foreign keys between it and other tables,
-- which locks those tables ACCESS EXCLUSIVE too (auth.users included).
dropped_fk AS (
  SELECT CASE WHEN c.conrelid = e.oid THEN c.confrelid ELSE c.conrelid END AS oid,
         'AccessExclusiveLock' AS mode
  FROM existing e JOIN pg_constraint c ON c.contype = 'f' AND e.oid IN (c.conrelid, c.confrelid)
  WHERE e.mode = 'DropTable'
)
SELECT quote_ident(n.nspname) || '.' || quote_ident(r.relname), n.nspname || '.' || r.relname,
       CASE a.mode WHEN 'DropTable' THEN 'AccessExclusiveLock' ELSE a.mode END
FROM (SELECT oid, mode FROM existing UNION SELECT oid, mode FROM dropped_fk) a
JOIN pg_class r ON r.oid = a.oid JOIN pg_namespace n ON n.oid = r.relnamespace
ORDER BY 2
"""


def resolve(cur: Cursor, plan: dict[str, str]) -> list[tuple[str, str, str]]:
    """(quoted name, plain name, strongest mode) of the planned relations that exist now."""
    if not plan:
        return []
    names, modes = list(plan), [plan[n] for n in plan]
    cur.execute(_RESOLVE_SQL, (names, modes))
    best: dict[tuple[str, str], str] = {}
    for quoted, plain, mode in cur.fetchall():
        best[(quoted, plain)] = stronger(best.get((quoted, plain)), mode)
    return [(q, p, m) for (q, p), m in sorted(best.items(), key=lambda kv: kv[0][1])]


def take_all(cur: Cursor, resolved: list[tuple[str, str, str]], lock_timeout: str) -> None:
    """Take every planned lock in ONE statement bounded by lock_timeout as a whole."""
    if not resolved:
        return
    body = "\n".join(f"  LOCK TABLE {quoted} IN {SQL_MODE[mode]} MODE;" for quoted, _, mode in resolved)
    cur.execute("SELECT set_config('statement_timeout', current_setting('lock_timeout'), true), "
                "current_setting('statement_timeout')")
    previous = cur.fetchone()[1]
    cur.execute(f"DO $pgrollout_locks$\nBEGIN\n{body}\nEND\n$pgrollout_locks$", prepare=False)
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
