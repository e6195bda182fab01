"""Restore a verified archive: into the target, atomically, or into a scratch database.

Into the target, the restore makes the database what the archive holds: one
psql transaction first drops the objects created since the backup (a schema,
table, view, sequence, function or type the archive does not have: pg_restore
--clean only drops what the archive holds, so migration 003's tables would
survive it), then runs the archive's script with --clean --if-exists. Any
error rolls the whole transaction back: the target is either restored or
exactly as it was.

Into a scratch database the restore runs in parallel (pg_restore -j). The
rehearsal restores there, compares every table's row count with the counts
the manifest recorded from the dump's own snapshot, and drops the scratch
database even when the comparison fails.
"""
from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .backup import BackupError, table_rows, tool_path, trusted_manifest, verify_archive
from .connection import client_environment, connect
from .controller import ControllerWatch
from .modules import public
from .scratch import create_database, drop_database

# TOC entry types that name an object a later migration may add, as pg_restore --list writes them.
_TOC_RE = re.compile(r"^\d+; \d+ \d+ (MATERIALIZED VIEW|FOREIGN TABLE|TABLE(?! DATA )|VIEW|"
                     r"SEQUENCE(?! OWNED BY | SET )|FUNCTION|PROCEDURE|TYPE|DOMAIN|SCHEMA) (\S+) (.+) \S+$")
_SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"
# pgrollout's own bookkeeping and the Supabase ledger: a restore resets them with the rest
TOOL_SCHEMAS = ("pgrollout", "supabase_migrations")
# pgrollout's records of what happened to the target (not its state): a restore keeps them as they are,
# so the restoring run's lease stays held and the history keeps every apply since the backup, and the restore
KEPT_RECORDS = ("lease", "lease_events", "history", "lease_events_id_seq", "history_id_seq", "catalog_snapshots",
                "catalog_snapshots_id_seq")
_TOC_HEAD_RE = re.compile(r"^\d+; \d+ \d+ ")


def toc_fields(line: str) -> tuple[str, str, str] | None:
    """(kind, schema, first word of the name) of a pg_restore --list entry; the kind is its upper-case words."""
    head = _TOC_HEAD_RE.match(line)
    if not head:
        return None
    words = line[head.end():].split(" ")
    count = next((i for i, w in enumerate(words) if not re.fullmatch(r"[A-Z]+", w)), len(words))
    if count == 0 or len(words) < count + 2:
        return None
    return " ".join(words[:count]), words[count], words[count + 1]


def kept_record(kind: str, schema: str, name: str) -> bool:
    """An object of pgrollout's records (or the schema that holds them), which a restore leaves alone."""
    bare = name.split(" ", 1)[0]
    return (schema == "pgrollout" and bare in KEPT_RECORDS) or (kind == "SCHEMA" and name == "pgrollout")


def without_kept_records(entries: list[str]) -> list[str]:
    """The archive's TOC entries but those of pgrollout's records (for pg_restore --use-list)."""
    kept = []
    for line in entries:
        fields = toc_fields(line)
        if fields and kept_record(*fields):
            continue
        kept.append(line)
    return kept


# Objects in the database now, keyed like the archive's TOC: (kind, schema, name) (a function's name
# with its argument types, as pg_restore --list prints them), with its oid and, for a function, its
# argument types as (schema, type name) pairs to drop it by.
_CURRENT_SQL = f"""
SELECT 'SCHEMA'::text, '-'::text, n.nspname::text, n.oid, NULL::text[], NULL::text[], 'pg_namespace'::text
FROM pg_namespace n
WHERE n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'public'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                  AND d.objid = n.oid AND d.deptype = 'e')
UNION ALL
SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
                      WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'SEQUENCE' END,
       n.nspname::text, c.relname::text, c.oid, NULL, NULL, 'pg_class'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND NOT c.relispartition
  AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, n.nspname::text,
       p.proname::text || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')', p.oid,
       ARRAY(SELECT tn.nspname::text FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)
             JOIN pg_type ty ON ty.oid = a.t JOIN pg_namespace tn ON tn.oid = ty.typnamespace ORDER BY a.i),
       ARRAY(SELECT ty.typname::text FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)
             JOIN pg_type ty ON ty.oid = a.t ORDER BY a.i), 'pg_proc'
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p') AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname::text, t.typname::text, t.oid,
       NULL, NULL, 'pg_type'
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd', 'r') AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
"""

# Objects outside the restore's schemas that depend (directly or through others) on what it would
# drop. A view depends on a table through its rewrite rule: the rule leads to the view.
_DEPENDENTS_SQL = """
WITH RECURSIVE dep(classid, objid) AS (
  SELECT d.classid, d.objid FROM pg_depend d
  JOIN unnest(%(classes)s::text[], %(oids)s::oid[]) AS t(cls, oid) ON d.refclassid = t.cls::regclass
   AND d.refobjid = t.oid
  WHERE d.deptype IN ('n', 'a')
  UNION
  SELECT next.classid, next.objid FROM dep
  CROSS JOIN LATERAL (
    SELECT d.classid, d.objid FROM pg_depend d
    WHERE d.refclassid = dep.classid AND d.refobjid = dep.objid AND d.deptype IN ('n', 'a')
    UNION ALL
    SELECT 'pg_class'::regclass, r.ev_class FROM pg_rewrite r
    WHERE dep.classid = 'pg_rewrite'::regclass AND r.oid = dep.objid
  ) next
)
SELECT DISTINCT pg_describe_object(classid, objid, 0), (pg_identify_object(classid, objid, 0)).schema
FROM dep WHERE classid <> 'pg_rewrite'::regclass
"""


@dataclass(frozen=True)
class Found:
    """An object in the target that the archive does not hold."""

    kind: str
    schema: str
    name: str
    oid: int
    arg_schemas: tuple[str, ...] | None
    arg_types: tuple[str, ...] | None
    catalog: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.schema, self.name)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}" if self.kind == "SCHEMA" else f"{self.kind} {self.schema}.{self.name}"


def toc(archive: str, bindir: str | None = None) -> list[str]:
    """The archive's table of contents (pg_restore --list), comments left out."""
    proc = subprocess.run([tool_path("pg_restore", bindir), "--list", archive], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise BackupError(f"cannot list {archive}: {proc.stderr.strip()}")
    return [line for line in proc.stdout.splitlines() if line and not line.startswith(";")]


def archive_objects(entries: list[str]) -> set[tuple[str, str, str]]:
    objects = set()
    for line in entries:
        match = _TOC_RE.match(line)
        if match:
            objects.add((match.group(1), match.group(2), match.group(3)))
    return objects


def _in_scope(obj: tuple[str, str, str], schemas: list[str]) -> bool:
    schema = obj[2] if obj[0] == "SCHEMA" else obj[1]
    return not schemas or schema in schemas


def created_since(params: dict[str, Any], entries: list[str], schemas: list[str]) -> list[Found]:
    """Objects in the target that the archive does not hold: created after the backup."""
    with connect(params, autocommit=True) as conn:
        current = [Found(r[0], r[1], r[2], r[3], tuple(r[4]) if r[4] is not None else None,
                         tuple(r[5]) if r[5] is not None else None, r[6]) for r in conn.execute(_CURRENT_SQL)]
    held = archive_objects(entries)
    new = sorted((o for o in current if o.key not in held and _in_scope(o.key, schemas)
                  and not kept_record(o.kind, o.schema, o.name)), key=lambda o: o.key)
    new_schemas = {o.name for o in new if o.kind == "SCHEMA"}
    # what lies inside a new schema goes with it
    return [o for o in new if o.kind == "SCHEMA" or o.schema not in new_schemas]


def drop_statement(obj: Found, cascade: bool = True) -> Any:
    """DROP ... IF EXISTS for an object found in the catalog: every name an identifier, never SQL text."""
    from psycopg import sql

    tail = sql.SQL(" CASCADE" if cascade else "")
    if obj.kind == "SCHEMA":
        return sql.SQL("DROP SCHEMA IF EXISTS {}{};").format(sql.Identifier(obj.name), tail)
    if obj.kind in ("FUNCTION", "PROCEDURE"):
        name = obj.name.split("(", 1)[0]
        args = sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(s), sql.Identifier(t))
                                  for s, t in zip(obj.arg_schemas or (), obj.arg_types or (), strict=True))
        return sql.SQL("DROP {} IF EXISTS {}.{}({}){};").format(
            sql.SQL(obj.kind), sql.Identifier(obj.schema), sql.Identifier(name), args, tail)
    return sql.SQL("DROP {} IF EXISTS {}.{}{};").format(
        sql.SQL(obj.kind), sql.Identifier(obj.schema), sql.Identifier(obj.name), tail)


def outside_dependents(params: dict[str, Any], drops: list[Found], schemas: list[str]) -> list[str]:
    """Objects outside `schemas` that a CASCADE of `drops` would reach."""
    if not schemas or not drops:
        return []
    with connect(params, autocommit=True) as conn:
        rows = conn.execute(_DEPENDENTS_SQL, {"classes": [o.catalog for o in drops],
                                              "oids": [o.oid for o in drops]}).fetchall()
    return sorted(description for description, schema in rows if schema is not None and schema not in schemas)


def plan(params: dict[str, Any], archive: str, schemas: list[str], tables: list[str],
         bindir: str | None = None, *, into_target: bool = True) -> dict[str, Any]:
    """What a restore would do: what it drops first (into the target), which tables it restores."""
    entries = toc(archive, bindir)
    drops = created_since(params, entries, schemas) if into_target and not tables else []
    restored = [e for e in entries if _entry_in_scope(e, schemas, tables)]
    return {"drop_first": [o.label for o in drops], "_drops": drops, "entries": len(restored),
            "tables": sorted({f"{m.group(2)}.{m.group(3)}" for e in restored
                              if (m := _TOC_RE.match(e)) and m.group(1) == "TABLE"})}


def _entry_in_scope(entry: str, schemas: list[str], tables: list[str]) -> bool:
    match = _TOC_RE.match(entry)
    if not match:
        return not tables
    kind, schema, name = match.groups()
    if tables:
        return kind == "TABLE" and (name in tables or f"{schema}.{name}" in tables)
    return _in_scope((kind, schema, name), schemas)


def _selectors(schemas: list[str], tables: list[str]) -> list[str]:
    qualified = {t.split(".", 1)[0] for t in tables if "." in t}
    return ([f"--schema={s}" for s in sorted(set(schemas) | qualified)]
            + [f"--table={t.split('.')[-1]}" for t in tables])


def _table_identifier(table: str) -> Any:
    from psycopg import sql

    return sql.Identifier(*table.split(".", 1))


def _preamble(params: dict[str, Any], what: dict[str, Any], schemas: list[str], tables: list[str],
              lock_timeout: str) -> str:
    """The SQL sent before the archive's script, inside our BEGIN: timeouts, drops, truncation."""
    from psycopg import sql

    outside = outside_dependents(params, what["_drops"], schemas)
    if outside:
        raise BackupError(f"a restore of schema(s) {', '.join(schemas)} would drop objects outside them "
                          f"(they depend on what it drops): {'; '.join(outside[:20])}. Nothing was changed: "
                          "restore the whole database, or remove those dependencies first")
    parts = [sql.SQL("SET LOCAL lock_timeout = {};").format(sql.Literal(_setting(lock_timeout))),
             sql.SQL("SET LOCAL client_min_messages = warning;")]
    # A schema-scoped restore drops without CASCADE: nothing outside its scope may go with it.
    parts += [drop_statement(o, cascade=not schemas) for o in what["_drops"]]
    if tables:
        parts.append(sql.SQL("TRUNCATE {};").format(sql.SQL(", ").join(_table_identifier(t) for t in tables)))
    with connect(params, autocommit=True) as conn:
        return "\n".join(part.as_string(conn) for part in parts) + "\n"


def restore_target(params: dict[str, Any], archive: str, *, schemas: list[str] | None = None,
                   tables: list[str] | None = None, lock_timeout: str = "30s",
                   bindir: str | None = None, run_id: str | None = None,
                   controller_pid: int | None = None) -> dict[str, Any]:
    """Make the target what the archive holds, in one transaction that we open and commit.

    With `tables`, only their rows: emptied, then reloaded from the archive (schema kept).
    pgrollout's records (lease, lease events, history) are left as they are and the restore is
    appended to the history in the same transaction.
    """
    schemas, tables = schemas or [], tables or []
    watch = ControllerWatch(controller_pid)  # before anything runs: the ancestors this restore answers to
    now = {"doing": "verifying the archive's checksum and manifest", "sent": 0, "of": None}
    with _target_progress(params, now):
        return _restore_target(params, archive, schemas, tables, lock_timeout, bindir, run_id, watch, now)


def _restore_target(params: dict[str, Any], archive: str, schemas: list[str], tables: list[str], lock_timeout: str,
                    bindir: str | None, run_id: str | None, watch: ControllerWatch, now: dict[str, Any]
                    ) -> dict[str, Any]:
    import tempfile

    manifest = verify_archive(archive, params, bindir)
    now.update(doing="reading what the archive holds and what was created since",
               of=manifest.get("database_size_bytes"))
    what = plan(params, archive, schemas, tables, bindir)
    preamble = _preamble(params, what, schemas, tables, lock_timeout)
    mode = ["--data-only"] if tables else ["--clean", "--if-exists"]
    psql = [tool_path("psql", bindir), "--no-psqlrc", "--quiet", "--no-password", "--set", "ON_ERROR_STOP=1",
            "--file", "-"]
    entries = toc(archive, bindir)
    if not tables and ("SCHEMA", "-", "pgrollout") in {toc_fields(e) for e in entries}:
        preamble += "CREATE SCHEMA IF NOT EXISTS pgrollout;\n"  # it holds the records kept
    with tempfile.NamedTemporaryFile("w", prefix="pgrollout-toc-", suffix=".list") as listing:
        listing.write("\n".join(without_kept_records(entries)) + "\n")
        listing.flush()
        restore_cmd = [tool_path("pg_restore", bindir), *mode, "--use-list", listing.name, "--file", "-",
                       *_selectors(schemas, tables), archive]
        now["doing"] = "starting pg_restore"
        with client_environment(params) as env:
            _pipe(restore_cmd, psql, env, f"restore of {archive} into {params['login_db']}", _setting(lock_timeout),
                  preamble, _history_entry(params, archive, manifest, run_id), watch, now)
    now.update(doing="committed; recording the catalog", sent=0)
    _record_catalog(params, run_id)
    return {"manifest": manifest, **public(what)}


def _record_catalog(params: dict[str, Any], run_id: str | None) -> None:
    """The restored catalog is the recorded state from now on (drift is measured against it)."""
    from . import schema

    with connect(params) as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT to_regclass('pgrollout.catalog_snapshots') IS NOT NULL")
        if cur.fetchone()[0]:
            schema.store(cur, run_id, note="restore")


def _history_entry(params: dict[str, Any], archive: str, manifest: dict[str, Any], run_id: str | None) -> str:
    """SQL that appends the restore to pgrollout.history (where it exists), inside the restore's transaction."""
    from psycopg import sql

    applied = manifest.get("applied_migrations") or []
    note = (f"restored {archive} (backup taken {manifest.get('finished_at')}; "
            f"at {applied[-1] if applied else 'no migration'})")
    insert = sql.SQL("INSERT INTO pgrollout.history (version, name, direction, checksum, duration_ms, run_id, note) "
                     "VALUES ({}, 'restore', 'restore', {}, 0, {}, {})").format(
        sql.Literal(applied[-1] if applied else "-"), sql.Literal(manifest.get("sha256") or ""),
        sql.Literal(run_id), sql.Literal(note))
    with connect(params, autocommit=True) as conn:
        statement = insert.as_string(conn)
    return ("DO $pgrollout$ BEGIN IF to_regclass('pgrollout.history') IS NOT NULL THEN "
            f"{statement.replace('$pgrollout$', '')}; END IF; END $pgrollout$;\n")


def _setting(value: str) -> str:
    if not re.fullmatch(r"[0-9]+\s*(ms|s|min|h)?", value.strip()):
        raise BackupError(f"lock_timeout {value!r} is not a duration such as 30s")
    return value.strip()


@contextlib.contextmanager
def _target_progress(params: dict[str, Any], now: dict[str, Any]) -> Iterator[None]:
    """The progress line of a target restore under async: what it is doing, and once pg_restore's SQL flows,
    how much of it was sent (counted as it is piped), beside the dumped database's size to measure it by."""
    from .applying import SessionWatch
    from .progress import Progress

    watcher = SessionWatch(params)

    def line() -> str:
        of = f" (the dumped database was {int(now['of']) // 1048576} MB)" if now["of"] else ""
        doing = (f"{now['sent'] // 1048576} MB of the archive's SQL sent to {params['login_db']}, in one "
                 f"transaction{of}") if now["sent"] else now["doing"]
        return f"restore: {doing}" + watcher.waiting(now.get("backend"))

    try:
        with Progress(line, float(params.get("progress_seconds") or 10.0)):
            yield
    finally:
        watcher.close()


def _copy_counting(source: Any, target: Any, now: dict[str, Any] | None) -> None:
    while True:
        chunk = source.read(1 << 20)
        if not chunk:
            return
        target.write(chunk)
        if now is not None:
            now["sent"] += len(chunk)


def _pipe(producer: list[str], consumer: list[str], env: dict[str, str], what: str, lock_timeout: str,
          preamble: str, epilogue: str = "", watch: ControllerWatch | None = None,
          now: dict[str, Any] | None = None) -> None:
    """BEGIN; preamble; producer's script; and COMMIT only once the producer exited 0.

    psql --single-transaction would commit whatever arrived when its input
    ends, even if pg_restore died halfway: the transaction is ours instead.
    Without our COMMIT, psql's session ends with the transaction open and the
    server rolls it back. With `watch`, an orphaned restore (its ansible-playbook
    killed) rolls back the same way, like an orphaned migration.
    """
    with subprocess.Popen(producer, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as first, \
            subprocess.Popen(consumer, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) as second:
        errors: dict[str, bytes] = {}
        ready = threading.Event()
        readers = [threading.Thread(target=lambda: errors.__setitem__("first", first.stderr.read())),
                   threading.Thread(target=lambda: errors.__setitem__("second", second.stderr.read())),
                   threading.Thread(target=_watch_for_marker, args=(second.stdout, ready, now))]
        for reader in readers:
            reader.start()
        committed = orphaned = False
        try:
            # the session's pid first: the progress line asks the server what it waits for
            second.stdin.write(b"BEGIN;\nSELECT pg_backend_pid() AS pgrollout_backend \\gset\n\\echo " + _BACKEND
                               + b":pgrollout_backend\n" + preamble.encode())
            head = first.stdout.read(1 << 16)
            # the script's header would lift our lock_timeout
            second.stdin.write(head.replace(b"SET lock_timeout = 0;", f"SET lock_timeout = '{lock_timeout}';".encode()))
            if now is not None:
                now["sent"] += len(head)
            _copy_counting(first.stdout, second.stdin, now)
            if now is not None:
                now["doing"] = "pg_restore's SQL all sent; the target runs the rest, then COMMIT"
            first.wait()
            if first.returncode == 0:
                # psql runs what it was given (lock waits included) before it echoes the marker: only then
                # is the controller asked, so a kill while psql waits still finds the COMMIT unsent
                second.stdin.write(b"\n" + epilogue.encode() + b"\n\\echo " + _READY + b"\n")
                second.stdin.flush()
                while not ready.wait(0.2) and second.poll() is None:
                    pass
                orphaned = watch is not None and not watch.alive()
                if ready.is_set() and not orphaned:
                    second.stdin.write(b"COMMIT;\n")
                    committed = True
        except BrokenPipeError:  # psql stopped at the first error
            first.kill()
        finally:
            with contextlib.suppress(BrokenPipeError):
                second.stdin.close()
        first.wait()
        second.wait()
        for reader in readers:
            reader.join()
    if orphaned:
        raise BackupError(f"{what} was rolled back, the target is unchanged: the ansible-playbook that ran it "
                          "ended before the commit (an orphaned restore never commits)")
    if first.returncode != 0 or second.returncode != 0 or not committed:
        message = (errors.get("second") or errors.get("first") or b"").decode(errors="replace").strip()
        who = "pg_restore" if first.returncode != 0 else "psql"
        raise BackupError(f"{what} failed ({who} exit {first.returncode if who == 'pg_restore' else second.returncode})"
                          f" and was rolled back, the target is unchanged: {message or 'no message'}")


_READY = b"pgrollout: restore ready to commit"
_BACKEND = b"pgrollout: restore session "


def _watch_for_marker(stream: Any, ready: threading.Event, now: dict[str, Any] | None = None) -> None:
    """Read psql's output (it must not fill its pipe), keep the session's pid (said first) in `now`, and set
    `ready` at the marker line."""
    for line in stream:
        said = line.rstrip(b"\n")
        if said == _READY:
            ready.set()
        elif said.startswith(_BACKEND) and now is not None:
            now["backend"] = int(said.removeprefix(_BACKEND))


def _rows_now_and_written(cur: Any, tables: list[tuple[str, str]], since_xid: str | None,
                          own_xids: list[str] = ()) -> dict[str, tuple]:
    """Per table: rows now, and committed row versions written (inserted or updated) since `since_xid`.

    A row version whose xmin is at or after the backup snapshot's xmin did not exist in the backup
    (or was written just before it: counted, on the safe side). The statistics counters cannot tell:
    they count rolled-back writes too, and every behaviour check writes and rolls back.
    """
    from psycopg import sql

    result = {}
    ours = sql.Literal([str(int(x) % 2**32) for x in own_xids])
    for schema, table in tables:
        since = sql.Literal(str(int(since_xid) % 2**32)) if since_xid else None
        written = sql.SQL("count(*) FILTER (WHERE age(xmin) <= age({}::text::xid))").format(since) \
            if since else sql.SQL("NULL")
        # written by a transaction other than this run's own migrations (own_xids)
        foreign = sql.SQL("count(*) FILTER (WHERE age(xmin) <= age({}::text::xid) AND NOT xmin::text = ANY({}))"
                          ).format(since, ours) if since else sql.SQL("NULL")
        cur.execute(sql.SQL("SELECT count(*), {}, {} FROM {}.{}").format(
            written, foreign, sql.Identifier(schema), sql.Identifier(table)))
        result[f"{schema}.{table}"] = cur.fetchone()
    return result


def discard_report(params: dict[str, Any], manifest: dict[str, Any], drop_first: list[str],
                   own_xids: list[str] = ()) -> dict[str, Any]:
    """What restoring this archive would throw away: writes, rows, objects and migrations since the backup.

    `own_xids`: this run's own migration transactions; rows they wrote are not others' writes
    (`others_wrote_since`). Deletes leave no row version behind: only the row counts show them."""
    from .backup import _TABLES_SQL, ledger_versions, write_counters

    scope = manifest.get("scope") or {}
    schemas = scope.get("schemas") or []
    with connect(params) as conn, conn.cursor() as cur:
        cur.execute(_TABLES_SQL, {"schemas": schemas, "tables": scope.get("tables") or []})
        listed = [(s, t) for s, t, _unused in cur.fetchall() if s not in TOOL_SCHEMAS]
        now = _rows_now_and_written(cur, listed, manifest.get("snapshot_xmin"), own_xids)
        writes, ledger = write_counters(cur, schemas), ledger_versions(cur)
        conn.rollback()
    at_backup = manifest.get("row_counts") or {}
    before_writes = manifest.get("write_counters") or {}
    tables = {}
    for table in sorted(set(now) | {t for t in at_backup if t.split(".", 1)[0] not in TOOL_SCHEMAS}):
        rows_now, written, foreign = now.get(table, (0, 0, 0))
        # a table created since the backup held no rows then; one dropped since holds none now
        entry: dict[str, Any] = {"rows_at_backup": at_backup.get(table, 0), "rows_now": rows_now,
                                 "rows_written_since": written, "rows_written_by_others": foreign}
        if table in writes and manifest.get("write_counters") is not None:
            old = before_writes.get(table, {"inserted": 0, "updated": 0, "deleted": 0})
            delta = {k: writes[table][k] - old[k] for k in ("inserted", "updated", "deleted")}
            entry["counters"] = delta if min(delta.values()) >= 0 else "reset since the backup"
        if entry["rows_at_backup"] != rows_now or written:
            tables[table] = entry
    later = sorted(set(ledger) - set(manifest.get("applied_migrations") or []),
                   key=lambda v: int(v) if v.isdigit() else 0)
    return {"tables": tables, "objects_created_since": drop_first, "migrations_applied_since": later,
            "writes_since_backup": bool(tables), "backup_taken_at": manifest.get("finished_at"),
            # rows others wrote since (None: the backup has no snapshot xmin to tell)
            "others_wrote_since": (any(e["rows_written_by_others"] for e in tables.values())
                                   if manifest.get("snapshot_xmin") else None),
            "exact": manifest.get("snapshot_xmin") is not None}


def describe_report(report: dict[str, Any]) -> str:
    lines = []
    for table, entry in report["tables"].items():
        counters = entry.get("counters")
        detail = (f"; statistics since: {counters['inserted']} inserted, {counters['updated']} updated, "
                  f"{counters['deleted']} deleted, rolled-back writes included" if isinstance(counters, dict) else "")
        written = entry.get("rows_written_since")
        lines.append(f"{table}: rows {entry['rows_at_backup']} at backup -> {entry['rows_now']} now"
                     + (f", {written} row(s) inserted or updated since" if written else "") + detail)
    if report["objects_created_since"]:
        lines.append(f"objects created since (dropped by the restore): {', '.join(report['objects_created_since'])}")
    if report["migrations_applied_since"]:
        lines.append(f"migrations applied since: {', '.join(report['migrations_applied_since'])}")
    return "; ".join(lines) or "nothing written since the backup"


def _restore_progress(params: dict[str, Any], scratch_db: str, manifest: dict[str, Any]) -> Any:
    """Under an async task: every few seconds how big the scratch database has grown, of the dumped one's size."""
    from .progress import Progress

    total = manifest.get("database_size_bytes") or 0

    def line() -> str:
        with connect(params) as conn:
            size = conn.execute("SELECT pg_database_size(%s)", [scratch_db]).fetchone()[0]
        of = f" of the dumped database's {total // 1048576} MB" if total else ""
        return f"restore rehearsal: the scratch database holds {size // 1048576} MB{of}"

    return Progress(line, float(params.get("progress_seconds") or 10.0))


def restore_scratch(params: dict[str, Any], archive: str, scratch_db: str, *, jobs: int = 1,
                    tables: list[str] | None = None, bindir: str | None = None) -> dict[str, Any]:
    """Create `scratch_db` on the target's server and restore the archive into it, in parallel."""
    manifest = trusted_manifest(archive)
    import tempfile

    create_database(params, scratch_db)
    scratch = dict(params, login_db=scratch_db)
    entries, skipped = others_default_privileges(params, toc(archive, bindir))
    cmd = [tool_path("pg_restore", bindir), "--no-password", "--exit-on-error", "--no-owner",
           f"--dbname={scratch_db}", *_selectors([], tables or [])]
    if jobs > 1 and manifest.get("format") in ("custom", "directory"):
        cmd.append(f"--jobs={jobs}")
    with tempfile.NamedTemporaryFile("w", prefix="pgrollout-toc-", suffix=".list") as listing, \
            client_environment(scratch) as env, _restore_progress(params, scratch_db, manifest):
        listing.write("\n".join(entries) + "\n")
        listing.flush()
        proc = subprocess.run([*cmd, "--use-list", listing.name, archive], env=env, capture_output=True, text=True,
                              check=False)
    if proc.returncode != 0:
        raise BackupError(f"restore of {archive} into {scratch_db} failed: {proc.stderr.strip()}")
    return {"manifest": manifest, "database": scratch_db, "skipped_default_privileges": skipped}


def others_default_privileges(params: dict[str, Any], entries: list[str]) -> tuple[list[str], list[str]]:
    """The TOC without default privileges of roles the connected role is not a member of, and those left out.

    ALTER DEFAULT PRIVILEGES FOR ROLE r needs membership in r: a migration role that is not a
    superuser (Supabase's postgres) cannot restore supabase_admin's. They change no row, and a
    scratch restore only compares rows; for a superuser nothing is left out."""
    with connect(params, autocommit=True) as conn:
        superuser, members = conn.execute(
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
            "array(SELECT rolname FROM pg_roles WHERE pg_has_role(current_user, oid, 'MEMBER'))").fetchone()
    if superuser:
        return entries, []
    kept, skipped = [], []
    for line in entries:
        fields = toc_fields(line)
        if fields and fields[0] == "DEFAULT ACL" and line.rsplit(" ", 1)[-1] not in members:
            skipped.append(line.split(" ", 3)[-1])
            continue
        kept.append(line)
    return kept, skipped


def rehearsal_said(result: dict[str, Any]) -> str:
    """A rehearsal's one line, as pg_restore (mode rehearse) and pg_backup (rehearse) report it."""
    return (f"rehearsal: {result['tables']} tables and {result['rows']} rows restored as dumped; "
            "scratch database dropped")


def rehearse(params: dict[str, Any], archive: str, *, jobs: int = 1, bindir: str | None = None) -> dict[str, Any]:
    """Restore into a scratch database, compare tables and row counts with the manifest, drop it."""
    scratch_db = f"pgrollout_rehearsal_{uuid.uuid4().hex[:10]}"
    try:
        manifest = restore_scratch(params, archive, scratch_db, jobs=jobs, bindir=bindir)["manifest"]
        with connect(dict(params, login_db=scratch_db)) as conn, conn.cursor() as cur:
            counts, _unused = table_rows(cur, manifest["scope"]["schemas"], manifest["scope"]["tables"])
    finally:
        drop_database(params, scratch_db)
    expected = manifest["row_counts"]
    differ = {t: {"archive": expected.get(t), "restored": counts.get(t)}
              for t in sorted(set(expected) | set(counts)) if expected.get(t) != counts.get(t)}
    result = {"scratch_database": scratch_db, "sha256": manifest["sha256"], "tables": len(counts),
              "rows": sum(counts.values()), "differences": differ}
    if differ:
        raise BackupError(f"restore rehearsal of {archive}: {len(differ)} table(s) differ from the dump: "
                          + ", ".join(f"{t} {d['archive']} -> {d['restored']}" for t, d in list(differ.items())[:10]))
    return result
