"""The Supabase compatibility layer on a plain PostgreSQL target (prepare.yml, `make db-prepare`).

It is never applied to a Supabase project (its services' own records are
there: auth.schema_migrations, storage.migrations, the supabase_vault
extension), and `changed` is measured: the catalog before and after.
"""
from __future__ import annotations

from typing import Any

from . import connection, schema
from .scratch import run_sql_file

SUPABASE_MARKS_SQL = """
SELECT array_remove(ARRAY[
  CASE WHEN to_regclass('auth.schema_migrations') IS NOT NULL THEN 'auth.schema_migrations' END,
  CASE WHEN to_regclass('storage.migrations') IS NOT NULL THEN 'storage.migrations' END,
  CASE WHEN EXISTS (SELECT FROM pg_extension WHERE extname = 'supabase_vault') THEN 'extension supabase_vault' END
], NULL)
"""


class CompatError(Exception):
    pass


def supabase_marks(params: dict[str, Any]) -> list[str]:
    """What shows the target is a real Supabase project (empty for plain PostgreSQL)."""
    with connection.connect(params, autocommit=True) as conn:
        return list(conn.execute(SUPABASE_MARKS_SQL).fetchone()[0])


def _digest(params: dict[str, Any]) -> str:
    with connection.connect(params) as conn, conn.transaction(), conn.cursor() as cur:
        return schema.digest(schema.snapshot(cur))


def prepare(params: dict[str, Any], files: list[str], check_mode: bool) -> dict[str, Any]:
    """Apply `files` (the layer first) unless the target is Supabase; changed when the catalog differs after."""
    marks = supabase_marks(params)
    if marks:
        raise CompatError(f"the target is a Supabase project ({', '.join(marks)}): the compatibility layer is never "
                          "applied to one, Supabase provides it. Nothing was changed.")
    if check_mode:
        return {"changed": None, "applied": [], "msg": f"dry run: would apply {', '.join(files)} (nothing was changed)"}
    before = _digest(params)
    for path in files:
        run_sql_file(params, path)  # each in one transaction: all of a file or nothing of it
    changed = _digest(params) != before
    return {"changed": changed, "applied": files,
            "msg": ("applied " if changed else "already in place, nothing changed: ") + ", ".join(files)}
