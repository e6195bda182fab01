"""The extensions a plan creates that the target's server cannot provide, found before anything runs.

A `CREATE EXTENSION` the server has no files for fails midway through a run
(after the backup, inside the plan's transaction); the preflight and the dry
run list every such statement with its file and line instead, and what the
target needs to provide it.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import sqlfile

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Cursor

# Debian/Ubuntu (apt.postgresql.org) packages of extensions Supabase projects use; {v} is the major version
_PACKAGES = {"vector": "postgresql-{v}-pgvector", "http": "postgresql-{v}-http", "postgis": "postgresql-{v}-postgis-3",
             "pg_cron": "postgresql-{v}-cron", "pgtap": "postgresql-{v}-pgtap", "hypopg": "postgresql-{v}-hypopg",
             "pg_hashids": "postgresql-{v}-hashids", "rum": "postgresql-{v}-rum", "plv8": "postgresql-{v}-plv8",
             "pgroonga": "postgresql-{v}-pgdg-pgroonga"}


def created(files: list[sqlfile.MigrationFile]) -> list[tuple[str, int, str]]:
    """(file, line, extension) of every CREATE EXTENSION in the files, in order."""
    from pglast import ast

    found = []
    for mf in files:
        for stmt in mf.statements:
            if not stmt.kind.lstrip("!").startswith("CreateExtension"):
                continue
            found += [(mf.path, stmt.line, node.extname) for node in sqlfile.nodes(stmt)
                      if isinstance(node, ast.CreateExtensionStmt)]
    return found


def unavailable(cur: Cursor, wanted: list[tuple[str, int, str]], server_version_num: int) -> list[dict[str, Any]]:
    """One entry per CREATE EXTENSION (`created`'s) the server cannot provide (not installed, not available)."""
    if not wanted:
        return []
    cur.execute("SELECT name FROM pg_available_extensions UNION SELECT extname FROM pg_extension")
    available = {row[0] for row in cur.fetchall()}
    major = server_version_num // 10000
    out = []
    for path, line, name in wanted:
        if name in available:
            continue
        package = _PACKAGES.get(name, "").format(v=major)
        needs = (f"install {package} on the database server" if package else
                 f"install the {name} extension's files for PostgreSQL {major} on the database server")
        out.append({"file": path, "line": line, "extension": name,
                    "msg": f"{os.path.basename(path)} line {line}: CREATE EXTENSION {name}: the target's server "
                           f"(PostgreSQL {major}) cannot provide it (not in pg_available_extensions). {needs}, "
                           "or on Supabase enable it (Dashboard, Database, Extensions); then run again"})
    return out


STUB_MARK = "pgrollout-stub"  # in the version of every stub pgrollout ships (supabase/stubs)


def stubs(cur: Cursor, created_by_plan: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    """pgrollout's extension stubs on this target: installed ones, and those the plan (`created`'s) would create.

    A stub (opt-in, local clusters only) sends nothing; every run names it so,
    so a green run on a stub is never mistaken for one on the real extension.
    """
    wanted = sorted({name for _unused, _unused, name in created_by_plan})
    cur.execute("SELECT extname, true FROM pg_extension WHERE extversion LIKE %s UNION "
                "SELECT name, false FROM pg_available_extensions WHERE default_version LIKE %s AND name = ANY(%s) "
                "AND installed_version IS NULL ORDER BY 1", (f"%{STUB_MARK}%", f"%{STUB_MARK}%", wanted))
    return [{"extension": name, "installed": installed,
             "msg": f"extension {name} {'is' if installed else 'will be'} a pgrollout STUB here, not the real "
                    f"{name}: it sends nothing"} for name, installed in cur.fetchall()]
