"""One connection spec for every pgrollout module, modelled on community.postgresql.

Connections follow libpq: a host or port not given is libpq's (PGHOST, PGPORT,
a service file named in connect_params, the Unix socket), and with no
password given, libpq's own sources work for the client programs too
(PGPASSWORD, PGPASSFILE, ~/.pgpass). A password that is given travels to
pg_dump, pg_restore and psql only through a temporary passfile named in the
child's environment: never argv.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection

CONNECTION_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "login_host": {"type": "str", "default": "", "aliases": ["host"]},
    "login_unix_socket": {"type": "str", "default": ""},
    "login_port": {"type": "int", "aliases": ["port"]},
    "login_user": {"type": "str", "default": "postgres", "aliases": ["user"]},
    "login_password": {"type": "str", "default": "", "no_log": True, "aliases": ["password"]},
    "login_db": {"type": "str", "default": "postgres", "aliases": ["db"]},
    "ssl_mode": {
        "type": "str",
        "default": "prefer",
        "choices": ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"],
    },
    "ca_cert": {"type": "str", "aliases": ["ssl_rootcert"]},
    "ssl_cert": {"type": "path"},
    "ssl_key": {"type": "path", "no_log": False},
    "connect_timeout": {"type": "int", "default": 10},
    "connect_params": {"type": "dict", "default": {}},
}
# community.postgresql's names for libpq's TLS files
_TLS_FILES = {"ca_cert": "sslrootcert", "ssl_cert": "sslcert", "ssl_key": "sslkey"}

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
    """Keyword parameters for libpq built from module parameters (password excluded).

    Only what was given: a host or port left out is libpq's to choose (environment, service file, socket).
    """
    given = {
        "host": params.get("login_host") or params.get("login_unix_socket") or None,
        "port": params.get("login_port"),
        "user": params.get("login_user"),
        "dbname": params.get("login_db"),
        "sslmode": params.get("ssl_mode"),
        "connect_timeout": params.get("connect_timeout"),
        **{libpq: params.get(name) for name, libpq in _TLS_FILES.items()},
    }
    conn = {k: v for k, v in given.items() if v not in (None, "")}
    conn["application_name"] = APPLICATION_NAME
    conn.update(params.get("connect_params") or {})
    return conn


def host_port(params: dict[str, Any]) -> tuple[str | None, int | None]:
    """The host and port as given, else libpq's environment (PGHOST, PGPORT); None where neither says."""
    conn = libpq_params(params)
    port = conn.get("port") or os.environ.get("PGPORT")
    return conn.get("host") or os.environ.get("PGHOST") or None, int(port) if port else None


def where(params: dict[str, Any]) -> str:
    """host:port as given, or what libpq will use, for messages."""
    host, port = host_port(params)
    service = (params.get("connect_params") or {}).get("service")
    host = host or (f"service {service}" if service else "the local socket")
    port = port or ("" if service else 5432)
    return f"{host}:{port}" if port else str(host)


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
            f"cannot connect to {where(params)} database {kwargs.get('dbname') or '(libpq default)'} as "
            f"{kwargs.get('user') or '(libpq default)'}: {str(exc).strip()}{_tls_hint(str(exc), kwargs)}"
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

    fields = ("*", "*", "*", params.get("login_user") or "*", params["login_password"])
    return ":".join(esc(f) for f in fields) + "\n"


@contextlib.contextmanager
def client_environment(params: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Environment for pg_dump/pg_restore: connection in PG* variables, password in a 0600 passfile.

    With no password given, the caller's PGPASSWORD, PGPASSFILE and ~/.pgpass stay as libpq reads them.
    """
    env = dict(os.environ)
    conn = libpq_params(params)
    unknown = sorted(set(params.get("connect_params") or {}) - set(LIBPQ_ENVIRONMENT) - {"application_name"})
    if unknown:
        raise RuntimeError(f"connect_params {unknown} cannot be passed to pg_dump, pg_restore and psql "
                           f"(libpq environment variables exist for: {', '.join(sorted(LIBPQ_ENVIRONMENT))})")
    env.update({LIBPQ_ENVIRONMENT[k]: str(v) for k, v in (params.get("connect_params") or {}).items()
                if k in LIBPQ_ENVIRONMENT})
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE", "sslmode": "PGSSLMODE",
             "connect_timeout": "PGCONNECT_TIMEOUT", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
             "sslkey": "PGSSLKEY"}
    env.update({var: str(conn[key]) for key, var in names.items() if conn.get(key) not in (None, "")})
    env["PGAPPNAME"] = APPLICATION_NAME
    if not params.get("login_password"):
        yield env
        return
    env.pop("PGPASSWORD", None)  # it would win over the passfile written below
    fd, path = tempfile.mkstemp(prefix=f"{PASSFILE_PREFIX}{os.getpid()}-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(_passfile_line(params))
        env["PGPASSFILE"] = path
        yield env
    finally:
        os.unlink(path)
