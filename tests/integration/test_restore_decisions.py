"""Rollback and restore that never lose data on their own, against a real server."""
from __future__ import annotations

import json
import os

import pytest

from conftest import REPO, execute, query
from migsets import MigrationSet
from pgrollout import backup, connection, restore
from pgrollout.connection import client_environment


def rolled_out(playbook) -> dict:
    proc = playbook.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    return playbook.evidence()[-1]


def restore_args(record: dict, **extra: str) -> list[str]:
    args = {"pgrollout_restore_archive": record["backup"]["path"],
            "pgrollout_confirm_restore": record["backup"]["sha256"][:12], **extra}
    return ["-e", json.dumps(args)]


def test_a_restore_needs_the_operators_confirmation_and_says_what_it_discards(playbook, db):
    record = rolled_out(playbook)
    archive = record["backup"]["path"]
    proc = playbook.run("rollback.yml", "-e", f"pgrollout_restore_archive={archive}")
    assert proc.returncode != 0
    assert f"-e pgrollout_confirm_restore={record['backup']['sha256'][:12]}" in proc.stdout
    assert "migrations applied since: 003" in proc.stdout and "TABLE public.bots" in proc.stdout
    assert query(db, "SELECT to_regclass('public.bots')::text") == [("bots",)]
    wrong = playbook.run("rollback.yml", "-e", f"pgrollout_restore_archive={archive}",
                         "-e", "pgrollout_confirm_restore=000000000000")
    assert wrong.returncode != 0 and query(db, "SELECT to_regclass('public.bots')::text") == [("bots",)]


def test_rows_written_after_the_backup_are_reported_and_kept_unless_discarding_them_is_decided(playbook, db):
    record = rolled_out(playbook)
    execute(db, "INSERT INTO kb_patterns (name, pattern_type) VALUES ('written after the backup', 'x')")
    for dry in ((), ("--check",)):
        proc = playbook.run("rollback.yml", *restore_args(record), *dry)
        assert proc.returncode != 0, proc.stdout[-2000:]
        assert "Rows were written since the backup" in proc.stdout, proc.stdout[-3000:]
        assert "public.kb_patterns: rows 3 at backup -> 4 now, 1 row(s) inserted or updated since" in " ".join(
            proc.stdout.split()), proc.stdout[-4000:]
    assert query(db, "SELECT count(*) FROM kb_patterns WHERE name = 'written after the backup'") == [(1,)]
    refused = playbook.evidence()[-1]
    written = refused["restore"]["discard_report"]["tables"]
    assert list(written) == ["public.kb_patterns"] and written["public.kb_patterns"]["rows_written_since"] == 1

    proc = playbook.run("rollback.yml", *restore_args(record, pgrollout_restore_discard_writes=True))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert query(db, "SELECT count(*) FROM kb_patterns WHERE name = 'written after the backup'") == [(0,)]
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]
    done = playbook.evidence()[-1]
    assert done["rollback"]["path_taken"] == "restore"
    report = done["restore"]["discard_report"]
    assert report["migrations_applied_since"] == ["003"] and report["writes_since_backup"]
    assert "pre_restore" in done["backup"]["path"]  # the state before the restore was kept first


EVIL = 'evil" CASCADE; ALTER ROLE appdev SUPERUSER; --'


def test_names_from_the_catalog_never_run_as_sql(db, tmp_path):
    execute(db, "DROP ROLE IF EXISTS appdev; CREATE ROLE appdev LOGIN NOSUPERUSER; "
                "GRANT CREATE ON SCHEMA public TO appdev")
    try:
        manifest = backup.dump(db, str(tmp_path), "before", 15, 0, backup.DumpOptions())
        with connection.connect(db, autocommit=True) as conn:
            conn.execute("SET ROLE appdev")
            from psycopg import sql
            conn.execute(sql.SQL("CREATE TABLE public.{} (id int)").format(sql.Identifier(EVIL)))
            conn.execute('CREATE TABLE public."Mixed Case; and space" (id int)')
            conn.execute('CREATE FUNCTION public."fn ""quoted"""(a_really_long_argument_name_number_one integer, '
                         'a_really_long_argument_name_number_two text, "Third Arg" timestamptz) '
                         'RETURNS int LANGUAGE sql AS $$ SELECT 1 $$')
            conn.execute("RESET ROLE")
        plan = restore.plan(db, manifest["path"], [], [])
        assert f"TABLE public.{EVIL}" in plan["drop_first"]
        assert 'FUNCTION public.fn "quoted"(integer, text, timestamp with time zone)' in plan["drop_first"]
        restore.restore_target(db, manifest["path"])
        assert query(db, "SELECT rolsuper FROM pg_roles WHERE rolname = 'appdev'") == [(False,)]
        assert query(db, "SELECT count(*) FROM pg_class WHERE relname IN (%s, 'Mixed Case; and space')",
                     (EVIL,)) == [(0,)]
        assert query(db, "SELECT count(*) FROM pg_proc WHERE proname = 'fn \"quoted\"'") == [(0,)]
    finally:
        execute(db, "DROP OWNED BY appdev; DROP ROLE IF EXISTS appdev")


def test_a_restore_whose_producer_dies_midstream_commits_nothing(db):
    # what psql --single-transaction did: commit what arrived when pg_restore died
    producer = ["sh", "-c", "printf 'CREATE TABLE public.half_restored (id int);\\n'; kill -9 $$"]
    psql = ["psql", "--no-psqlrc", "--quiet", "--no-password", "--set", "ON_ERROR_STOP=1", "--file", "-"]
    with client_environment(db) as env, pytest.raises(backup.BackupError, match="rolled back, the target is unchanged"):
        restore._pipe(producer, psql, env, "test restore", "5s", "")
    assert query(db, "SELECT to_regclass('public.half_restored')") == [(None,)]


def test_a_schema_scoped_restore_never_reaches_outside_its_schemas(db, tmp_path):
    execute(db, "CREATE SCHEMA app; CREATE TABLE app.base (id int)")
    manifest = backup.dump(db, str(tmp_path), "app", 15, 0, backup.DumpOptions(schemas=["app"]))
    execute(db, "CREATE TABLE app.added_later (id int); "
                "CREATE VIEW public.reads_app AS SELECT * FROM app.added_later")
    with pytest.raises(backup.BackupError, match="would drop objects outside them.*view reads_app"):
        restore.restore_target(db, manifest["path"], schemas=["app"])
    assert query(db, "SELECT to_regclass('public.reads_app')::text, to_regclass('app.added_later')::text") == [
        ("reads_app", "app.added_later")]


def extra_migration(playbook, tmp_path) -> MigrationSet:
    """The repository's migrations plus a 004 (with rollback and specs) in folders of the test's own."""
    mset = MigrationSet(tmp_path / "set")
    for name in os.listdir(REPO / "supabase" / "migrations"):
        (mset.migrations / name).write_text((REPO / "supabase" / "migrations" / name).read_text())
    for name in os.listdir(REPO / "supabase" / "rollbacks"):
        (mset.rollbacks / name).write_text((REPO / "supabase" / "rollbacks" / name).read_text())
    for name in os.listdir(REPO / "verification"):
        (mset.verification / name).write_text((REPO / "verification" / name).read_text())
    check = ("checks:\n  - {name: notes, sql: \"SELECT to_regclass('public.bot_notes')::text\", "
             "expect: {rows: [[%s]]}}\n")
    mset.add("004", "bot_notes", "CREATE TABLE public.bot_notes (id int);\n"
             "ALTER TABLE public.bot_notes ENABLE ROW LEVEL SECURITY;\n", "DROP TABLE public.bot_notes;\n",
             spec=check % "bot_notes", rollback_spec=check % "null")
    playbook.set(**{k: v for k, v in mset.host_vars().items() if k != "pgrollout_migration_layout"})
    return mset


def test_rollback_to_a_version_rolls_back_everything_newer_newest_first(playbook, db, tmp_path):
    extra_migration(playbook, tmp_path)
    rolled_out(playbook)
    refused = playbook.run("rollback.yml", "-e", "pgrollout_rollback_version=003")
    assert refused.returncode != 0 and "migration 003 is not the newest applied: ['004']" in refused.stdout
    assert query(db, "SELECT to_regclass('public.bots')::text") == [("bots",)]
    proc = playbook.run("rollback.yml", "-e", "pgrollout_rollback_to=002")
    assert proc.returncode == 0, proc.stdout[-3000:]
    record = playbook.evidence()[-1]
    assert [(m["version"], m["direction"]) for m in record["migrations"]] == [("004", "down"), ("003", "down")]
    assert query(db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [("001",), ("002",)]
    nothing = playbook.run("rollback.yml", "-e", "pgrollout_rollback_to=002")
    assert nothing.returncode != 0 and "no applied migration is newer than 002" in nothing.stdout


def test_backups_are_named_per_host_and_run_and_retention_keeps_what_a_rollback_needs(db, tmp_path):
    common = backup.DumpOptions(keep=1)
    first = backup.dump(db, str(tmp_path), "pre_003", 15, 0,
                        backup.DumpOptions(keep=1, inventory_host="db-1", run_id="run-a"))
    other = backup.dump(db, str(tmp_path), "pre_003", 15, 0,
                        backup.DumpOptions(keep=1, inventory_host="db-2", run_id="run-a"))
    assert os.path.basename(first["path"]).startswith("db-1__") and "run-a" in first["path"]
    assert first["path"] != other["path"] and os.path.exists(first["path"])  # other host: not retention's
    second = backup.dump(db, str(tmp_path), "pre_004", 15, 0,
                         backup.DumpOptions(keep=1, inventory_host="db-1", run_id="run-b", protect=[first["path"]]))
    assert second["removed"] == [] and os.path.exists(first["path"])  # protected: its rollback may need it
    third = backup.dump(db, str(tmp_path), "pre_005", 15, 0,
                        backup.DumpOptions(keep=1, inventory_host="db-1", run_id="run-c"))
    assert set(third["removed"]) == {first["path"], second["path"]} and os.path.exists(other["path"])
    assert common.keep == 1


def test_connect_params_reach_the_client_programs(db, tmp_path):
    # a primary refuses target_session_attrs=read-only: proof that the client programs got the setting
    import subprocess
    for program in (["pg_dump", "--schema-only"], ["psql", "-c", "SELECT 1"]):
        with client_environment(dict(db, connect_params={"target_session_attrs": "read-only"})) as env:
            proc = subprocess.run(program, env=env, capture_output=True, text=True)
        assert proc.returncode != 0 and "session is not read-only" in proc.stderr
        with client_environment(db) as env:
            assert subprocess.run(program, env=env, capture_output=True).returncode == 0
    with pytest.raises(RuntimeError, match="cannot be passed to pg_dump"), \
            client_environment(dict(db, connect_params={"no_such_thing": "1"})):
        pass
