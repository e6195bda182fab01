#!/usr/bin/env python3
"""Lock safety, side by side: the plan's `psql -f` against pgrollout's apply.

A disposable cluster with the 001+002 baseline and rows in every kb_* table.
For each contender, on a fresh copy of that database: readers and writers on
the kb_* tables run in a loop, a long transaction (a report, say) holds
kb_patterns for HOLD seconds, and migration 003 starts one second in. Printed
per contender: the longest a reader or writer waited, client errors, and how
the migration ended (applied, half-applied, nothing applied).

    .venv/bin/python bench/lock_safety.py [--hold 12] [--lock-timeout 2s]

Contenders:
  plan      psql -f, as the plan runs it (no lock_timeout, no single transaction)
  plan+lt   the same with lock_timeout set (PGOPTIONS): the obvious quick fix
  pgrollout migrate.apply with lock_timeout, retries with backoff, locks up front
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "module_utils"), str(REPO / "tests")]

import localpg  # noqa: E402
from pgrollout import connection, migrate, retry, sqlfile  # noqa: E402
from sessions import Blocker, Readers  # noqa: E402

MIGRATION = REPO / "supabase" / "migrations" / "003_bot_registration_sharing.sql"
KB = ("kb_patterns", "kb_market_regimes", "kb_lessons_learned", "kb_macro_events", "kb_correlations")
ROWS = 20000  # extra rows per kb_* table

GROW = """
INSERT INTO public.kb_patterns (name, pattern_type, confidence)
  SELECT 'p' || g, 'reversal', 0.5 FROM generate_series(1, {n}) g;
INSERT INTO public.kb_market_regimes (name, regime) SELECT 'r' || g, 'calm' FROM generate_series(1, {n}) g;
INSERT INTO public.kb_lessons_learned (title, body) SELECT 'l' || g, 'b' FROM generate_series(1, {n}) g;
INSERT INTO public.kb_macro_events (event_name, event_date)
  SELECT 'e' || g, DATE '2020-01-01' + g % 2000 FROM generate_series(1, {n}) g;
INSERT INTO public.kb_correlations (asset_a, asset_b, coefficient, window_days)
  SELECT 'A' || g, 'B', 0.1, 30 FROM generate_series(1, {n}) g;
"""


def outcome(params: dict[str, Any]) -> str:
    with connection.connect(params, autocommit=True) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
                              "('bots', 'bot_api_keys', 'validation_runs', 'validation_run_shares')").fetchone()[0]
        rls = conn.execute("SELECT count(*) FILTER (WHERE rowsecurity) FROM pg_tables "
                           "WHERE schemaname = 'public' AND tablename LIKE 'kb_%'").fetchone()[0]
        policies = conn.execute("SELECT count(*) FROM pg_policies WHERE schemaname = 'public' "
                                "AND tablename <> 'profiles'").fetchone()[0]
        recorded = conn.execute("SELECT count(*) FROM supabase_migrations.schema_migrations "
                                "WHERE version = '003'").fetchone()[0]
    if tables == 4 and rls == 5 and policies == 27:
        state = "applied" + (" and recorded" if recorded else " (not in the ledger)")
    elif tables == 0 and rls == 0 and policies == 0 and not recorded:
        state = "nothing applied"
    else:
        state = "HALF-APPLIED"
    return f"{state}: {tables}/4 tables, RLS on {rls}/5 kb_*, {policies}/27 policies"


def run_psql(params: dict[str, Any], lock_timeout: str | None) -> tuple[str, int]:
    with connection.client_environment(params) as env:
        if lock_timeout:
            env["PGOPTIONS"] = f"-c lock_timeout={lock_timeout}"
        proc = subprocess.run(["psql", "-X", "-q", "-f", str(MIGRATION)], env=env, capture_output=True, text=True)
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    return f"psql exit {proc.returncode}, {len(errors)} ERROR line(s)", proc.returncode


def run_pgrollout(params: dict[str, Any], lock_timeout: str) -> tuple[str, int]:
    opts = migrate.Options(lock_timeout=lock_timeout, retry=retry.RetryPolicy(retries=5, delay=1.0, max_delay=30.0),
                           run_id="bench")
    try:
        with connection.connect(params) as conn:
            result = migrate.apply(conn, sqlfile.load(str(MIGRATION)), opts)
        attempts = result["attempts"]
        return f"{len(attempts)} attempt(s), last {attempts[-1]['outcome']}", 0
    except migrate.MigrationError as exc:
        return f"failed after {len(exc.details.get('attempts', []))} attempt(s)", 1


def contend(cluster: localpg.LocalCluster, template: str, name: str, hold: float,
            migrate_fn: Any) -> dict[str, Any]:
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    params = cluster.params(name)
    readers_sql = " UNION ALL ".join(f"SELECT count(*) FROM public.{t}" for t in KB)
    writers_sql = ("INSERT INTO public.kb_patterns (name, pattern_type) VALUES ('w', 'x'); "
                   "INSERT INTO public.kb_correlations (asset_a, asset_b, coefficient, window_days) "
                   "VALUES ('A', 'B', 0, 1)")
    with Readers(params, readers_sql, count=4) as readers, Readers(params, writers_sql, count=2) as writers:
        time.sleep(0.5)
        blocker = Blocker(params, "public.kb_patterns", name="bench-long-report")
        blocker.__enter__()
        blocker.release_after(hold)
        time.sleep(1.0)
        started = time.monotonic()
        how, code = migrate_fn(params)
        elapsed = time.monotonic() - started
        blocker.done.wait(hold + 5)
        time.sleep(0.5)
    return {"contender": name, "migration": how, "seconds": elapsed, "outcome": outcome(params),
            "reader_stall": readers.longest, "writer_stall": writers.longest,
            "errors": len(readers.errors) + len(writers.errors), "queries": len(readers.latencies)
            + len(writers.latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hold", type=float, default=12.0, help="seconds the long transaction holds kb_patterns")
    parser.add_argument("--lock-timeout", default="2s", help="lock_timeout for plan+lt and pgrollout (prod: 2s)")
    args = parser.parse_args()
    if not shutil.which("psql"):
        sys.exit("psql not found: apt-get install postgresql-client-15")
    base = Path(tempfile.mkdtemp(prefix="pgrollout-bench-"))
    cluster = localpg.LocalCluster(base, localpg.free_port())
    try:
        cluster.init()
        cluster.start()
        with connection.connect(cluster.params(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_template")
        localpg.prepare_database(cluster.params("bench_template"))
        with connection.connect(cluster.params("bench_template"), autocommit=True) as conn:
            conn.execute(GROW.format(n=ROWS))
        contenders = [
            ("plan", lambda p: run_psql(p, None)),
            ("plan_lt", lambda p: run_psql(p, args.lock_timeout)),
            ("pgrollout", lambda p: run_pgrollout(p, args.lock_timeout)),
        ]
        print(f"PostgreSQL {cluster.port}: a long transaction holds kb_patterns for {args.hold:g}s; "
              f"4 readers + 2 writers on kb_*; lock_timeout {args.lock_timeout} where set\n")
        rows = [contend(cluster, "bench_template", name, args.hold, fn) for name, fn in contenders]
    finally:
        cluster.destroy()
    header = f"{'contender':<10} {'longest reader':>14} {'longest writer':>14} {'errors':>6} {'queries':>7} " \
             f"{'migration s':>11}  migration / outcome"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['contender']:<10} {r['reader_stall']:>13.2f}s {r['writer_stall']:>13.2f}s {r['errors']:>6} "
              f"{r['queries']:>7} {r['seconds']:>10.1f}s  {r['migration']} / {r['outcome']}")
    plan, ours = rows[0], rows[-1]
    if ours["reader_stall"] > 0:
        print(f"\nlongest reader stall, plan / pgrollout: {plan['reader_stall'] / ours['reader_stall']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
