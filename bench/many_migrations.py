#!/usr/bin/env python3
"""Many migrations, side by side: psql per file against pgrollout's one-call engine.

Generates --count up/down migrations of realistic DDL (tables with foreign keys
to earlier tables, indexes, RLS and policies, a few CREATE INDEX CONCURRENTLY
in non-transactional files) in the updown layout, then times on a disposable
cluster, each into a fresh database:

  (a) psql -X -1 -v ON_ERROR_STOP=1 -f per up file (non-transactional ones without -1)
  (b) pgrollout's migrate step and its whole rollout.yml (backup off)
  (c) rolling back to the first version: rollback.yml against psql on the down files
  (d) rollout.yml with nothing pending

Targets: (b) migrate within 2x of (a); whole rollout within (a) + 10 s;
(c) within 2x of psql; (d) under 3 s. Prints the figures and the ratios.

    .venv/bin/python bench/many_migrations.py [--count 150]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "module_utils")]

import localpg  # noqa: E402
from pgrollout import connection  # noqa: E402


def generate(folder: Path, count: int) -> list[tuple[Path, Path, bool]]:
    """(up, down, transactional) per version; every 25th file a concurrent index build."""
    folder.mkdir(parents=True)
    files = []
    for i in range(1, count + 1):
        name = f"{i:03d}_step_{i}"
        if i % 25 == 0:
            up = (f"-- morph:nontransactional\nCREATE INDEX CONCURRENTLY idx_t{i - 1}_note "
                  f"ON t{i - 1} (note);\n")
            down = f"-- morph:nontransactional\nDROP INDEX CONCURRENTLY idx_t{i - 1}_note;\n"
            transactional = False
        else:
            parent = i - 1 if (i - 1) % 25 else i - 2
            fk = f", parent_id bigint REFERENCES t{parent}(id)" if i > 1 else ""
            up = (f"CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner_id uuid NOT NULL, "
                  f"note text, created_at timestamptz NOT NULL DEFAULT now(){fk});\n"
                  f"CREATE INDEX t{i}_owner ON t{i} (owner_id);\n"
                  f"ALTER TABLE t{i} ENABLE ROW LEVEL SECURITY;\n"
                  f"CREATE POLICY t{i}_owner_read ON t{i} FOR SELECT TO authenticated "
                  f"USING ((select auth.uid()) = owner_id);\n"
                  f"COMMENT ON TABLE t{i} IS 'generated step {i}';\n")
            down = f"DROP TABLE t{i};\n"
            transactional = True
        (folder / f"{name}.up.sql").write_text(up)
        (folder / f"{name}.down.sql").write_text(down)
        files.append((folder / f"{name}.up.sql", folder / f"{name}.down.sql", transactional))
    return files


def fresh_db(cluster: localpg.LocalCluster, name: str) -> dict[str, Any]:
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    params = cluster.params(name)
    localpg.prepare_database(params, upto="0", seed=False)  # the Supabase compatibility layer only
    return params


def psql_each(params: dict[str, Any], files: list[tuple[Path, bool]]) -> float:
    env = dict(os.environ, PGPASSWORD=params["login_password"])
    started = time.monotonic()
    for path, transactional in files:
        cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", params["login_host"], "-p",
               str(params["login_port"]), "-U", params["login_user"], "-d", params["login_db"], "-f", str(path)]
        if transactional:
            cmd.insert(2, "-1")
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


class Runner:
    def __init__(self, params: dict[str, Any], migrations: Path, work: Path):
        self.work = work
        inventory = work / "inventory"
        inventory.mkdir()
        (inventory / "group_vars").symlink_to(REPO / "group_vars")
        host = {"ansible_connection": "local", "pgrollout_db_host": params["login_host"],
                "pgrollout_db_port": params["login_port"], "pgrollout_db_name": params["login_db"],
                "pgrollout_db_password": params["login_password"], "pgrollout_db_ssl_mode": "disable",
                "pgrollout_migrations_dir": str(migrations), "pgrollout_rollbacks_dir": str(migrations),
                "pgrollout_verification_dir": str(work / "verification"), "pgrollout_migration_layout": "updown",
                "pgrollout_evidence_root": str(work / "evidence"), "pgrollout_backup": False,
                "pgrollout_backup_dir": str(work / "backups"), "pgrollout_exposed_schemas": ["public"]}
        (work / "verification").mkdir()
        path = inventory / "hosts.yml"
        path.write_text(json.dumps({"dev": {"hosts": {"bench": host}}}))
        os.chmod(path, 0o600)
        self.inventory = inventory

    def play(self, playbook: str, *args: str) -> tuple[float, dict[str, Any]]:
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
        started = time.monotonic()
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i",
                               str(self.inventory), *args], cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"{playbook} failed:\n{proc.stdout[-4000:]}")
        folder = self.work / "evidence" / "dev"
        newest = max(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        return seconds, json.loads(newest.read_text())


def step_seconds(record: dict[str, Any], step: str) -> float:
    return next(t["seconds"] for t in record["timings"] if t["step"] == step)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=150)
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="pgrollout-bench-"))
    base.chmod(0o755)  # the cluster runs as the postgres user
    cluster = localpg.LocalCluster(base / "pg", localpg.free_port(), fast=True)
    cluster.init()
    cluster.start()
    try:
        files = generate(base / "migrations", args.count)
        ups = [(up, tx) for up, _, tx in files]
        downs = [(down, tx) for _, down, tx in reversed(files[1:])]
        plain = fresh_db(cluster, "bench_psql")
        psql_up = psql_each(plain, ups)
        psql_down = psql_each(plain, downs)
        runner = Runner(fresh_db(cluster, "bench_pgrollout"), base / "migrations", base)
        rollout, record = runner.play("rollout.yml", "-e", "pgrollout_exposed_schemas=[]")
        migrate = step_seconds(record, "migrate")
        noop, _ = runner.play("rollout.yml", "-e", "pgrollout_exposed_schemas=[]")
        rollback, record_back = runner.play("rollback.yml", "-e", "pgrollout_rollback_to=001",
                                            "-e", "pgrollout_exposed_schemas=[]")
        rollback_step = step_seconds(record_back, "rollback")
    finally:
        cluster.destroy()
    rows = [
        ("(a) psql -1 -f per up file", psql_up, None, None),
        ("(b) pgrollout migrate step", migrate, migrate / psql_up, "<= 2x (a)"),
        ("(b) pgrollout whole rollout.yml", rollout, rollout - psql_up, "<= (a) + 10 s"),
        ("(c) psql per down file", psql_down, None, None),
        ("(c) pgrollout rollback step (to 001)", rollback_step, rollback_step / psql_down, "<= 2x psql"),
        ("(c) pgrollout whole rollback.yml", rollback, rollback / psql_down, None),
        ("(d) rollout.yml, nothing pending", noop, None, "< 3 s"),
    ]
    print(f"{args.count} migrations ({sum(1 for *_, tx in files if not tx)} non-transactional), "
          f"{datetime.date.today()}, {os.cpu_count()} cores")
    print(f"{'':40} {'seconds':>8} {'vs baseline':>12}  target")
    for label, seconds, ratio, target in rows:
        shown = "" if ratio is None else (f"{ratio:+.1f} s" if "+" in (target or "") else f"{ratio:.2f}x")
        print(f"{label:40} {seconds:8.2f} {shown:>12}  {target or ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
