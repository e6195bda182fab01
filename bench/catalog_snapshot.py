#!/usr/bin/env python3
"""The catalog snapshot on a schema of --tables tables, side by side with pg_dump --schema-only.

Each table has an identity key, two more columns (one with a default), a foreign key to the
previous table, an index, row-level security with a policy and a grant, as an application schema
has. Measures schema.snapshot (the reader behind --diff and drift) and schema.drift against a
recorded snapshot, as CPU seconds of this process and the server's backend plus wall time, and
pg_dump --schema-only (client CPU and wall) reading the same catalog. Target: under a second for
1,000 tables.

    .venv/bin/python bench/catalog_snapshot.py [--tables 1000]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "module_utils")]

import localpg  # noqa: E402
from pgrollout import connection, ledger, schema  # noqa: E402
from pgrollout.connection import client_environment  # noqa: E402


def build(params: dict, count: int) -> None:
    parts = ["CREATE ROLE bench_reader NOLOGIN;"]
    for i in range(count):
        ref = f", parent bigint REFERENCES t{i - 1} (id)" if i else ""
        parts.append(f"CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                     f"note text DEFAULT 'none', created_at timestamptz NOT NULL DEFAULT now(){ref});"
                     f"CREATE INDEX t{i}_created_at ON t{i} (created_at);"
                     f"ALTER TABLE t{i} ENABLE ROW LEVEL SECURITY;"
                     f"CREATE POLICY t{i}_read ON t{i} FOR SELECT TO bench_reader USING (note <> 'hidden');"
                     f"GRANT SELECT ON t{i} TO bench_reader;")
    with connection.connect(params) as conn:
        conn.execute("".join(parts))
        ledger.ensure(conn)


def backend_cpu(conn: Any) -> float:
    """This connection's server process CPU (utime + stime from /proc, in clock ticks)."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=1000)
    args = parser.parse_args()
    with localpg.disposable_database("pgrollout-bench-catalog-") as params:
        build(params, args.tables)
        with connection.connect(params) as conn:
            for label in ("schema.snapshot (cold)", "schema.snapshot (warm)"):
                start, server, wall = own_cpu(), backend_cpu(conn), time.monotonic()
                with conn.transaction(), conn.cursor() as cur:
                    snap = schema.snapshot(cur)
                print(f"{label:<34} {own_cpu() - start:6.2f} s CPU here {backend_cpu(conn) - server:6.2f} s server "
                      f"{time.monotonic() - wall:6.2f} s wall  ({sum(len(v) for v in snap.values())} objects)")
            with conn.transaction(), conn.cursor() as cur:
                schema.store(cur, "bench")
            start, server, wall = own_cpu(), backend_cpu(conn), time.monotonic()
            with conn.transaction(), conn.cursor() as cur:
                found = schema.drift(cur)
            print(f"{'schema.drift (no drift)':<34} {own_cpu() - start:6.2f} s CPU here "
                  f"{backend_cpu(conn) - server:6.2f} s server {time.monotonic() - wall:6.2f} s wall  "
                  f"({len(found['changes'])} changes)")
        with client_environment(params) as env:
            start, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
            subprocess.run(["pg_dump", "--schema-only", "--no-password", "-f", "/dev/null"], env=env, check=True)
            end = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime
        print(f"{'pg_dump --schema-only (baseline)':<34} {client:6.2f} s CPU client {'':>17} "
              f"{time.monotonic() - wall:6.2f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
