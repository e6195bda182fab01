#!/usr/bin/env python3
"""A fleet: many targets per environment (tenants, shards) as inventory hosts, Ansible's own scale-out.

On one disposable local cluster: --targets databases (50) as as many inventory hosts, each cloned from
one template (the Supabase compatibility layer), and a generated set of --migrations up/down files.
Times side by side:

  (1) rollout.yml against one target
  (2) rollout.yml against every target, -e pgrollout_serial=10 --forks 10
  (3) the same with one target made to fail in the second batch: the batches after it do not run,
      and each host's state is read from its evidence (or its absence)

  (4) (2) again with Ansible's free strategy (ANSIBLE_STRATEGY=free), as a user could turn it on

Each as CPU seconds (the controller's process tree and the server's, bench/measure.py) beside wall time.
Backups are off unless --backup (the figure is the engine's and Ansible's, not pg_dump's).
Targets: (2) within 6x of (1) in wall time; at most 4 s of controller CPU per extra target (issue 22).
Prints the figures and the per-host outcomes.

    .venv/bin/python bench/fleet.py [--targets 50] [--serial 10] [--migrations 5]
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "module_utils"), str(REPO / "bench")]

from many_migrations import generate  # noqa: E402
from measure import Figures, Meter, tree  # noqa: E402
from psycopg import sql  # noqa: E402

import localpg  # noqa: E402
from pgrollout import connection  # noqa: E402

TEMPLATE = "fleet_template"


def clone(cluster: localpg.LocalCluster, names: list[str]) -> None:
    with connection.connect(cluster.params(), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                            sql.Identifier(TEMPLATE)))


def inventory(path: Path, cluster: localpg.LocalCluster, names: list[str], work: Path, migrations: Path,
              backup: bool) -> Path:
    params = cluster.params()
    hosts = {name: {"ansible_connection": "local", "pgrollout_db_host": params["login_host"],
                    "pgrollout_db_port": params["login_port"], "pgrollout_db_name": name,
                    "pgrollout_db_password": params["login_password"], "pgrollout_db_ssl_mode": "disable",
                    "pgrollout_migrations_dir": str(migrations), "pgrollout_rollbacks_dir": str(migrations),
                    "pgrollout_verification_dir": str(work / "verification"), "pgrollout_migration_layout": "updown",
                    "pgrollout_evidence_root": str(work / "evidence"), "pgrollout_backup": backup,
                    "pgrollout_backup_dir": str(work / "backups"), "pgrollout_exposed_schemas": []}
             for name in names}
    path.mkdir(parents=True)
    (path / "group_vars").symlink_to(REPO / "group_vars")
    (path / "hosts.yml").write_text(json.dumps({"dev": {"hosts": hosts}}))
    os.chmod(path / "hosts.yml", 0o600)
    return path


def play(cluster: localpg.LocalCluster, inv: Path, *args: str, **env_extra: str) -> tuple[Figures, int]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), **env_extra)
    with Meter(cluster.data) as meter:
        proc = subprocess.run(tree([str(Path(sys.executable).parent / "ansible-playbook"), "rollout.yml", "-i",
                                    str(inv), *args]), cwd=REPO, env=env, capture_output=True, text=True)
    return meter.figures, proc.returncode


def states(evidence: Path, names: list[str], since: float) -> dict[str, str]:
    """Each host's outcome in the records written since `since`; 'not run' where it has none."""
    found = {}
    for path in evidence.glob("*.json"):
        if path.stat().st_mtime >= since and path.name != "status.json":
            record = json.loads(path.read_text())
            found[record["host"]] = record["outcome"]
    return {name: found.get(name, "not run") for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--serial", type=int, default=10)
    parser.add_argument("--migrations", type=int, default=5)
    parser.add_argument("--backup", action="store_true")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="pgrollout-fleet-"))
    base.chmod(0o755)  # the cluster runs as the postgres user
    cluster = localpg.LocalCluster(base / "pg", localpg.free_port(), fast=True)
    cluster.init()
    cluster.start()
    try:
        (base / "verification").mkdir()
        generate(base / "migrations", args.migrations)
        with connection.connect(cluster.params(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        localpg.prepare_database(cluster.params(TEMPLATE), upto="0", seed=False)
        names = [f"tenant_{i:02d}" for i in range(1, args.targets + 1)]
        fleet_args = ["-e", f"pgrollout_serial={args.serial}", "--forks", str(args.serial)]

        clone(cluster, ["single"])
        single_inv = inventory(base / "inv-single", cluster, ["single"], base / "single", base / "migrations",
                               args.backup)
        one, rc_one = play(cluster, single_inv)
        clone(cluster, names)
        fleet_inv = inventory(base / "inv-fleet", cluster, names, base / "fleet", base / "migrations", args.backup)
        since = time.time()
        many, rc_many = play(cluster, fleet_inv, *fleet_args)
        outcomes = states(base / "fleet" / "evidence" / "dev", names, since)
        clone(cluster, names)
        free_inv = inventory(base / "inv-free", cluster, names, base / "free", base / "migrations", args.backup)
        free, rc_free = play(cluster, free_inv, *fleet_args, ANSIBLE_STRATEGY="free")

        # one target of the second batch fails: its database already holds the table migration 2 creates
        clone(cluster, names)
        failing = names[args.serial + args.serial // 2 - 1] if args.targets > args.serial else names[0]
        with connection.connect(cluster.params(failing), autocommit=True) as conn:
            conn.execute("CREATE TABLE t2 (id int)")
        failed_inv = inventory(base / "inv-failing", cluster, names, base / "failing", base / "migrations",
                               args.backup)
        since = time.time()
        with_failure, rc_fail = play(cluster, failed_inv, *fleet_args)
        failed_states = states(base / "failing" / "evidence" / "dev", names, since)
    finally:
        cluster.destroy()
    print(f"{args.targets} targets, {args.migrations} migrations each, serial {args.serial}, forks {args.serial}, "
          f"backup {'on' if args.backup else 'off'}, {datetime.date.today()}, {os.cpu_count()} cores")
    print(f"{'':40} {'CPU s':>8} {'client':>8} {'server':>7} {'wall s':>7} {'wall vs one':>11}  "
          "client CPU per extra target")
    for label, fig, rc in (("(1) rollout.yml, one target", one, rc_one),
                           ("(2) rollout.yml, every target", many, rc_many),
                           ("(3) the same, " + failing + " fails", with_failure, rc_fail),
                           ("(4) (2) with strategy free", free, rc_free)):
        extra = "" if fig is one else f"{(fig.client - one.client) / max(args.targets - 1, 1):.2f} s (target <= 4 s)"
        print(f"{label:40} {fig.cpu:8.2f} {fig.client:8.2f} {fig.server:7.2f} {fig.wall:7.2f} "
              f"{fig.wall / one.wall:10.2f}x  {extra} (exit {rc})")
    print("(2) outcomes:", dict(collections.Counter(outcomes.values())))
    print("(3) outcomes:", dict(collections.Counter(failed_states.values())))
    for batch in range(0, args.targets, args.serial):
        hosts = names[batch:batch + args.serial]
        print(f"    batch {batch // args.serial + 1}: " + ", ".join(f"{h}={failed_states[h]}" for h in hosts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
