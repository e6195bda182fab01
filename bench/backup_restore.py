#!/usr/bin/env python3
"""Backup and restore, side by side: the plan's commands against pgrollout's defaults.

A disposable cluster gets the 001+002 baseline and about --size-mb of rows in
the five kb_* tables. Then, each into a fresh empty database:

  plan       pg_dump --clean --if-exists -f FILE.sql (plain)   restore: psql -f FILE.sql
  pgrollout  pg_backup's defaults (role pgrollout)            validation: sha256 + full read
             (format, jobs)                                    restore: pg_restore (-j where it can)

Printed: seconds for backup, validation and restore, archive sizes, and the
ratios plan / pgrollout (above 1: pgrollout is faster or smaller).

    .venv/bin/python bench/backup_restore.py [--size-mb 1024] [--format F --jobs N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "module_utils")]

import localpg  # noqa: E402
from pgrollout import backup, connection, restore  # noqa: E402

# ~200 bytes per row; each table gets a fifth of the rows.
GROW = """
INSERT INTO public.kb_patterns (name, description, pattern_type, confidence)
  SELECT 'pattern ' || g, repeat(md5(g::text), 5), 'reversal', 0.5 FROM generate_series(1, {n}) g;
INSERT INTO public.kb_market_regimes (name, regime, notes)
  SELECT 'regime ' || g, 'calm', repeat(md5(g::text), 5) FROM generate_series(1, {n}) g;
INSERT INTO public.kb_lessons_learned (title, body, tags)
  SELECT 'lesson ' || g, repeat(md5(g::text), 5), '{{risk}}' FROM generate_series(1, {n}) g;
INSERT INTO public.kb_macro_events (event_name, event_date, notes)
  SELECT 'event ' || g, DATE '2000-01-01' + g % 9000, repeat(md5(g::text), 5) FROM generate_series(1, {n}) g;
INSERT INTO public.kb_correlations (asset_a, asset_b, coefficient, window_days)
  SELECT 'asset ' || g, repeat(md5(g::text), 5), 0.25, 30 FROM generate_series(1, {n}) g;
"""


def timed(fn: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = fn()
    return time.monotonic() - started, result


def fresh_db(cluster: localpg.LocalCluster, name: str) -> dict[str, Any]:
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    return cluster.params(name)


def run(cmd: list[str], params: dict[str, Any]) -> None:
    with connection.client_environment(params) as env:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {proc.stderr[-2000:]}")


def row_total(params: dict[str, Any]) -> int:
    with connection.connect(params) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM public.{t}").fetchone()[0] for t in
                   ("kb_patterns", "kb_market_regimes", "kb_lessons_learned", "kb_macro_events", "kb_correlations"))


def main() -> int:
    defaults = {**yaml.safe_load((REPO / "roles" / "pgrollout" / "defaults" / "main.yml").read_text()),
                **yaml.safe_load((REPO / "group_vars" / "all.yml").read_text())}
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="approximate size of the kb_* rows")
    parser.add_argument("--format", default=defaults["pgrollout_backup_format"])
    parser.add_argument("--jobs", type=int, default=defaults["pgrollout_backup_jobs"])
    parser.add_argument("--repeat", type=int, default=3, help="backups per contender (medians are printed)")
    parser.add_argument("--compress", type=int, default=defaults.get("pgrollout_backup_compress"))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pgrollout-bench-"))
    work = base / "files"
    if os.geteuid() == 0:  # the server runs as postgres and must reach its folder
        shutil.chown(base, "postgres")
    cluster = localpg.LocalCluster(base / "cluster", localpg.free_port())
    try:
        cluster.init()
        cluster.start()
        source = fresh_db(cluster, "bench_source")
        localpg.prepare_database(source)
        per_table = args.size_mb * 1024 * 1024 // 200 // 5
        with connection.connect(source, autocommit=True) as conn:
            seconds, _ = timed(lambda: conn.execute(GROW.format(n=per_table)))
            conn.execute("VACUUM ANALYZE")
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        rows = row_total(source)
        print(f"source: {size / 2**20:.0f} MiB, {rows} kb_* rows (generated in {seconds:.0f} s); "
              f"pgrollout: format {args.format}, jobs {args.jobs}, compress {args.compress}; "
              f"backups: median of {args.repeat}\n")
        work.mkdir(mode=0o700)

        plan_file = work / "backup_pre_003.sql"
        plan_dump = statistics.median(timed(lambda: run(["pg_dump", "--clean", "--if-exists", "-f", str(plan_file)],
                                                        source))[0] for _ in range(args.repeat))
        plan_target = fresh_db(cluster, "bench_plan")
        plan_restore, _ = timed(lambda: run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(plan_file)],
                                            plan_target))
        assert row_total(plan_target) == rows

        opts = backup.DumpOptions(format=args.format, jobs=args.jobs, compress=args.compress, free_space_factor=0)
        runs = [timed(lambda: backup.dump(source, str(work), "pre_003", 15, size, opts)) for _ in range(args.repeat)]
        our_dump = statistics.median(seconds for seconds, _ in runs)
        manifest = runs[-1][1]
        phases = {k: statistics.median(m["seconds"][k] for _, m in runs) for k in manifest["seconds"]}
        our_check, _ = timed(lambda: backup.verify_archive(manifest["path"], source))
        our_restore, _ = timed(lambda: restore.restore_scratch(source, manifest["path"], "pgrollout_bench_ours",
                                                                jobs=max(args.jobs, 2)))
        assert row_total(cluster.params("pgrollout_bench_ours")) == rows
        plan_size, our_size = plan_file.stat().st_size, manifest["size_bytes"]
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
    print(f"{'':<22} {'plan':>10} {'pgrollout':>10} {'plan/ours':>10}")
    print(f"{'backup: pg_dump (s)':<22} {plan_dump:>10.2f} {phases['pg_dump']:>10.2f} "
          f"{plan_dump / phases['pg_dump']:>10.2f}")
    checks = phases["full_read"] + phases["sha256"] + phases["row_counts"]
    print(f"{'  + checks (s)':<22} {'none':>10} {checks:>10.2f}   full read {phases['full_read']:.2f}, "
          f"sha256 {phases['sha256']:.2f}, row counts {phases['row_counts']:.2f}")
    print(f"{'  = pg_backup (s)':<22} {plan_dump:>10.2f} {our_dump:>10.2f} {plan_dump / our_dump:>10.2f}")
    print(f"{'validation (s)':<22} {'none':>10} {our_check:>10.2f}   before a restore: sha256, full read")
    print(f"{'restore (s)':<22} {plan_restore:>10.2f} {our_restore:>10.2f} {plan_restore / our_restore:>10.2f}")
    print(f"{'archive size (MiB)':<22} {plan_size / 2**20:>10.1f} {our_size / 2**20:>10.1f} "
          f"{plan_size / max(our_size, 1):>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
