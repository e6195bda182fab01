"""Schema snapshots: what a migration adds, changes or drops, and proof that nothing changed."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Cursor

# Everything but the system schemas and the ledger, whose rows change on every apply.
_SCHEMA_FILTER = (
    "NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'supabase_migrations', 'pgrollout')"
    " AND {col} NOT LIKE 'pg_temp%' AND {col} NOT LIKE 'pg_toast_temp%'"
)

_QUERIES: dict[str, str] = {
    "tables": """SELECT n.nspname || '.' || c.relname,
                        CASE WHEN c.relrowsecurity THEN 'rls on' ELSE 'rls off' END
                        || CASE WHEN c.relforcerowsecurity THEN ', forced' ELSE '' END
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'p') AND n.nspname {filter}""",
    "columns": """SELECT table_schema || '.' || table_name || '.' || column_name,
                         data_type || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END
                         || coalesce(' default ' || column_default, '')
                  FROM information_schema.columns WHERE table_schema {filter}""",
    "policies": """SELECT schemaname || '.' || tablename || '.' || policyname,
                          permissive || ' ' || cmd || ' to ' || array_to_string(roles, ',')
                          || coalesce(' using ' || qual, '') || coalesce(' check ' || with_check, '')
                   FROM pg_policies WHERE schemaname {filter}""",
    "indexes": """SELECT schemaname || '.' || indexname, indexdef
                  FROM pg_indexes WHERE schemaname {filter}""",
    "constraints": """SELECT n.nspname || '.' || c.conrelid::regclass::text || '.' || c.conname,
                             pg_get_constraintdef(c.oid)
                      FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                      WHERE c.conrelid <> 0 AND n.nspname {filter}""",
    "functions": """SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                           md5(pg_get_functiondef(p.oid))
                    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE p.prokind IN ('f', 'p') AND n.nspname {filter}""",
    "schemas": """SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace
                  WHERE nspname {filter}""",
}


def snapshot(cur: Cursor) -> dict[str, dict[str, str]]:
    """Object name -> definition, per kind, for every user schema."""
    result: dict[str, dict[str, str]] = {}
    for kind, sql in _QUERIES.items():
        column = "nspname" if kind in ("tables", "constraints", "functions", "schemas") else (
            "table_schema" if kind == "columns" else "schemaname")
        flt = _SCHEMA_FILTER.format(col=column)
        cur.execute(sql.format(filter=flt))
        result[kind] = {name: definition for name, definition in cur.fetchall()}
    return result


def diff(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Added, dropped and changed objects per kind, leaving out kinds with no change."""
    changes: dict[str, Any] = {}
    for kind in before.keys() | after.keys():
        old, new = before.get(kind, {}), after.get(kind, {})
        entry = {
            "added": sorted(new.keys() - old.keys()),
            "dropped": sorted(old.keys() - new.keys()),
            "changed": sorted(k for k in old.keys() & new.keys() if old[k] != new[k]),
        }
        if any(entry.values()):
            changes[kind] = entry
    return dict(sorted(changes.items()))


_SINGULAR = {"tables": "table", "columns": "column", "policies": "policy", "indexes": "index",
             "constraints": "constraint", "functions": "function", "schemas": "schema"}


def render(snap: dict[str, dict[str, str]], names: set[str]) -> str:
    """Text for Ansible's --diff: only the objects named, one per line."""
    lines = []
    for kind in sorted(snap):
        for name in sorted(n for n in snap[kind] if n in names):
            definition = " ".join(snap[kind][name].split())
            lines.append(f"{_SINGULAR.get(kind, kind)} {name}: {definition}")
    return "\n".join(lines) + ("\n" if lines else "")
