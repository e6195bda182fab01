"""Verification specs written from what a dry run observed.

The migration (and the pending files before it) runs in a transaction that is
rolled back, as the dry run does; the catalog is read before and after it, and
the difference becomes checks: the tables, columns, indexes, constraints
(foreign keys included), functions, RLS state and policies that must exist
after the forward file, and for the rollback spec that they are gone again
(and what the migration dropped or changed is back). Names travel as query
parameters, never inside the SQL text.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import ledger, migrate
from .plan import Layout, PlanError
from .sqlfile import load

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor

_SKIP = "('pg_catalog', 'information_schema', 'pg_toast', 'supabase_migrations', 'pgrollout')"
_CATALOG = {
    "table": (f"SELECT schemaname, tablename, NULL FROM pg_tables WHERE schemaname NOT IN {_SKIP}",
              "SELECT 1 FROM pg_tables WHERE schemaname = %(schema)s AND tablename = %(name)s"),
    "rls": (f"""SELECT n.nspname, c.relname, c.relrowsecurity FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')
               AND n.nspname NOT IN {_SKIP}""",
            """SELECT c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = %(schema)s AND c.relname = %(name)s"""),
    "column": (f"""SELECT table_schema, table_name || '.' || column_name, data_type || ' ' || is_nullable
                  FROM information_schema.columns WHERE table_schema NOT IN {_SKIP}""",
               """SELECT data_type || ' ' || is_nullable FROM information_schema.columns
                  WHERE table_schema = %(schema)s AND table_name = %(table)s AND column_name = %(column)s"""),
    "policy": (f"""SELECT schemaname, tablename || '.' || policyname, cmd FROM pg_policies
                  WHERE schemaname NOT IN {_SKIP}""",
               """SELECT cmd FROM pg_policies
                  WHERE schemaname = %(schema)s AND tablename = %(table)s AND policyname = %(policy)s"""),
    "index": (f"SELECT schemaname, indexname, tablename FROM pg_indexes WHERE schemaname NOT IN {_SKIP}",
              "SELECT tablename FROM pg_indexes WHERE schemaname = %(schema)s AND indexname = %(name)s"),
    "constraint": (f"""SELECT n.nspname, r.relname || '.' || c.conname, c.contype::text FROM pg_constraint c
                      JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
                      WHERE n.nspname NOT IN {_SKIP}""",
                   """SELECT c.contype::text FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
                      JOIN pg_namespace n ON n.oid = r.relnamespace
                      WHERE n.nspname = %(schema)s AND r.relname = %(table)s AND c.conname = %(constraint)s"""),
    "function": (f"""SELECT n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', NULL
                    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname NOT IN {_SKIP} AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')""",
                 """SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = %(schema)s AND p.proname = %(name)s
                    AND pg_get_function_identity_arguments(p.oid) = %(args)s"""),
}
# The two-part names (table.column, table.policy, table.constraint) are split on the first dot of what the
# catalog returned; the table's own name comes from pg_class, so a dot inside it would be ambiguous.
_PARTS = {"column": ("table", "column"), "policy": ("table", "policy"), "constraint": ("table", "constraint")}


def catalog(cur: Cursor) -> dict[tuple[str, str, str], Any]:
    """(kind, schema, name) -> value, for every object a spec can check."""
    objects: dict[tuple[str, str, str], Any] = {}
    for kind, (sql, _) in _CATALOG.items():
        cur.execute(sql)
        for schema, name, value in cur.fetchall():
            objects[(kind, schema, name)] = True if value is None else value  # tables, functions: they exist
    return objects


def _params(kind: str, schema: str, name: str) -> dict[str, str]:
    if kind in _PARTS:
        first, second = name.split(".", 1)
        return {"schema": schema, _PARTS[kind][0]: first, _PARTS[kind][1]: second}
    if kind == "function":
        fname, args = name.split("(", 1)
        return {"schema": schema, "name": fname, "args": args[:-1]}
    return {"schema": schema, "name": name}


def _check(kind: str, schema: str, name: str, value: Any) -> dict[str, Any]:
    """A check that the object is as `value` says (None: absent)."""
    label = f"{'table' if kind == 'rls' else kind} {schema}.{name}"
    sql = " ".join(_CATALOG[kind][1].split())
    if value is None:
        return {"name": f"{label} is absent", "sql": sql, "params": _params(kind, schema, name),
                "expect": {"count": 0}}
    if kind in ("table", "function"):
        return {"name": f"{label} exists", "sql": sql, "params": _params(kind, schema, name),
                "expect": {"count": 1}}
    shown = {"rls": lambda v: f"row-level security {'on' if v else 'off'}"}.get(kind, lambda v: f"is {v}")(value)
    return {"name": f"{label} {shown}", "sql": sql, "params": _params(kind, schema, name),
            "expect": {"rows": [[value]]}}


def checks_between(before: dict, after: dict) -> list[dict[str, Any]]:
    """Checks that hold in `after` and not in `before`: what changed, was added or dropped."""
    result = []
    for key in sorted(set(before) | set(after), key=lambda k: (k[0] != "table", k)):
        old, new = before.get(key, ...), after.get(key, ...)
        if old == new:
            continue
        kind, schema, name = key
        if kind == "rls" and new is ... or (kind == "rls" and old is ... and new is False):
            continue  # a dropped table's RLS goes with it; a new table without RLS: the audit says so
        result.append(_check(kind, schema, name, None if new is ... else new))
    return result


def observe(conn: Connection, layout: Layout, version: str) -> dict[str, Any]:
    """Run the pending files up to `version`, then its rollback file, in one transaction that is rolled back."""
    import psycopg

    migrations = {m.number: m for m in layout.migrations()}
    target = migrations.get(int(version))
    if target is None:
        raise PlanError(f"no migration {version} in {layout.migrations_dir}")
    opts = migrate.Options(check_mode=True)
    seen: dict[str, Any] = {"migration": target}
    with conn.transaction() as tx, conn.cursor() as cur:
        migrate.begin(cur, opts, "5min")
        ledger.ensure(conn)
        applied = ledger.read(cur)
        if target.number in applied:
            raise PlanError(f"migration {target.stem} is applied here already: generate its spec on a database "
                            "where it is pending (dev, before you roll it out)")
        for number in sorted(n for n in migrations if n < target.number and n not in applied):
            earlier = migrations[number]
            migrate.run_file(conn, cur, migrate.Item(load(earlier.up, earlier.version, earlier.name)), opts)
        seen["before"] = catalog(cur)
        migrate.run_file(conn, cur, migrate.Item(load(target.up, target.version, target.name)), opts)
        seen["after"] = catalog(cur)
        if os.path.exists(target.down):
            down = load(target.down, target.version, target.name)
            migrate.run_file(conn, cur, migrate.Item(down, direction="down"), opts)
            seen["rolled_back"] = catalog(cur)
        raise psycopg.Rollback(tx)
    return seen


def spec_document(stem: str, version: str, checks: list[dict[str, Any]], rollback: bool) -> str:
    import yaml

    what = "after its rollback" if rollback else "after the forward path"
    header = (f"# Verification of {stem} {what}, generated from what a dry run observed\n"
              "# (make spec). Add behaviour checks (README, Verification specs); regenerate with FORCE=1.\n")
    body = yaml.safe_dump({"migration": version, "checks": checks}, sort_keys=False, allow_unicode=True, width=100)
    return "---\n" + header + body


def holds_checks(path: str) -> bool:
    import yaml

    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    return bool(isinstance(document, dict) and document.get("checks"))


def generate(conn: Connection, layout: Layout, version: str, force: bool = False) -> dict[str, Any]:
    """Write the forward and rollback specs of `version`; returns what was written or kept."""
    seen = observe(conn, layout, version)
    target = seen["migration"]
    forward = checks_between(seen["before"], seen["after"])
    if not forward:
        raise PlanError(f"{target.stem} changes nothing a spec can check (tables, columns, indexes, constraints, "
                        "functions, RLS, policies): write its checks by hand")
    specs = [(target.spec, forward, False)]
    if "rolled_back" in seen:
        back = checks_between(seen["after"], seen["rolled_back"]) or checks_between(seen["after"], seen["before"])
        specs.append((target.rollback_spec, back, True))
    result: dict[str, Any] = {"written": [], "kept": []}
    for path, found, rollback in specs:
        if holds_checks(path) and not force:
            result["kept"].append(path)
            continue
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(spec_document(target.stem, target.version, found, rollback))
        result["written"].append({"path": path, "checks": len(found)})
    return result
