"""Connections the libpq way (issue 24): what is not given is libpq's - environment, service file, .pgpass."""
from __future__ import annotations

import subprocess

import localpg
from pgrollout import connection


def bare(cluster, **given) -> dict:
    """Module parameters as the spec defaults them, with only `given` set."""
    params = {name: spec.get("default") for name, spec in connection.CONNECTION_ARGUMENT_SPEC.items()}
    params.update(ssl_mode="disable", **given)
    return params


def dump(params: dict) -> subprocess.CompletedProcess:
    """pg_dump --schema-only in the environment pgrollout gives its child processes."""
    with connection.client_environment(params) as env:
        return subprocess.run([str(localpg.find_bindir() / "pg_dump"), "--schema-only"], env=env,
                              capture_output=True, text=True)


def port_of(params: dict) -> int:
    with connection.connect(params, autocommit=True) as conn:
        return conn.execute("SELECT inet_server_port()").fetchone()[0]


def test_pghost_and_pgport_are_used_when_the_module_is_not_given_them(cluster, monkeypatch):
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(cluster.port))
    params = bare(cluster, login_password=cluster.password)
    assert "host" not in connection.libpq_params(params) and "port" not in connection.libpq_params(params)
    assert port_of(params) == cluster.port
    assert connection.where(params) == f"127.0.0.1:{cluster.port}"
    dumped = dump(params)  # pg_dump the same way
    assert dumped.returncode == 0, dumped.stderr


def test_a_service_file_is_not_overridden_by_defaults(cluster, tmp_path, monkeypatch):
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[pgrollout_test]\nhost=127.0.0.1\nport={cluster.port}\nsslmode=disable\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.delenv("PGHOST", raising=False)
    monkeypatch.delenv("PGPORT", raising=False)
    params = bare(cluster, login_password=cluster.password, connect_params={"service": "pgrollout_test"})
    assert port_of(params) == cluster.port
    dumped = dump(params)  # pg_dump the same way
    assert dumped.returncode == 0, dumped.stderr


def test_pgpassword_reaches_pg_dump_when_no_password_is_given_and_a_given_one_wins(cluster, monkeypatch):
    pg_dump = str(localpg.find_bindir() / "pg_dump")
    monkeypatch.setenv("PGPASSWORD", cluster.password)
    params = bare(cluster, login_host="127.0.0.1", login_port=cluster.port)
    with connection.client_environment(params) as env:
        assert env["PGPASSWORD"] == cluster.password and "PGPASSFILE" not in env
        dumped = subprocess.run([pg_dump, "--schema-only"], env=env, capture_output=True, text=True)
    assert dumped.returncode == 0, dumped.stderr
    monkeypatch.setenv("PGPASSWORD", "not-the-password")  # a given password goes by passfile and wins
    with connection.client_environment(dict(params, login_password=cluster.password)) as env:
        assert "PGPASSWORD" not in env and env["PGPASSFILE"]
        dumped = subprocess.run([pg_dump, "--schema-only"], env=env, capture_output=True, text=True)
    assert dumped.returncode == 0, dumped.stderr


def test_a_pgpass_file_serves_the_connection_and_pg_dump_when_no_password_is_given(cluster, tmp_path,
                                                                                 monkeypatch):
    """~/.pgpass (here through HOME) as libpq reads it: the module's connection and pg_dump's both."""
    pg_dump = str(localpg.find_bindir() / "pg_dump")
    home = tmp_path / "home"
    home.mkdir()
    pgpass = home / ".pgpass"
    pgpass.write_text(f"127.0.0.1:{cluster.port}:*:postgres:{cluster.password}\n")
    pgpass.chmod(0o600)  # libpq ignores a passfile others can read
    monkeypatch.setenv("HOME", str(home))
    for name in ("PGPASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(name, raising=False)
    params = bare(cluster, login_host="127.0.0.1", login_port=cluster.port)
    assert port_of(params) == cluster.port
    with connection.client_environment(params) as env:
        assert "PGPASSWORD" not in env and "PGPASSFILE" not in env  # libpq finds ~/.pgpass itself
        dumped = subprocess.run([pg_dump, "--schema-only"], env=env, capture_output=True, text=True)
    assert dumped.returncode == 0, dumped.stderr
    pgpass.write_text(f"127.0.0.1:{cluster.port}:*:postgres:wrong\n")  # and it is what decides
    with connection.client_environment(params) as env:
        refused = subprocess.run([pg_dump, "--schema-only"], env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "password authentication failed" in refused.stderr


def test_community_postgresql_names_for_tls_files_and_the_unix_socket():
    params = bare(None, login_unix_socket="/run/postgresql", ca_cert="/etc/ca.pem", ssl_cert="/c.pem",
                  ssl_key="/k.pem")
    conn = connection.libpq_params(params)
    assert (conn["host"], conn["sslrootcert"], conn["sslcert"], conn["sslkey"]) == \
        ("/run/postgresql", "/etc/ca.pem", "/c.pem", "/k.pem")
    assert connection.libpq_params(dict(params, login_host="db.example"))["host"] == "db.example"
