"""Scratch databases: created for a rehearsal on the target's server, dropped after it.

Only databases named with the pgrollout_ prefix are ever dropped, so a typo
in a variable cannot drop a real database.
"""
from __future__ import annotations

from typing import Any

from .connection import connect

PREFIX = "pgrollout_"


class ScratchError(Exception):
    """A scratch database request that is refused; nothing was changed."""


def _checked(name: str) -> str:
    if not name.startswith(PREFIX):
        raise ScratchError(f"scratch database {name!r} must be named {PREFIX}...: pgrollout creates and drops "
                           "only databases of its own")
    return name


def exists(params: dict[str, Any], name: str) -> bool:
    with connect(params, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def create_database(params: dict[str, Any], name: str) -> None:
    from psycopg import sql

    from .controller import ControllerWatch
    from .leftovers import scratch_comment

    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_checked(name)))
    # Who made it, so that a later run can drop it if this run dies before it does.
    comment = sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        sql.Identifier(name), sql.Literal(scratch_comment(ControllerWatch().controller_pid())))
    with connect(params, autocommit=True) as conn:
        conn.execute(statement)
        conn.execute(comment)


def drop_database(params: dict[str, Any], name: str) -> None:
    from psycopg import sql

    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(_checked(name)))
    with connect(params, autocommit=True) as conn:
        conn.execute(statement)


def run_sql_file(params: dict[str, Any], path: str) -> None:
    """Run a whole SQL file in one transaction (setup such as the compatibility layer)."""
    import psycopg

    with open(path) as handle:
        text = handle.read()
    try:
        with connect(params) as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(text)
    except psycopg.Error as exc:
        raise ScratchError(f"{path}: SQLSTATE {exc.sqlstate}: {str(exc).strip()}; nothing of it was applied") from exc
