"""One connection spec for every pgrollout module, modelled on community.postgresql.

The password travels to PostgreSQL client programs (pg_dump, pg_restore) only
through a temporary passfile named in the child's environment: never argv.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection

CONNECTION_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "login_host": {"type": "str", "default": "127.0.0.1", "aliases": ["host"]},
    "login_port": {"type": "int", "default": 5432, "aliases": ["port"]},
    "login_user": {"type": "str", "default": "postgres", "aliases": ["user"]},
    "login_password": {"type": "str", "default": "", "no_log": True, "aliases": ["password"]},
    "login_db": {"type": "str", "default": "postgres", "aliases": ["db"]},
    "ssl_mode": {
        "type": "str",
        "default": "prefer",
        "choices": ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"],
    },
    "connect_timeout": {"type": "int", "default": 10},
    "connect_params": {"type": "dict", "default": {}},
}

APPLICATION_NAME = "pgrollout"
# Passfiles are named with the creating pid, so a later run can tell a dead run's leftover.
PASSFILE_PREFIX = "pgrollout-pass-"


# connect_params that libpq's client programs (pg_dump, pg_restore, psql) read from the environment.
LIBPQ_ENVIRONMENT = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL", "sslcrldir": "PGSSLCRLDIR", "sslsni": "PGSSLSNI", "sslcompression": "PGSSLCOMPRESSION",
    "requiressl": "PGREQUIRESSL", "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION", "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME", "gsslib": "PGGSSLIB", "channel_binding": "PGCHANNELBINDING",
    "options": "PGOPTIONS", "target_session_attrs": "PGTARGETSESSIONATTRS", "service": "PGSERVICE",
    "hostaddr": "PGHOSTADDR", "connect_timeout": "PGCONNECT_TIMEOUT", "client_encoding": "PGCLIENTENCODING",
    "require_auth": "PGREQUIREAUTH", "load_balance_hosts": "PGLOADBALANCEHOSTS",
}


def libpq_params(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword parameters for libpq built from module parameters (password excluded)."""
    conn = {
        "host": params["login_host"],
        "port": params["login_port"],
        "user": params["login_user"],
        "dbname": params["login_db"],
        "sslmode": params["ssl_mode"],
        "connect_timeout": params["connect_timeout"],
        "application_name": APPLICATION_NAME,
    }
    conn.update(params.get("connect_params") or {})
    return conn


def connect(params: dict[str, Any], autocommit: bool = False) -> Connection:
    """Open a psycopg connection; a missing driver or a refused login is a clear error."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the interpreter
        raise RuntimeError(
            "psycopg 3 is not installed for the Python that runs this module; "
            "install it (pip install 'psycopg[binary]') or set ansible_python_interpreter"
        ) from exc
    kwargs = libpq_params(params)
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    try:
        return psycopg.connect(autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"cannot connect to {kwargs['host']}:{kwargs['port']} database "
            f"{kwargs['dbname']} as {kwargs['user']}: {str(exc).strip()}{_tls_hint(str(exc), kwargs)}"
        ) from exc


def _tls_hint(error: str, kwargs: dict[str, Any]) -> str:
    """What to change when TLS is the cause: the inventory's pgrollout_db_ssl_mode (ssl_mode)."""
    if not any(word in error for word in ("SSL", "ssl", "certificate", "TLS")):
        return ""
    return (f". TLS: sslmode is {kwargs.get('sslmode')!r} (pgrollout_db_ssl_mode, the module's ssl_mode): "
            "use 'require' for a server with TLS, 'verify-full' with its CA certificate, or 'disable' only for a "
            "server without TLS on a private network (README, Environments: Adding a target)")


def _passfile_line(params: dict[str, Any]) -> str:
    def esc(value: Any) -> str:
        return str(value).replace("\\", "\\\\").replace(":", "\\:")

    fields = ("*", "*", "*", params["login_user"], params["login_password"])
    return ":".join(esc(f) for f in fields) + "\n"


@contextlib.contextmanager
def client_environment(params: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Environment for pg_dump/pg_restore: connection in PG* variables, password in a 0600 passfile."""
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    conn = libpq_params(params)
    unknown = sorted(set(params.get("connect_params") or {}) - set(LIBPQ_ENVIRONMENT) - {"application_name"})
    if unknown:
        raise RuntimeError(f"connect_params {unknown} cannot be passed to pg_dump, pg_restore and psql "
                           f"(libpq environment variables exist for: {', '.join(sorted(LIBPQ_ENVIRONMENT))})")
    env.update({LIBPQ_ENVIRONMENT[k]: str(v) for k, v in (params.get("connect_params") or {}).items()
                if k in LIBPQ_ENVIRONMENT})
    env.update(
        {
            "PGHOST": str(conn["host"]),
            "PGPORT": str(conn["port"]),
            "PGUSER": str(conn["user"]),
            "PGDATABASE": str(conn["dbname"]),
            "PGSSLMODE": str(conn["sslmode"]),
            "PGCONNECT_TIMEOUT": str(conn["connect_timeout"]),
            "PGAPPNAME": APPLICATION_NAME,
        }
    )
    if not params.get("login_password"):
        yield env
        return
    fd, path = tempfile.mkstemp(prefix=f"{PASSFILE_PREFIX}{os.getpid()}-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(_passfile_line(params))
        env["PGPASSFILE"] = path
        yield env
    finally:
        os.unlink(path)
