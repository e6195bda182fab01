#!/usr/bin/env python3
"""Many migrations, side by side: pgrollout against the real psql binary, the Supabase CLI and dbmate.

Generates --count up/down migrations of realistic DDL (tables with foreign keys
to earlier tables, indexes, RLS and policies, a CREATE INDEX CONCURRENTLY in
every 25th file, non-transactional) and measures, each into a fresh database
on one disposable cluster, CPU seconds (client process tree + the server's:
bench/measure.py) beside wall time:

  forward      the real psql binary per file (-1, not Debian's Perl wrapper); pgrollout's rollout.yml
               (backup off) and its migrate step; `supabase db push`; `dbmate up`
  nothing      each again with nothing pending
  --check      pgrollout's dry run of the whole plan; `supabase db push --dry-run`
  rollback     psql per down file; pgrollout's rollback.yml to 001

The Supabase CLI and dbmate run when installed (`make bench-peers` installs both
into .local/node); the CLI's copy of the set has plain CREATE INDEX where the
others build concurrently (it runs each file in a transaction).
Targets (issue 22): nothing pending <= the CLI; forward <= 1.5x psql; --check <= 1.5x forward.

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
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "module_utils"), str(REPO / "bench")]

from measure import Figures, Meter, tree  # noqa: E402

import localpg  # noqa: E402
from pgrollout import connection  # noqa: E402

PEERS = REPO / ".local" / "node" / "node_modules" / ".bin"


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


def psql_each(params: dict[str, Any], files: list[tuple[Path, bool]]) -> None:
    """The real psql binary (Debian's /usr/bin/psql is a Perl wrapper that costs 2.7x the client CPU)."""
    psql = str(localpg.find_bindir() / "psql")
    env = dict(os.environ, PGPASSWORD=params["login_password"])
    for path, transactional in files:
        cmd = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", params["login_host"], "-p",
               str(params["login_port"]), "-U", params["login_user"], "-d", params["login_db"], "-f", str(path)]
        if transactional:
            cmd.insert(1, "-1")
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def url(params: dict[str, Any]) -> str:
    return (f"postgresql://{params['login_user']}:{params['login_password']}@{params['login_host']}:"
            f"{params['login_port']}/{params['login_db']}?sslmode=disable")


def peer_sets(base: Path, files: list[tuple[Path, Path, bool]]) -> tuple[Path, Path]:
    """The same set as a Supabase CLI project and as dbmate files."""
    project, dbmate = base / "cli-project", base / "dbmate"
    (project / "supabase" / "migrations").mkdir(parents=True)
    dbmate.mkdir()
    for up, down, transactional in files:
        name = up.name.replace(".up.sql", ".sql")
        body = up.read_text().replace("-- morph:nontransactional\n", "")
        (project / "supabase" / "migrations" / name).write_text(body.replace(" CONCURRENTLY", ""))
        rollback = down.read_text().replace("-- morph:nontransactional\n", "")
        (dbmate / name).write_text(f"-- migrate:up{'' if transactional else ' transaction:false'}\n{body}\n"
                                   f"-- migrate:down{'' if transactional else ' transaction:false'}\n{rollback}")
    return project, dbmate


def cli(*args: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(list(args), capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"{Path(args[0]).name} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")


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
        proc = subprocess.run(tree([str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i",
                                    str(self.inventory), *args]), cwd=REPO, env=env, capture_output=True, text=True)
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
    rows: list[tuple[str, str, Figures]] = []

    def measure(group: str, label: str, action: Any) -> Any:
        with Meter(cluster.data) as meter:
            result = action()
        rows.append((group, label, meter.figures))
        return result

    quiet = ("-e", "pgrollout_exposed_schemas=[]")
    try:
        files = generate(base / "migrations", args.count)
        ups = [(up, tx) for up, _, tx in files]
        downs = [(down, tx) for _, down, tx in reversed(files[1:])]
        plain = fresh_db(cluster, "bench_psql")
        measure("forward", "psql binary, -1 -f per file", lambda: psql_each(plain, ups))
        runner = Runner(fresh_db(cluster, "bench_pgrollout"), base / "migrations", base)
        _, record = measure("forward", "pgrollout rollout.yml", lambda: runner.play("rollout.yml", *quiet))
        migrate = step_seconds(record, "migrate")
        measure("nothing", "pgrollout rollout.yml", lambda: runner.play("rollout.yml", *quiet))
        (base / "check").mkdir()
        checker = Runner(fresh_db(cluster, "bench_check"), base / "migrations", base / "check")
        measure("--check", "pgrollout rollout.yml --check", lambda: checker.play("rollout.yml", "--check", *quiet))
        measure("rollback", "psql binary per down file", lambda: psql_each(plain, downs))
        measure("rollback", "pgrollout rollback.yml to 001",
                lambda: runner.play("rollback.yml", "-e", "pgrollout_rollback_to=001", *quiet))
        project, dbmate_dir = peer_sets(base, files)
        supabase, dbmate = PEERS / "supabase", PEERS / "dbmate"
        if supabase.exists():
            target = url(fresh_db(cluster, "bench_cli"))
            push = [str(supabase), "db", "push", "--db-url", target, "--yes", "--workdir", str(project)]
            measure("--check", "supabase db push --dry-run", lambda: cli(*push, "--dry-run", cwd=project))
            measure("forward", "supabase db push", lambda: cli(*push, cwd=project))
            measure("nothing", "supabase db push", lambda: cli(*push, cwd=project))
        if dbmate.exists():
            target = url(fresh_db(cluster, "bench_dbmate"))
            up = [str(dbmate), "--url", target, "--migrations-dir", str(dbmate_dir), "--no-dump-schema", "up"]
            measure("forward", "dbmate up", lambda: cli(*up))
            measure("nothing", "dbmate up", lambda: cli(*up))
    finally:
        cluster.destroy()
    print(f"{args.count} migrations ({sum(1 for *_, tx in files if not tx)} non-transactional), "
          f"{datetime.date.today()}, {os.cpu_count()} cores; pgrollout's migrate step {migrate:.2f} s wall"
          + ("" if (PEERS / "supabase").exists() and (PEERS / "dbmate").exists()
             else "; Supabase CLI or dbmate not installed (make bench-peers)"))
    baselines = {"forward": "psql binary, -1 -f per file", "nothing": "supabase db push",
                 "--check": "pgrollout rollout.yml", "rollback": "psql binary per down file"}
    print(f"{'':10} {'':36} {'CPU s':>7} {'client':>7} {'server':>7} {'wall s':>7}  vs")
    for group, label, fig in rows:
        base_label = baselines[group]
        base_fig = next((f for g, lb, f in rows if lb == base_label and (g == group or group == "--check")), None)
        ratio = f"{fig.cpu / base_fig.cpu:.2f}x {base_label}" if base_fig and base_fig is not fig and \
            base_fig.cpu else ""
        print(f"{group:10} {label:36} {fig.cpu:7.2f} {fig.client:7.2f} {fig.server:7.2f} {fig.wall:7.2f}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
