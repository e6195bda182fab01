"""Leftovers of killed runs, removed by the next run that holds the lease (and reported).

- passfiles (pgrollout-pass-<pid>-*) in the temp folder whose pid is gone: they hold a password;
- hidden .partial archives in the backup folder (a pg_dump that never finished);
- scratch databases (pgrollout_rehearsal_*, pgrollout_restore_*) whose creating
  ansible-playbook on this control node is gone, or older than a day.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from typing import TYPE_CHECKING, Any

from .connection import PASSFILE_PREFIX

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection

SCRATCH_MAX_AGE = 86400


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def passfiles(folder: str | None = None) -> list[str]:
    folder = folder or tempfile.gettempdir()
    removed = []
    for name in os.listdir(folder):
        if not name.startswith(PASSFILE_PREFIX):
            continue
        pid = name[len(PASSFILE_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            os.unlink(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
    return removed


def partial_archives(backup_dir: str | None) -> list[str]:
    if not backup_dir or not os.path.isdir(backup_dir):
        return []
    removed = []
    for name in os.listdir(backup_dir):
        if name.startswith(".") and name.endswith(".partial"):
            path = os.path.join(backup_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
            removed.append(path)
    return removed


def scratch_comment(controller_pid: int | None) -> str:
    """What a scratch database records about its creator (COMMENT ON DATABASE)."""
    return json.dumps({"pgrollout_scratch": True, "node": socket.gethostname(), "pid": controller_pid,
                       "created": int(time.time())})


def _stale(comment: str | None) -> bool:
    try:
        info = json.loads(comment or "")
    except ValueError:
        return False
    if not isinstance(info, dict) or not info.get("pgrollout_scratch"):
        return False
    if time.time() - float(info.get("created", 0)) > SCRATCH_MAX_AGE:
        return True
    pid = info.get("pid")
    return info.get("node") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid)


def scratch_databases(conn: Connection) -> list[str]:
    """Drop scratch databases of dead runs; `conn` is in autocommit mode."""
    from psycopg import sql

    rows = conn.execute(
        "SELECT d.datname, shobj_description(d.oid, 'pg_database') FROM pg_database d "
        "WHERE d.datname LIKE 'pgrollout\\_%'").fetchall()
    removed = []
    for name, comment in rows:
        if _stale(comment):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            removed.append(name)
    return removed


def clean(conn: Connection, backup_dir: str | None) -> dict[str, Any]:
    return {"passfiles": passfiles(), "partial_archives": partial_archives(backup_dir),
            "scratch_databases": scratch_databases(conn)}
