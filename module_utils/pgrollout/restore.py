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
import shutil
import subprocess
import tempfile
import threading
import uuid
from typing import Any

from .backup import BackupError, table_rows, tool_path, trusted_manifest, verify_archive
from .connection import client_environment, connect
from .scratch import create_database, drop_database

# TOC entry types that name an object a later migration may add, as pg_restore --list writes them.
_TOC_RE = re.compile(r"^\d+; \d+ \d+ (MATERIALIZED VIEW|FOREIGN TABLE|TABLE(?! DATA )|VIEW|"
                     r"SEQUENCE(?! OWNED BY | SET )|FUNCTION|PROCEDURE|TYPE|DOMAIN|SCHEMA) (\S+) (.+) \S+$")
_SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"

# Objects in the database now, keyed like the archive's TOC: (kind, schema, name).
_CURRENT_SQL = f"""
SELECT 'SCHEMA', '-', n.nspname FROM pg_namespace n
WHERE n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'public'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                  AND d.objid = n.oid AND d.deptype = 'e')
UNION ALL
SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
                      WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'SEQUENCE' END,
       n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND NOT c.relispartition
  AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, n.nspname,
       p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p') AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd', 'r') AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
"""


def toc(archive: str, bindir: str | None = None) -> list[str]:
    """The archive's table of contents (pg_restore --list), comments left out."""
    proc = subprocess.run([tool_path("pg_restore", bindir), "--list", archive], capture_output=True, text=True)
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


def created_since(params: dict[str, Any], entries: list[str], schemas: list[str]) -> list[tuple[str, str, str]]:
    """Objects in the target that the archive does not hold: created after the backup."""
    with connect(params, autocommit=True) as conn:
        current = {tuple(row) for row in conn.execute(_CURRENT_SQL).fetchall()}
    new = sorted(o for o in current - archive_objects(entries) if _in_scope(o, schemas))
    new_schemas = {o[2] for o in new if o[0] == "SCHEMA"}
    # what lies inside a new schema goes with it
    return [o for o in new if o[0] == "SCHEMA" or o[1] not in new_schemas]


def _drop_sql(obj: tuple[str, str, str]) -> str:
    kind, schema, name = obj
    if kind == "SCHEMA":
        return f'DROP SCHEMA IF EXISTS "{name}" CASCADE;'
    if kind in ("FUNCTION", "PROCEDURE"):
        fname, args = name.split("(", 1)
        return f'DROP {kind} IF EXISTS "{schema}"."{fname}"({args} CASCADE;'
    return f'DROP {kind} IF EXISTS "{schema}"."{name}" CASCADE;'


def plan(params: dict[str, Any], archive: str, schemas: list[str], tables: list[str],
         bindir: str | None = None, *, into_target: bool = True) -> dict[str, Any]:
    """What a restore would do: what it drops first (into the target), which tables it restores."""
    entries = toc(archive, bindir)
    drops = created_since(params, entries, schemas) if into_target and not tables else []
    restored = [e for e in entries if _entry_in_scope(e, schemas, tables)]
    return {"drop_first": [_drop_sql(o) for o in drops], "entries": len(restored),
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


def _quoted(table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split(".", 1))


def restore_target(params: dict[str, Any], archive: str, *, schemas: list[str] | None = None,
                   tables: list[str] | None = None, lock_timeout: str = "30s",
                   bindir: str | None = None) -> dict[str, Any]:
    """Make the target what the archive holds, in one transaction.

    With `tables`, only their rows: emptied, then reloaded from the archive (schema kept).
    """
    schemas, tables = schemas or [], tables or []
    manifest = verify_archive(archive, params, bindir)
    what = plan(params, archive, schemas, tables, bindir)
    preamble = [f"SET lock_timeout = '{_setting(lock_timeout)}';", "SET client_min_messages = warning;",
                *what["drop_first"]]  # the script sets it again
    if tables:
        preamble.append(f"TRUNCATE {', '.join(_quoted(t) for t in tables)};")
        mode = ["--data-only"]
    else:
        mode = ["--clean", "--if-exists"]
    restore_cmd = [tool_path("pg_restore", bindir), *mode, "--file", "-", *_selectors(schemas, tables), archive]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="pgrollout-restore-") as pre, \
            client_environment(params) as env:
        pre.write("\n".join(preamble) + "\n")
        pre.flush()
        psql = [tool_path("psql", bindir), "--no-psqlrc", "--quiet", "--no-password", "--single-transaction",
                "--set", "ON_ERROR_STOP=1", "--file", pre.name, "--file", "-"]
        _pipe(restore_cmd, psql, env, f"restore of {archive} into {params['login_db']}", _setting(lock_timeout))
    return {"manifest": manifest, **what}


def _setting(value: str) -> str:
    if not re.fullmatch(r"[0-9]+\s*(ms|s|min|h)?", value.strip()):
        raise BackupError(f"lock_timeout {value!r} is not a duration such as 30s")
    return value.strip()


def _pipe(producer: list[str], consumer: list[str], env: dict[str, str], what: str, lock_timeout: str) -> None:
    """producer | consumer, with the script header's `SET lock_timeout = 0` replaced by ours."""
    with subprocess.Popen(producer, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as first, \
            subprocess.Popen(consumer, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE) as second:
        errors: dict[str, bytes] = {}
        readers = [threading.Thread(target=lambda: errors.__setitem__("first", first.stderr.read())),
                   threading.Thread(target=lambda: errors.__setitem__("second", second.stderr.read()))]
        for reader in readers:
            reader.start()
        try:
            head = first.stdout.read(1 << 16)
            second.stdin.write(head.replace(b"SET lock_timeout = 0;", f"SET lock_timeout = '{lock_timeout}';".encode()))
            shutil.copyfileobj(first.stdout, second.stdin, 1 << 20)
        except BrokenPipeError:  # psql stopped at the first error
            first.kill()
        finally:
            with contextlib.suppress(BrokenPipeError):
                second.stdin.close()
        first.wait()
        second.wait()
        for reader in readers:
            reader.join()
    if first.returncode != 0 or second.returncode != 0:
        message = (errors.get("second") or errors.get("first") or b"").decode(errors="replace").strip()
        raise BackupError(f"{what} failed and was rolled back, the target is unchanged: {message}")


def restore_scratch(params: dict[str, Any], archive: str, scratch_db: str, *, jobs: int = 1,
                    tables: list[str] | None = None, bindir: str | None = None) -> dict[str, Any]:
    """Create `scratch_db` on the target's server and restore the archive into it, in parallel."""
    manifest = trusted_manifest(archive)
    create_database(params, scratch_db)
    scratch = dict(params, login_db=scratch_db)
    cmd = [tool_path("pg_restore", bindir), "--no-password", "--exit-on-error", "--no-owner",
           f"--dbname={scratch_db}", *_selectors([], tables or [])]
    if jobs > 1 and manifest.get("format") in ("custom", "directory"):
        cmd.append(f"--jobs={jobs}")
    with client_environment(scratch) as env:
        proc = subprocess.run([*cmd, archive], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError(f"restore of {archive} into {scratch_db} failed: {proc.stderr.strip()}")
    return {"manifest": manifest, "database": scratch_db}


def rehearse(params: dict[str, Any], archive: str, *, jobs: int = 1, bindir: str | None = None) -> dict[str, Any]:
    """Restore into a scratch database, compare tables and row counts with the manifest, drop it."""
    scratch_db = f"pgrollout_rehearsal_{uuid.uuid4().hex[:10]}"
    try:
        manifest = restore_scratch(params, archive, scratch_db, jobs=jobs, bindir=bindir)["manifest"]
        with connect(dict(params, login_db=scratch_db)) as conn, conn.cursor() as cur:
            counts, _ = table_rows(cur, manifest["scope"]["schemas"], manifest["scope"]["tables"])
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

