#!/usr/bin/env python3
"""A big data migration's preflight, side by side with psql applying the same file.

Writes one migration of --mb MB of single-row INSERTs (as a data dump or a seed
turned into a migration looks) and measures, as CPU seconds (user + sys, this
process and its children) and wall time:

  (a) psql -X -1 -v ON_ERROR_STOP=1 -f: parse and apply, on a disposable cluster
  (b) pgrollout's read of the file: one parse, statements, lines (sqlfile.load)
  (c) what preflight derives from that parse: lock plan and privilege needs
  (d) the migration review (pgrollout's rules and squawk)

Before issue 19 a 50 MB file sat in (b) for more than 15 minutes (a line count
from the top of the file per statement); preflight refuses files over
pgrollout_max_migration_mb (32) before reading them.

    .venv/bin/python bench/big_file_preflight.py [--mb 50]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "module_utils")]

import localpg  # noqa: E402
from pgrollout import lint, locks, privileges, sqlfile  # noqa: E402
from pgrollout.connection import client_environment  # noqa: E402


def cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def write(path: Path, megabytes: int) -> int:
    """The file, and how many INSERTs it holds."""
    size, count = 0, 0
    with path.open("w") as handle:
        handle.write("CREATE TABLE big_import (id int PRIMARY KEY, note text);\n")
        while size < megabytes * 1024 * 1024:
            line = f"INSERT INTO big_import (id, note) VALUES ({count}, 'row {count} of a bulk import, as data');\n"
            handle.write(line)
            size, count = size + len(line), count + 1
    return count


def measured(label: str, action: Callable[[], Any]) -> Any:
    start_cpu, start = cpu(), time.monotonic()
    result = action()
    print(f"{label:<58} {cpu() - start_cpu:8.2f} s CPU {time.monotonic() - start:8.2f} s wall")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pgrollout-bench-big-"))
    path = base / "010_big_import.sql"
    count = write(path, args.mb)
    print(f"{path.name}: {path.stat().st_size / 1024 / 1024:.1f} MB, {count} INSERTs")
    try:
        with localpg.disposable_database("pgrollout-bench-pg-") as params:
            run(params, path)
    finally:
        path.unlink()
    return 0


def run(params: dict, path: Path) -> None:
    """(a) to (d) of the docstring, on `params`' database."""
    with client_environment(params) as env:
        psql = ["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-f", str(path)]
        measured("(a) psql -1 -f (parse and apply)", lambda: subprocess.run(psql, env=env, check=True))
    mf = measured("(b) pgrollout reads the file (one parse)", lambda: sqlfile.load(str(path), "010", "big_import"))
    measured("(c) lock plan and privilege needs from that parse",
             lambda: (locks.lock_plan(mf.statements), privileges.file_needs([mf])))
    measured("(d) migration review (pgrollout's rules and squawk)", lambda: lint.lint([(mf, "up")], ["public"]))
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    sys.exit(main())
