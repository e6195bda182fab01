"""pg_dump to a verified archive with a manifest beside it.

The archive is written under a temporary name and renamed only once pg_dump
succeeded and a full read of it passed, so a file with the final name is
always a complete archive. `pg_restore --list` is not enough: it accepted
truncated and corrupted archives on these machines. Nor is a full read alone:
it caught 57 of 201 single-byte flips in a 60 KB archive (flips in the
uncompressed table of contents change DDL text silently), so verify_archive
compares the manifest's sha256 first.

pg_dump runs on a snapshot exported by a REPEATABLE READ transaction that also
counts the rows of every table it dumps: the manifest's row counts are those
of the archive exactly, whatever writes go on meanwhile.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .connection import client_environment, connect, host_port

# format -> (pg_dump --format letter, archive name suffix)
FORMATS = {"custom": ("c", ".dump"), "directory": ("d", ".dir"), "plain": ("p", ".sql")}
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"


class BackupError(Exception):
    """A backup that failed, or an archive that cannot be trusted; nothing is left under the final name."""


@dataclass
class DumpOptions:
    format: str = "custom"
    jobs: int = 1  # parallel pg_dump workers: directory format only
    schemas: list[str] = field(default_factory=list)  # empty: the whole database
    tables: list[str] = field(default_factory=list)
    lock_wait_timeout: str = "30s"
    compress: int | None = None  # gzip level 0-9 (pg_dump 15); None: pg_dump's default
    free_space_factor: float = 1.0  # free space needed, as a multiple of the database size; 0 skips
    keep: int = 0  # retention: keep the newest N archives of this host's database; 0 keeps all
    bindir: str | None = None
    inventory_host: str = ""  # in the archive's name: two hosts with a database of one name never collide
    run_id: str = ""  # in the archive's name: two runs in one second never collide
    protect: list[str] = field(default_factory=list)  # archives retention never removes
    progress_seconds: float = 10.0  # under async: a progress line this often (progress.py)


def tool_path(name: str, bindir: str | None = None) -> str:
    path = os.path.join(bindir, name) if bindir else shutil.which(name)
    if not path or not os.access(path, os.X_OK):
        raise BackupError(f"{name} not found{' in ' + bindir if bindir else ' on PATH'}: "
                          "install the PostgreSQL client tools (postgresql-client) or set pg_bindir")
    return path


def tool_major(path: str) -> int:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if not match:
        raise BackupError(f"cannot read the version of {path} from {out!r}")
    return int(match.group(1))


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(path: str) -> tuple[str, dict[str, str] | None]:
    """sha256 of a file; of a directory archive, per file and one digest over them all."""
    if not os.path.isdir(path):
        return sha256_of(path), None
    files = {name: sha256_of(os.path.join(path, name)) for name in sorted(os.listdir(path))}
    overall = hashlib.sha256("".join(f"{n} {h}\n" for n, h in files.items()).encode()).hexdigest()
    return overall, files


def size_of(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    return os.path.getsize(path)


def archive_name(database: str, label: str, fmt: str = "custom", now: datetime.datetime | None = None,
                 host: str = "", run_id: str = "") -> str:
    """HOST__DATABASE__LABEL__TIME[__RUN].ext, every part made file-name safe."""
    now = now or datetime.datetime.now(datetime.UTC)
    parts = [host, database, label, now.strftime("%Y%m%dT%H%M%SZ"), run_id]
    safe = "__".join(re.sub(r"[^A-Za-z0-9_.-]", "_", part) for part in parts if part)
    return f"{safe}{FORMATS[fmt][1]}"


# Cumulative write counters per table: compared at restore time, they say what a restore would discard.
_WRITES_SQL = """
SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del
FROM pg_stat_user_tables
WHERE (cardinality(%(schemas)s::text[]) = 0 OR schemaname = ANY(%(schemas)s::text[]))
"""


def write_counters(cur: Any, schemas: list[str]) -> dict[str, dict[str, int]]:
    cur.execute(_WRITES_SQL, {"schemas": schemas})
    return {t: {"inserted": i, "updated": u, "deleted": d} for t, i, u, d in cur.fetchall()}


def ledger_versions(cur: Any) -> list[str]:
    cur.execute("SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL")
    if not cur.fetchone()[0]:
        return []
    cur.execute("SELECT version FROM supabase_migrations.schema_migrations ORDER BY version")
    return [row[0] for row in cur.fetchall()]


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, encoding="utf-8", errors="replace", umask=0o077,
                          check=False)
    if proc.returncode != 0:
        raise BackupError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")


class _DumpWatch:
    """What a running pg_dump has done: tables dumped (its --verbose lines), bytes written, whom it waits for."""

    def __init__(self, conn: Any, partial: str, total: int, every: float) -> None:
        self.conn, self.partial, self.total, self.every = conn, partial, total, every
        self.done, self.pid = 0, 0

    def seen(self, line: str) -> None:
        if "dumping contents of table" in line:
            self.done += 1

    def line(self) -> str:
        said = (f"backup: pg_dump has dumped {min(self.done, self.total)} of {self.total} tables, "
                f"{size_of(self.partial)} bytes written")
        # pg_dump's own session (its application_name), waiting for a lock: who holds it
        rows = self.conn.execute(
            "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()", [DUMP_APPLICATION_NAME]).fetchall()
        blockers = sorted({b for _unused, pids in rows for b in pids})
        return said + (f"; waiting for a lock held by pid {', '.join(map(str, blockers))}" if blockers else "")


# pg_dump's application_name: its session is found (and its lock waits told) while it runs
DUMP_APPLICATION_NAME = "pgrollout pg_dump"


def _run_dump(cmd: list[str], env: dict[str, str], watch: _DumpWatch) -> None:
    """pg_dump, its progress told every few seconds to Ansible's async poll (progress.py) when under async."""
    from .progress import Progress

    env = {**env, "PGAPPNAME": DUMP_APPLICATION_NAME}
    errors: list[str] = []
    last: list[str] = []
    with Progress(watch.line, watch.every), subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, encoding="utf-8", errors="replace",
            umask=0o077) as proc:
        if proc.stderr is None:  # stderr=PIPE: always there; for the type checker
            raise RuntimeError("pg_dump's stderr is not a pipe")
        for line in proc.stderr:  # --verbose: one line per object; the errors (else the last lines) are kept
            watch.seen(line)
            last = [*last[-4:], line.strip()]
            if re.match(r"pg_dump: (error|fatal|detail|hint)", line):
                errors.append(line.strip())
        code = proc.wait()
    if code != 0:
        raise BackupError(f"pg_dump failed (exit {code}): {' '.join(errors or last)}")


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.unlink(path)


def validate_archive(path: str, params: dict[str, Any], bindir: str | None = None) -> None:
    """Read the whole archive: pg_restore fails on truncation, a missing data file or corruption."""
    if not os.path.isdir(path) and not _is_custom(path):
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 4096))
            if PLAIN_TRAILER not in handle.read():
                raise BackupError(f"validation of {path} failed: the plain SQL dump does not end with "
                                  f"pg_dump's '{PLAIN_TRAILER.decode()}' line (truncated?)")
        return
    with client_environment(params) as env:
        _run([tool_path("pg_restore", bindir), "--file", os.devnull, path], env,
             f"validation of {path} (a full read with pg_restore)")


def _is_custom(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(5) == b"PGDMP"


def read_manifest(path: str) -> dict[str, Any]:
    manifest_path = path.rstrip("/") + ".manifest.json"
    try:
        with open(manifest_path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise BackupError(f"{manifest_path}: cannot read the archive's manifest ({exc}); "
                          "an archive without its manifest cannot be trusted") from exc


def verify_checksum(path: str, manifest: dict[str, Any]) -> None:
    if not os.path.exists(path):
        raise BackupError(f"{path}: the archive is missing")
    actual, files = checksums(path)
    if files is not None and manifest.get("files"):
        missing = sorted(set(manifest["files"]) - set(files))
        changed = sorted(n for n in set(manifest["files"]) & set(files) if files[n] != manifest["files"][n])
        extra = sorted(set(files) - set(manifest["files"]))
        if missing or changed or extra:
            raise BackupError(f"{path}: the directory archive differs from its manifest: missing {missing}, "
                              f"changed {changed}, unexpected {extra}")
    if actual != manifest.get("sha256"):
        raise BackupError(f"{path}: sha256 mismatch: the manifest says {manifest.get('sha256')}, "
                          f"the file has {actual}; the archive was changed or damaged after it was written")


def trusted_manifest(path: str) -> dict[str, Any]:
    """The manifest beside the archive, once the archive's checksum matches it."""
    manifest = read_manifest(path)
    verify_checksum(path, manifest)
    return manifest


def verify_archive(path: str, params: dict[str, Any], bindir: str | None = None) -> dict[str, Any]:
    """Checksum against the manifest beside the archive, then a full read; return the manifest."""
    manifest = trusted_manifest(path)
    validate_archive(path, params, bindir)
    return manifest


_TABLES_SQL = """
SELECT n.nspname, c.relname, c.reltuples::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
  AND (cardinality(%(schemas)s::text[]) = 0 OR n.nspname = ANY(%(schemas)s::text[]))
  AND (cardinality(%(tables)s::text[]) = 0 OR n.nspname || '.' || c.relname = ANY(%(tables)s::text[])
       OR c.relname = ANY(%(tables)s::text[]))
ORDER BY 1, 2
"""


def table_rows(cur: Any, schemas: list[str], tables: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Exact row counts and the planner's estimates of the tables a dump with this scope holds."""
    from psycopg import sql

    cur.execute(_TABLES_SQL, {"schemas": schemas, "tables": tables})
    listed = cur.fetchall()
    counts, estimates = {}, {}
    for schema, table, estimate in listed:
        cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        counts[f"{schema}.{table}"] = cur.fetchone()[0]
        estimates[f"{schema}.{table}"] = max(estimate, 0)  # -1: never analysed
    return counts, estimates


def server_facts(params: dict[str, Any]) -> tuple[int, int]:
    with connect(params, autocommit=True) as conn:
        return conn.execute("SELECT current_setting('server_version_num')::int / 10000, "
                            "pg_database_size(current_database())").fetchone()


def check_before(dest_dir: str, opts: DumpOptions, server_major: int, database_size: int) -> tuple[str, int]:
    """Refuse what would fail or mislead halfway; return pg_dump's path and major version."""
    if opts.format not in FORMATS:
        raise BackupError(f"format {opts.format!r} is not one of {sorted(FORMATS)}")
    if opts.jobs > 1 and opts.format != "directory":
        raise BackupError("parallel jobs need format: directory (pg_dump -j writes one file per table)")
    pg_dump = tool_path("pg_dump", opts.bindir)
    major = tool_major(pg_dump)
    if major < server_major:
        raise BackupError(f"pg_dump {major} cannot dump a PostgreSQL {server_major} server: "
                          f"install postgresql-client-{server_major} or set pg_bindir")
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    if not os.access(dest_dir, os.W_OK | os.X_OK):
        raise BackupError(f"{dest_dir} is not writable by this user: fix its owner or mode, or choose another "
                          "dest_dir")
    free = shutil.disk_usage(dest_dir).free
    needed = int(database_size * opts.free_space_factor)
    if free < needed:
        raise BackupError(f"{dest_dir} has {free} bytes free; the database is {database_size} bytes and "
                          f"free_space_factor {opts.free_space_factor:g} asks for {needed}: free space, "
                          "choose another dest_dir, or lower free_space_factor")
    return pg_dump, major


def _dump_command(pg_dump: str, target: str, snapshot: str, opts: DumpOptions) -> list[str]:
    cmd = [pg_dump, f"--format={FORMATS[opts.format][0]}", "--no-password", f"--snapshot={snapshot}",
           f"--lock-wait-timeout={opts.lock_wait_timeout}", "--file", target]
    if opts.format == "directory" and opts.jobs > 1:
        cmd.append(f"--jobs={opts.jobs}")
    if opts.format == "plain":  # restorable with psql -f over an existing database, as the plan does
        cmd += ["--clean", "--if-exists"]
    if opts.compress is not None:
        cmd.append(f"--compress={opts.compress}")
    cmd += [f"--schema={s}" for s in opts.schemas] + [f"--table={t}" for t in opts.tables]
    return cmd


def dump(params: dict[str, Any], dest_dir: str, label: str, server_major: int, database_size: int = 0,
         opts: DumpOptions | None = None) -> dict[str, Any]:
    """Write, validate and checksum an archive; write its manifest; apply retention. Return the manifest."""
    opts = opts or DumpOptions()
    pg_dump, pg_dump_major = check_before(dest_dir, opts, server_major, database_size)
    final = os.path.join(dest_dir, archive_name(params["login_db"], label, opts.format,
                                                host=opts.inventory_host, run_id=opts.run_id))
    if os.path.exists(final):
        raise BackupError(f"{final} exists already: refusing to overwrite an archive")
    partial = os.path.join(dest_dir, "." + os.path.basename(final) + ".partial")
    started = datetime.datetime.now(datetime.UTC)
    clock = _Phases()
    try:
        with connect(params) as conn, conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # the snapshot's xmin: every row version written since has a transaction id at or after it
            cur.execute("SELECT pg_export_snapshot(), pg_snapshot_xmin(pg_current_snapshot())::text")
            snapshot, snapshot_xmin = cur.fetchone()
            cur.execute(_TABLES_SQL, {"schemas": opts.schemas, "tables": opts.tables})
            total = len(cur.fetchall())
            with clock("pg_dump"), client_environment(params) as env:
                _run_dump(_dump_command(pg_dump, partial, snapshot, opts) + ["--verbose"], env,
                          _DumpWatch(conn, partial, total, opts.progress_seconds))
            with clock("row_counts"):
                counts, estimates = table_rows(cur, opts.schemas, opts.tables)
                writes, ledger = write_counters(cur, opts.schemas), ledger_versions(cur)
            conn.rollback()
        if size_of(partial) == 0:
            raise BackupError("pg_dump wrote an empty archive")
        with clock("full_read"):
            validate_archive(partial, params, opts.bindir)
        _lock_down(partial)
        os.replace(partial, final)
    finally:
        _remove(partial)
    with clock("sha256"):
        sha, files = checksums(final)
    host, port = host_port(params)  # as given, else libpq's (PGHOST, PGPORT)
    manifest = {
        "path": final, "format": opts.format, "database": params["login_db"], "host": host, "port": port,
        "label": label, "scope": {"schemas": opts.schemas, "tables": opts.tables},
        "pg_dump_version": pg_dump_major, "server_major": server_major,
        "started_at": started.isoformat(), "finished_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "size_bytes": size_of(final), "database_size_bytes": database_size, "sha256": sha,
        **({"files": files} if files is not None else {}),
        "table_count": len(counts), "row_counts": counts, "row_estimates": estimates,
        "inventory_host": opts.inventory_host, "run_id": opts.run_id,
        # at the snapshot: a restore compares them with the target's to report what it would discard
        "write_counters": writes, "applied_migrations": ledger, "snapshot_xmin": snapshot_xmin,
        "validated": "full read with pg_restore" if opts.format != "plain" else "pg_dump's closing line present",
        "seconds": clock.seconds,
    }
    manifest_path = final + ".manifest.json"
    fd = os.open(manifest_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
    removed = apply_retention(dest_dir, params["login_db"], opts.keep, keep_path=final,
                              host=opts.inventory_host, protect=opts.protect)
    return {**manifest, "manifest": manifest_path, "removed": removed}


class _Phases:
    """Seconds spent per phase, for the manifest and the benchmark."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - started, 3)


def _lock_down(path: str) -> None:
    if os.path.isdir(path):
        os.chmod(path, 0o700)
        for name in os.listdir(path):
            os.chmod(os.path.join(path, name), 0o600)
    else:
        os.chmod(path, 0o600)


def apply_retention(dest_dir: str, database: str, keep: int, keep_path: str, host: str = "",
                    protect: list[str] | None = None) -> list[str]:
    """Remove all but the newest `keep` archives of this host's `database` that have a manifest (ours).

    An archive in `protect` (the backup the newest evidence of an applied
    migration names: the one its rollback may need) is never removed.
    """
    if keep <= 0:
        return []
    protected = {os.path.realpath(p) for p in protect or [] if p}
    manifests = []
    for name in os.listdir(dest_dir):
        if name.endswith(".manifest.json"):
            try:
                with open(os.path.join(dest_dir, name)) as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                continue
            if data.get("database") == database and data.get("path") and data.get("inventory_host", "") == host:
                manifests.append((data.get("finished_at", ""), data["path"], os.path.join(dest_dir, name)))
    manifests.sort(reverse=True)
    removed = []
    for _unused, archive, manifest_path in manifests[keep:]:
        if archive == keep_path or os.path.dirname(os.path.abspath(archive)) != os.path.abspath(dest_dir) \
                or os.path.realpath(archive) in protected:
            continue
        _remove(archive)
        os.unlink(manifest_path)
        removed.append(archive)
    return removed
