"""Fixtures: a disposable PostgreSQL cluster per test session, a database per test.

The cluster is started by the tests themselves (scripts/localpg.py), on a free
port, and destroyed at the end. Each database is cloned from a template that
holds the Supabase compatibility layer, migrations 001-002 and the seed.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "module_utils"))
# the unit tests import the shared code as the modules do, from the collection (collections/ links it)
sys.path.insert(0, str(REPO / "collections"))

import localpg  # noqa: E402
from pgrollout import connection  # noqa: E402

TEMPLATE = "baseline_template"
MIGRATION_003 = REPO / "supabase" / "migrations" / "003_bot_registration_sharing.sql"
ROLLBACK_003 = REPO / "supabase" / "rollbacks" / "003_bot_registration_sharing_rollback.sql"


@pytest.fixture(scope="session")
def cluster():
    base = Path(tempfile.mkdtemp(prefix="pgrollout-test-"))
    pg = localpg.LocalCluster(base, localpg.free_port(), fast=True)
    try:
        pg.init()
        pg.start()
        with connection.connect(pg.params(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        localpg.prepare_database(pg.params(TEMPLATE))
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def db(cluster) -> dict[str, Any]:
    """Connection parameters of a fresh database at the pre-003 baseline."""
    name = "t_" + uuid.uuid4().hex[:12]
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield cluster.params(name)
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def empty_db(cluster) -> dict[str, Any]:
    """Connection parameters of an empty database (template0)."""
    name = "e_" + uuid.uuid4().hex[:12]
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    yield cluster.params(name)
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pgbouncer(db) -> dict[str, Any]:
    """Connection parameters of `db` through a real PgBouncer in transaction pooling mode."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        pytest.skip("pgbouncer is not installed (.ci/run installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="pgrollout-bouncer-"))
    port = localpg.free_port()
    (workdir / "userlist.txt").write_text(f'"{db["login_user"]}" "{db["login_password"]}"\n')
    (workdir / "pgbouncer.ini").write_text(
        f"[databases]\n{db['login_db']} = host=127.0.0.1 port={db['login_port']} dbname={db['login_db']}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {workdir}/userlist.txt\npool_mode = transaction\n"
        f"logfile = {workdir}/pgbouncer.log\n")
    command = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        shutil.chown(workdir, "postgres")
        for path in workdir.iterdir():
            shutil.chown(path, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            pytest.fail(f"pgbouncer did not start: {(workdir / 'pgbouncer.log').read_text()}")
        yield dict(db, login_port=port)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def query(params: dict[str, Any], sql: str, args: Any = None) -> list[tuple]:
    with connection.connect(params, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def execute(params: dict[str, Any], sql: str) -> None:
    with connection.connect(params, autocommit=True) as conn:
        conn.execute(sql)


class Playbook:
    """Runs a playbook of this repository against test databases, as one environment (inventory group).

    Evidence goes to workdir/evidence/<group>/, backups to workdir/backups/; several
    Playbooks sharing one workdir share the evidence root, as environments do.
    """

    def __init__(self, params: dict[str, Any], workdir: Path, group: str = "dev", host: str = "test-target"):
        self.params, self.workdir, self.group = params, workdir, group
        inventory = workdir / f"inventory-{group}"
        inventory.mkdir()
        (inventory / "group_vars").symlink_to(REPO / "group_vars")
        self.inventory, self.hosts = inventory, {}
        self.add_host(host, params)

    def add_host(self, name: str, params: dict[str, Any], **host_vars: Any) -> None:
        self.hosts[name] = {
            "ansible_connection": "local",
            "pgrollout_db_host": params["login_host"],
            "pgrollout_db_port": params["login_port"],
            "pgrollout_db_name": params["login_db"],
            "pgrollout_db_password": params["login_password"],
            "pgrollout_db_ssl_mode": "disable",
            "pgrollout_evidence_root": str(self.workdir / "evidence"),
            "pgrollout_backup_dir": str(self.workdir / "backups"),
            "pgrollout_watch_minutes": 0,  # the watch has tests of its own
            # this checkout may hold a developer's uncommitted work (git_dirty evidence); the rule that such
            # evidence does not promote has tests of its own (tests/unit/test_gates.py)
            "pgrollout_promotion_allow_dirty": True,
            **host_vars,
        }
        self.set()

    @property
    def host(self) -> dict[str, Any]:
        return next(iter(self.hosts.values()))

    def set(self, **host_vars: Any) -> None:
        """Write the inventory, with extra variables for every host."""
        for host in self.hosts.values():
            host.update(host_vars)
        path = self.inventory / "hosts.yml"
        path.write_text(json.dumps({self.group: {"hosts": self.hosts}}))
        os.chmod(path, 0o600)

    @property
    def evidence_dir(self) -> Path:
        return self.workdir / "evidence" / self.group

    def evidence(self) -> list[dict[str, Any]]:
        folder = self.evidence_dir
        paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []
        return [json.loads(p.read_text()) for p in paths]

    def command(self, playbook: str, *args: str) -> list[str]:
        return [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(self.inventory), *args]

    @staticmethod
    def environment(**extra: str) -> dict[str, str]:
        return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **extra)

    def run(self, playbook: str = "rollout.yml", *args: str,
            when_printed: tuple[str, Any] | None = None) -> subprocess.CompletedProcess:
        """Run it; the results land in proc.results (tests/callback_plugins/test_results.py).

        `when_printed` (text, action): call action() once the run prints a line containing text."""
        results = self.workdir / "results.json"
        results.unlink(missing_ok=True)
        plugins = f"{REPO / 'callback_plugins'}:{REPO / 'tests' / 'callback_plugins'}"
        env = self.environment(ANSIBLE_CALLBACK_PLUGINS=plugins,
                               ANSIBLE_CALLBACKS_ENABLED="test_results", PGROLLOUT_TEST_RESULTS=str(results))
        if when_printed is None:
            proc = subprocess.run(self.command(playbook, *args), cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=600)
        else:
            proc = self._run_watching(self.command(playbook, *args), env, *when_printed)
        proc.results = json.loads(results.read_text()) if results.exists() else {"tasks": [], "stats": {}}
        return proc

    @staticmethod
    def _run_watching(command: list[str], env: dict[str, str], text: str, action: Any) -> subprocess.CompletedProcess:
        with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as child:
            lines, seen = [], False
            for line in child.stdout:
                lines.append(line)
                if not seen and text in line:
                    seen = True
                    action()
            stderr = child.stderr.read()
            child.wait(600)
        return subprocess.CompletedProcess(command, child.returncode, "".join(lines), stderr)

    def run_raw(self, playbook: str = "rollout.yml", *args: str) -> subprocess.CompletedProcess:
        """Run it without the results callback (several runs at once)."""
        return subprocess.run(self.command(playbook, *args), cwd=REPO, env=self.environment(),
                              capture_output=True, text=True, timeout=600)

    def start(self, playbook: str = "rollout.yml", *args: str) -> subprocess.Popen:
        """Start it in the background (a test that kills it)."""
        return subprocess.Popen(self.command(playbook, *args), cwd=REPO, env=self.environment(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    @staticmethod
    def stats(proc: subprocess.CompletedProcess, host: str = "test-target") -> dict[str, int]:
        return proc.results["stats"][host]

    @staticmethod
    def task_results(proc: subprocess.CompletedProcess, name: str) -> list[dict[str, Any]]:
        return [t["result"] for t in proc.results["tasks"]
                if t["task"].split(" : ")[-1] == name and t["status"] != "skipped"]


def set_playbook(params: dict[str, Any], mset: Any, workdir: Path) -> Playbook:
    """A Playbook for a generated migration set (tests/migsets.py) on a database of its own, nothing exposed."""
    workdir.mkdir()
    book = Playbook(params, workdir)
    book.set(**mset.host_vars(), pgrollout_exposed_schemas=["nothing_exposed"])
    return book


@pytest.fixture
def playbook(db, tmp_path) -> Playbook:
    return Playbook(db, tmp_path)
