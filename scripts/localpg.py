#!/usr/bin/env python3
"""A disposable local PostgreSQL cluster: the dev database and the tests' server.

No Docker and no root needed. Run as root, it drops to an unprivileged OS user
(postgres) for initdb and the server, as PostgreSQL requires. The cluster
listens on 127.0.0.1 only, on a non-default port, with no Unix socket, and its
superuser password is generated and kept in a 0600 file beside the data.

    python scripts/localpg.py start|stop|reset|status   (the dev database)
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "module_utils"))

from pgrollout import connection, migrate, sqlfile  # noqa: E402
from pgrollout.scratch import ScratchError, run_sql_file  # noqa: E402

DEV_DIR = Path(os.environ.get("PGROLLOUT_DEVDB_DIR", REPO / ".local" / "devdb"))
DEV_PORT = int(os.environ.get("PGROLLOUT_DEVDB_PORT", "54329"))
OS_USER = os.environ.get("PGROLLOUT_PG_OS_USER", "postgres")


class ClusterError(Exception):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (disposable test and bench clusters)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_bindir() -> Path:
    configured = os.environ.get("PGROLLOUT_PG_BINDIR")
    candidates = [configured] if configured else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise ClusterError("PostgreSQL server binaries not found: install postgresql-15 "
                       "(apt-get install postgresql-15) or set PGROLLOUT_PG_BINDIR")


STUBS_DIR = REPO / "supabase" / "stubs"


def stub_names() -> list[str]:
    """The extension stubs pgrollout ships (supabase/stubs): extensions that only call out."""
    return sorted(p.stem for p in STUBS_DIR.glob("*.control"))


def overlay(bindir: Path, where: Path, stubs: list[str]) -> Path:
    """A private installation of the same server binaries whose extension folder also holds `stubs`.

    PostgreSQL finds its share and library folders relative to the executable
    it runs from (a relocatable build): copies of postgres, initdb and pg_ctl
    placed as the installation places them, beside links to the real share
    and library files, give a server that offers the stubs as extensions and
    changes nothing of the machine's installation (no root, no other cluster
    sees them). Returns the overlay's bin folder.
    """
    unknown = sorted(set(stubs) - set(stub_names()))
    if unknown:
        raise ClusterError(f"no extension stub named {', '.join(unknown)} (pgrollout ships: {', '.join(stub_names())})")

    def config(flag: str) -> Path:
        return Path(subprocess.run([str(bindir / "pg_config"), flag], capture_output=True, text=True,
                                   check=True).stdout.strip())

    share, pkglib = config("--sharedir"), config("--pkglibdir")
    prefix = Path(os.path.commonpath([bindir, share, pkglib]))
    new_bin, new_share, new_lib = (where / p.relative_to(prefix) for p in (bindir, share, pkglib))
    shutil.rmtree(where, ignore_errors=True)
    (new_share / "extension").mkdir(parents=True)
    new_bin.mkdir(parents=True)
    for name in ("postgres", "initdb", "pg_ctl", "pg_config"):
        shutil.copy2(bindir / name, new_bin / name)  # copies: a link would resolve to the real installation
    if not new_lib.exists():
        new_lib.symlink_to(pkglib)
    for entry in share.iterdir():
        if entry.name != "extension":
            (new_share / entry.name).symlink_to(entry)
    for entry in (share / "extension").iterdir():
        (new_share / "extension" / entry.name).symlink_to(entry)
    for name in stubs:
        for path in STUBS_DIR.glob(f"{name}.control"):
            shutil.copy2(path, new_share / "extension" / path.name)
        for path in STUBS_DIR.glob(f"{name}--*.sql"):
            shutil.copy2(path, new_share / "extension" / path.name)
    for folder in (where, *where.rglob("*")):
        if folder.is_dir() and not folder.is_symlink():
            os.chmod(folder, 0o755)  # the server's OS user reads it
    return new_bin


def requested_stubs() -> list[str]:
    """PGROLLOUT_EXTENSION_STUBS=pg_net,http: the stubs a local cluster offers (opt-in; none by default)."""
    return [n.strip() for n in os.environ.get("PGROLLOUT_EXTENSION_STUBS", "").split(",") if n.strip()]


class LocalCluster:
    def __init__(self, base: Path, port: int, fast: bool = False, stubs: list[str] = ()):
        self.base, self.port, self.fast, self.stubs = Path(base), port, fast, sorted(stubs)
        self.data, self.log = self.base / "data", self.base / "server.log"
        self.password_file = self.base / "password"
        self.bindir = find_bindir()
        self.drop_privileges = os.geteuid() == 0

    def _install(self) -> None:
        """With stubs, the server runs from a private overlay installation that offers them."""
        if self.stubs:
            self.base.mkdir(parents=True, exist_ok=True)
            self.bindir = overlay(find_bindir(), self.base / "install", self.stubs)

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", OS_USER, "--", *args] if self.drop_privileges else list(args)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True)
        if proc.returncode != 0:
            raise ClusterError(f"{Path(args[0]).name} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def params(self, dbname: str = "postgres") -> dict:
        return {"login_host": "127.0.0.1", "login_port": self.port, "login_user": "postgres",
                "login_password": self.password, "login_db": dbname, "ssl_mode": "disable",
                "connect_timeout": 10, "connect_params": {}}

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        return subprocess.run(self._cmd(str(self.bindir / "pg_ctl"), "status", "-D", str(self.data)),
                              capture_output=True).returncode == 0

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)
        self._install()
        if not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24) + "\n")
        with tempfile.NamedTemporaryFile("w", prefix="pgrollout-pw-", delete=False) as pw:
            pw.write(self.password + "\n")
        try:
            if self.drop_privileges:
                self._hand_over(Path(pw.name))
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth-host=scram-sha-256", "--auth-local=reject", f"--pwfile={pw.name}",
                      "--encoding=UTF8", "--locale=C.UTF-8")
        finally:
            os.unlink(pw.name)

    def _hand_over(self, pwfile: Path) -> None:
        """As root: give the data folder's parent and the password copy to the server's OS user."""
        try:
            user = pwd.getpwnam(OS_USER)
        except KeyError as exc:
            raise ClusterError(f"OS user {OS_USER!r} not found: install postgresql-15 or set "
                               "PGROLLOUT_PG_OS_USER to an unprivileged user") from exc
        os.chown(self.base, user.pw_uid, user.pw_gid)
        os.chown(pwfile, user.pw_uid, user.pw_gid)
        if subprocess.run(self._cmd("test", "-w", str(self.base))).returncode != 0:
            raise ClusterError(f"OS user {OS_USER} cannot reach {self.base}: put the data under a path "
                               "it can traverse (chmod o+x on the parent folders) or set PGROLLOUT_DEVDB_DIR")

    def start(self) -> None:
        if self.running():
            return
        self._install()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        if self.fast:  # disposable test clusters: durability is not wanted
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            self._run(str(self.bindir / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log),
                      "-w", "-t", "60", "-o", options)
        except ClusterError as exc:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ClusterError(f"{exc}\n{tail}") from exc

    def stop(self) -> None:
        if self.running():
            self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def disposable_database(prefix: str, name: str = "bench") -> Iterator[dict]:
    """Connection parameters of database `name` on a fast cluster of its own, destroyed afterwards (benchmarks)."""
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix=prefix)), free_port(), fast=True)
    try:
        cluster.init()
        cluster.start()
        with connection.connect(cluster.params(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        yield cluster.params(name)
    finally:
        cluster.destroy()


def prepare_database(params: dict, upto: str | None = "002", seed: bool = True) -> None:
    """Compatibility layer, forward migrations up to `upto` (recorded in the ledger), seed."""
    run_sql_file(params, str(REPO / "supabase" / "compat" / "supabase_compat.sql"))
    with connection.connect(params) as conn:
        for path in sqlfile.find_migrations(str(REPO / "supabase" / "migrations")):
            mf = sqlfile.load(path)
            if upto is not None and int(mf.version) > int(upto):
                break
            migrate.apply(conn, mf, migrate.Options(run_id="baseline"))
    if seed:
        run_sql_file(params, str(REPO / "supabase" / "seed.sql"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The local dev PostgreSQL database")
    parser.add_argument("action", choices=["start", "stop", "reset", "status"])
    args = parser.parse_args(argv)
    cluster = LocalCluster(DEV_DIR, DEV_PORT, stubs=requested_stubs())
    try:
        if args.action == "stop":
            cluster.stop()
            print("dev database stopped")
            return 0
        if args.action == "status":
            print(f"dev database {'running' if cluster.running() else 'stopped'} "
                  f"on 127.0.0.1:{DEV_PORT}, data in {cluster.data}")
            return 0
        if args.action == "reset":
            cluster.destroy()
        fresh = not cluster.initialised()
        if fresh:
            cluster.init()
        cluster.start()
        if fresh:
            prepare_database(cluster.params())
        print(f"dev database running on 127.0.0.1:{DEV_PORT} (user postgres, password in "
              f"{cluster.password_file}); baseline {'applied' if fresh else 'kept'}"
              + (f"; extension STUBS offered (they send nothing): {', '.join(cluster.stubs)}" if cluster.stubs
                 else ""))
        return 0
    except (ClusterError, RuntimeError, ScratchError, sqlfile.MigrationFileError, migrate.MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
