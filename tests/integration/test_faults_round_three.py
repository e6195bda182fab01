"""Faults, round three (issue 19): a failure that leaves part of a file behind says so, and transaction
control inside a transactional migration is refused before it can commit half a file."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import REPO, execute, query, set_playbook
from migsets import MigrationSet
from sessions import Blocker

WRAPPER = REPO / "scripts" / "pgrollout-run"


def wrapped(book, *args: str) -> tuple[int, str, dict, subprocess.CompletedProcess]:
    proc = subprocess.run([sys.executable, str(WRAPPER), "rollout.yml", "-i", str(book.inventory), *args],
                          cwd=REPO, env=book.environment(), capture_output=True, text=True, timeout=600)
    newest = max(book.evidence_dir.glob("*.outcome"), key=lambda p: p.stat().st_mtime_ns)
    line = newest.read_text().strip()
    return proc.returncode, line, json.loads(Path(line.rsplit("evidence=", 1)[1]).read_text()), proc


def test_a_begin_commit_inside_a_migration_is_refused_before_anything_changes(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "first", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n")
    mset.add("002", "nested",
             'BEGIN;\nCREATE TABLE "Half A" (id int);\nCOMMIT;\nCREATE TABLE half_b (id nosuchtype);\n',
             'DROP TABLE "Half A";\n')
    book = set_playbook(empty_db, mset, tmp_path / "work")
    for args in (("--check",), ()):
        proc = book.run("rollout.yml", *args)
        assert proc.returncode != 0
        said = " ".join(proc.stdout.split())
        assert "002_nested.sql:1: statement 1 is BEGIN" in said and "allow-transaction-control" in said, said[-3000:]
        assert "Nothing was changed" in said
        assert book.evidence()[-1]["outcome"] == "refused"
    assert query(empty_db, "SELECT to_regclass('one'), to_regclass('\"Half A\"')") == [(None, None)]


def test_a_statement_that_carries_its_own_session_setting_is_refused_and_set_local_is_not(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "settings", "SET LOCAL lock_timeout = '1s';\nSET lock_timeout = 0;\nCREATE TABLE s (id int);\n",
             "DROP TABLE s;\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    proc = book.run("rollout.yml", "--check")
    assert proc.returncode != 0
    assert "001_settings.sql:2: statement 2 is SET lock_timeout at session level" in " ".join(proc.stdout.split())


def test_an_acknowledged_commit_that_a_later_error_follows_is_reported_partially_applied(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "vendor", 'CREATE TABLE "Kept Table" (id int);\n'
             "-- pgrollout: allow-transaction-control the vendor's script commits on its own\n"
             'COMMIT;\nCREATE TABLE lost (id nosuchtype);\n',
             'DROP TABLE "Kept Table";\n')
    book = set_playbook(empty_db, mset, tmp_path / "work")
    code, line, record, proc = wrapped(book)
    assert (code, record["outcome"]) == (13, "failed_partially_applied"), proc.stdout[-3000:]
    said = " ".join(proc.stdout.split())
    assert "Nothing was changed" not in said and "PARTIALLY APPLIED" in said
    assert 'table public."Kept Table"' in record["partially_applied"]["msg"] or \
        "Kept Table" in record["partially_applied"]["msg"]
    assert query(empty_db, "SELECT to_regclass('\"Kept Table\"')::text") == [('"Kept Table"',)]  # the claim holds


def test_a_non_transactional_file_failing_at_statement_3_is_partially_applied_and_resumes(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "base", "CREATE TABLE items (id int PRIMARY KEY, code text);\n", "DROP TABLE items;\n")
    mset.add("002", "online", "-- pgrollout: no-transaction\n"
                    "CREATE TABLE \"Side Table\" (id int);\n"
                    "INSERT INTO items VALUES (1, 'a'), (2, 'a');\n"
                    "CREATE UNIQUE INDEX CONCURRENTLY items_code ON items (code);\n",
                    "-- pgrollout: no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_code;\n"
                    "DELETE FROM items;\nDROP TABLE \"Side Table\";\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    code, line, record, proc = wrapped(book)
    assert (code, line.split()[0], record["outcome"]) == (13, "failed_partially_applied", "failed_partially_applied")
    left = record["partially_applied"]
    assert left["statements_applied"] == [1, 2] and left["statements"] == 3
    said = " ".join(proc.stdout.split())
    assert "Nothing was changed" not in said and "PARTIALLY APPLIED" in said and "resumes" in said
    junit = ET.parse(next(book.evidence_dir.glob(f"{record['run_id']}.junit.xml")))
    assert any(case.get("name") == "002_online.sql left nothing" and case.find("failure") is not None
               for case in junit.getroot().iter("testcase"))
    assert "Applied before it and kept, not rolled back under it: 001" in said
    # what it claims is what the database holds: 001 kept, the side table and the rows of statements 1-2
    assert query(empty_db, "SELECT count(*) FROM items") == [(2,)]
    assert query(empty_db, "SELECT to_regclass('\"Side Table\"') IS NOT NULL") == [(True,)]
    assert query(empty_db, "SELECT version FROM supabase_migrations.schema_migrations") == [("001",)]
    # the cause fixed in the data: the next run resumes at statement 3
    execute(empty_db, "UPDATE items SET code = 'b' WHERE id = 2")
    code, line, record, proc = wrapped(book)
    assert (code, record["outcome"]) == (0, "succeeded"), proc.stdout[-3000:]
    assert query(empty_db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_code'::regclass") == [(True,)]


def restore_args(record: dict, **extra) -> list[str]:
    return ["-e", json.dumps({"pgrollout_restore_archive": record["backup"]["path"],
                              "pgrollout_confirm_restore": record["backup"]["sha256"][:12], **extra})]


def test_a_restore_keeps_pgrollouts_history_and_lease_events_and_the_next_run_goes_ahead(playbook, db):
    first = playbook.run()
    assert first.returncode == 0, first.stdout[-3000:]
    record = playbook.evidence()[-1]
    events_before = query(db, "SELECT count(*) FROM pgrollout.lease_events")[0][0]
    proc = playbook.run("rollback.yml", *restore_args(record))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]  # the target is what the backup held
    assert query(db, "SELECT max(version) FROM supabase_migrations.schema_migrations") == [("002",)]
    history = query(db, "SELECT version, direction, run_id FROM pgrollout.history ORDER BY id")
    assert ("003", "up", record["run_id"]) in history  # the apply since the backup is still recorded
    restored = [h for h in history if h[1] == "restore"]
    assert restored and restored[-1][2] == playbook.evidence()[-1]["run_id"]
    assert query(db, "SELECT count(*) FROM pgrollout.lease_events")[0][0] >= events_before + 1
    assert query(db, "SELECT count(*) FROM pgrollout.lease") == [(0,)]  # released at the end, not brought back
    again = playbook.run()  # a restore followed by another run
    assert again.returncode == 0, again.stdout[-3000:]
    assert playbook.evidence()[-1]["outcome"] == "succeeded"
    assert query(db, "SELECT to_regclass('public.bots')::text") == [("bots",)]


def test_the_automatic_restore_keeps_another_sessions_write_and_fails_saying_so(playbook, db, tmp_path):
    from test_environments import inject_verification_failure
    from test_rollback_playbook import broken_rollback_script

    inject_verification_failure(playbook, tmp_path)
    broken_rollback_script(playbook, tmp_path)  # dev: pgrollout_auto_restore is true

    def another_session_writes() -> None:
        execute(db, "INSERT INTO kb_patterns (name, pattern_type) VALUES ('written by another session', 'x')")

    proc = playbook.run("rollout.yml", when_printed=("Apply the run's files", another_session_writes))
    assert proc.returncode != 0
    said = " ".join(proc.stdout.split())
    assert "an automatic restore never discards their writes" in said, said[-4000:]
    assert "-e pgrollout_restore_discard_writes=true" in said and "pgrollout_confirm_restore=" in said
    assert "the database is at its state before this run" not in said
    assert query(db, "SELECT count(*) FROM kb_patterns WHERE name = 'written by another session'") == [(1,)]
    record = playbook.evidence()[-1]
    assert record["outcome"] == "failed_not_rolled_back", record["outcome"]
    assert record["restore"]["discard_report"]["others_wrote_since"] is True


def _terminate_when_running(params: dict, text: str) -> None:
    """End the backend running `text` once it runs (a server restart, as the session sees it)."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = query(params, "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                     (f"%{text}%",))
        if pids:
            execute(params, f"SELECT pg_terminate_backend({pids[0][0]})")
            return
        time.sleep(0.05)
    raise AssertionError(f"no backend ran {text!r} within 60 s")


def test_a_lost_connection_is_named_and_a_non_transactional_file_cut_off_is_partially_applied(empty_db, tmp_path):
    import threading

    from pgrollout import connection, migrate, plan

    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "slow", "CREATE TABLE lost_with_it (id int);\nSELECT pg_sleep(30) AS cut_off_here_1;\n")
    mset.add("002", "online", "-- pgrollout: no-transaction\nCREATE TABLE \"Stays\" (id int);\n"
             "SELECT pg_sleep(30) AS cut_off_here_2;\n")
    layout = plan.Layout(str(mset.migrations), str(mset.rollbacks), str(mset.verification))
    for number, path in enumerate([m.up for m in layout.migrations()], start=1):
        killer = threading.Thread(target=_terminate_when_running, args=(empty_db, f"cut_off_here_{number}"))
        killer.start()
        with connection.connect(empty_db) as conn:
            try:
                migrate.apply_plan(conn, plan.build(layout, [path]), migrate.Options())
            except migrate.MigrationError as exc:
                failed = exc
            else:
                raise AssertionError("the cut-off file did not fail")
        killer.join()
        assert "lost the connection to the server while statement 2 ran" in str(failed)
        assert "?????" not in str(failed) and failed.details["connection_lost"]
        if number == 1:  # a transactional file: its transaction died with the session
            assert "partial" not in failed.details
            assert query(empty_db, "SELECT to_regclass('lost_with_it')") == [(None,)]
        else:  # statement 1 stays; what is left could not be checked on the lost connection: never "nothing"
            left = failed.details["partial"]
            assert left["checked"] is False and "could not be checked" in str(failed), left
            assert "treat it as partially applied" in left["msg"]
            assert query(empty_db, "SELECT to_regclass('\"Stays\"') IS NOT NULL") == [(True,)]


def test_lint_sizes_are_counted_on_small_tables_and_marked_estimated_on_big_ones(empty_db):
    from pgrollout import connection, lint

    execute(empty_db, "CREATE TABLE two_rows (id int); INSERT INTO two_rows VALUES (1), (2)")  # never analyzed
    with connection.connect(empty_db) as conn, conn.cursor() as cur:
        sizes = lint.table_sizes(cur, [("public", "two_rows")])
    entry = sizes["public.two_rows"]
    assert entry["rows"] == 2 and entry["counted"] is True
    assert lint.human(entry["rows"], entry["bytes"], entry["counted"]).startswith("2 rows, ")
    assert lint.human(1_000_500, 60 * 2**20, counted=False) == "1.0 M rows (estimated), 60 MB"


def test_a_cr_inside_a_string_literal_is_kept_and_the_checksum_ignores_line_endings(empty_db, tmp_path):
    from pgrollout import connection, migrate, sqlfile

    crlf, lf = tmp_path / "001_crlf.sql", tmp_path / "lf" / "001_crlf.sql"
    crlf.write_bytes(b"CREATE TABLE notes (body text);\r\nINSERT INTO notes VALUES ('line one\r\nline two');\r\n")
    lf.parent.mkdir()
    lf.write_bytes(crlf.read_bytes().replace(b"\r\n", b"\n"))
    assert sqlfile.load(str(crlf)).checksum == sqlfile.load(str(lf)).checksum
    with connection.connect(empty_db) as conn:
        migrate.apply(conn, sqlfile.load(str(crlf)), migrate.Options())
    assert query(empty_db, "SELECT body FROM notes") == [("line one\r\nline two",)]


def test_bad_settings_are_refused_before_the_lease_naming_the_variable(playbook, db):
    for args, said in ((("-e", "pgrollout_lock_timeout=0"), "pgrollout_lock_timeout '0' means no limit"),
                       (("-e", json.dumps({"pgrollout_statement_timeout": "5 minutes"})),
                        "pgrollout_statement_timeout '5 minutes'"),
                       (("-e", "pgrollout_lease_ttl=0"), "pgrollout_lease_ttl '0' must be at least 1"),
                       (("-e", "pgrollout_db_port=fivefourthreetwo"), "argument 'pgrollout_db_port' is of type str"),
                       (("-e", "pgrollout_migration_layout=flyway"), "pgrollout_migration_layout"),
                       (("-e", "pgrollout_backup=maybe"), "pgrollout_backup")):
        proc = playbook.run("rollout.yml", *args)
        assert proc.returncode != 0
        assert said in " ".join(proc.stdout.split()), (args, proc.stdout[-2000:])
        assert not playbook.task_results(proc, "Take the run lease"), args  # refused before the lease
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]
    assert not (playbook.workdir / "backups").exists()


def test_a_relative_archive_path_is_relative_to_the_project_as_the_readme_writes_it(playbook, db, tmp_path):
    import os
    import shutil as sh

    first = playbook.run()
    assert first.returncode == 0, first.stdout[-3000:]
    record = playbook.evidence()[-1]
    archive = Path(record["backup"]["path"])
    relative_dir = REPO / ".local" / f"test-archives-{os.getpid()}-{archive.stat().st_ino}"
    relative_dir.mkdir(parents=True)
    try:
        copied = relative_dir / archive.name
        (sh.copytree if archive.is_dir() else sh.copy2)(archive, copied)
        sh.copy2(str(archive) + ".manifest.json", str(copied) + ".manifest.json")
        args = {"pgrollout_restore_archive": str(copied.relative_to(REPO)),
                "pgrollout_confirm_restore": record["backup"]["sha256"][:12]}
        proc = playbook.run("rollback.yml", "-e", json.dumps(args))
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]
    finally:
        sh.rmtree(relative_dir, ignore_errors=True)


def test_outside_dev_a_target_without_a_database_host_is_refused(cluster, tmp_path):
    import uuid

    from conftest import Playbook
    from pgrollout import connection

    name = "t_" + uuid.uuid4().hex[:12]
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE baseline_template")
    book = Playbook(cluster.params(name), tmp_path, group="staging")
    del book.host["pgrollout_db_host"]
    book.set(pgrollout_promotion_environments=[])
    proc = book.run("rollout.yml", "--check")
    assert proc.returncode != 0
    assert "No database host for test-target in staging: set pgrollout_db_host" in " ".join(proc.stdout.split())
    assert book.evidence()[-1]["outcome"] == "refused"


def test_evidence_that_cannot_be_written_is_found_before_anything_changes(playbook, db, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the evidence folder should be\n")
    playbook.set(pgrollout_evidence_root=str(blocked))
    proc = playbook.run()
    assert proc.returncode != 0
    assert "cannot write evidence into" in proc.stdout and "Nothing was changed" in proc.stdout
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]
    assert not (playbook.workdir / "backups").exists()


def test_evidence_that_fails_after_the_target_changed_still_says_so_on_stderr(playbook, db, tmp_path):
    import shutil as sh

    folder = playbook.evidence_dir

    def evidence_folder_goes_away() -> None:
        sh.rmtree(folder.parent)
        folder.parent.write_text("the evidence root replaced by a file mid-run\n")

    proc = playbook.run("rollout.yml", when_printed=("Apply the run's files", evidence_folder_goes_away))
    assert proc.returncode != 0
    # the outcome line reaches stderr (a pipeline's log) and the console's failure message
    assert "THE TARGET CHANGED (003) BUT ITS EVIDENCE WAS NOT WRITTEN" in proc.stderr
    assert "rollout dev/test-target" in proc.stderr and "changed=003" in proc.stderr
    assert "THE TARGET CHANGED (003)" in " ".join(proc.stdout.split())
    assert query(db, "SELECT to_regclass('public.bots')::text") == [("bots",)]


def test_a_read_replica_is_refused_by_every_playbook_that_writes(cluster, db, tmp_path):
    import os
    import pwd
    import shutil as sh
    import tempfile

    import localpg
    from conftest import Playbook

    base = Path(tempfile.mkdtemp(prefix="pgrollout-standby-"))
    standby = localpg.LocalCluster(base, localpg.free_port(), fast=True)
    passfile = base / "pgpass"
    passfile.write_text(f"127.0.0.1:{cluster.port}:*:postgres:{cluster.password}\n")
    sh.copy2(cluster.password_file, standby.password_file)
    if standby.drop_privileges:
        user = pwd.getpwnam(localpg.OS_USER)
        for path in (base, passfile, standby.password_file):
            os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(passfile, 0o600)
    try:  # a streaming standby of the test cluster: a real server in recovery
        command = [str(standby.bindir / "pg_basebackup"), "-D", str(standby.data), "-R", "--checkpoint=fast",
                   "-X", "stream", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
        subprocess.run(standby._cmd(*command), check=True, capture_output=True,
                       env={**os.environ, "PGPASSFILE": str(passfile)})
        standby.start()
        replica = {**db, "login_port": standby.port}
        assert query(replica, "SELECT pg_is_in_recovery()") == [(True,)]
        book = Playbook(replica, tmp_path)
        rollout = book.run()
        assert rollout.returncode != 0 and "is a read replica (in recovery)" in " ".join(rollout.stdout.split())
        baseline = book.run("baseline.yml", "-e", "pgrollout_baseline_version=002",
                            "-e", "pgrollout_baseline_reason=testing a replica")
        said = " ".join(baseline.stdout.split())
        assert baseline.returncode != 0 and "is a read replica (in recovery)" in said and "primary" in said
    finally:
        standby.destroy()


@pytest.mark.parametrize("detached", [False, True], ids=["task", "async-job"])
def test_an_orphaned_restore_rolls_back_like_an_orphaned_migration(playbook, db, detached):
    """SIGKILL ansible-playbook while pg_restore's psql waits for a lock: the restore must not commit - also as
    an async job (a big database: async_wrapper detaches the module; it watches the controller's pid)."""
    first = playbook.run()
    assert first.returncode == 0, first.stdout[-3000:]
    record = playbook.evidence()[-1]
    progress = ["-e", "pgrollout_progress_min_bytes=0", "-e", "pgrollout_progress_seconds=1"] if detached else []
    with Blocker(db, "public.kb_patterns") as blocker:
        proc = playbook.start("rollback.yml", *restore_args(record), "-e", "pgrollout_restore_lock_timeout=120s",
                              *progress)
        blocker.kill_when_queued(proc)  # the condition: the restore's transaction queued behind the blocker
    # the orphan's psql gets its lock, runs the rest, and ends without our COMMIT
    while query(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()") != [(0,)]:
        pass
    assert query(db, "SELECT to_regclass('public.bots')::text") == [("bots",)]  # 003 is still there
    assert query(db, "SELECT max(version) FROM supabase_migrations.schema_migrations") == [("003",)]
    assert query(db, "SELECT count(*) FROM pgrollout.history WHERE direction = 'restore'") == [(0,)]


def test_a_migration_over_the_size_limit_is_refused_before_it_is_parsed(empty_db, tmp_path):
    """A bulk-data file over pgrollout_max_migration_mb is refused in preflight with the reason and the way out;
    under the limit the same file runs, its statements' lines counted right (bench/big_file_preflight.py times it)."""
    rows = "".join(f"INSERT INTO bulk (id, note) VALUES ({i}, 'row {i}');\n" for i in range(30000))
    mset = MigrationSet(tmp_path / "set")
    path = mset.add("001", "bulk", "CREATE TABLE bulk (id int PRIMARY KEY, note text);\n" + rows, "DROP TABLE bulk;\n")
    size = f"{path.stat().st_size / 1024 / 1024:.1f} MB"
    book = set_playbook(empty_db, mset, tmp_path / "work")
    for args in (("--check",), ()):
        proc = book.run("rollout.yml", "-e", "pgrollout_max_migration_mb=1", *args)
        said = " ".join(proc.stdout.split())
        assert proc.returncode != 0 and f"001_bulk.sql is {size}, over pgrollout_max_migration_mb (1)" in said, \
            said[-3000:]
        assert "COPY" in said and "Nothing was changed" in said and book.evidence()[-1]["outcome"] == "refused"
    assert query(empty_db, "SELECT to_regclass('bulk')") == [(None,)]
    proc = book.run("rollout.yml", "-e", "pgrollout_max_migration_mb=0", "-e", "pgrollout_backup=false")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert query(empty_db, "SELECT count(*), max(id) FROM bulk") == [(30000, 29999)]
    from pgrollout import sqlfile

    statements = sqlfile.load(str(path), "001", "bulk").statements
    assert [s.line for s in statements[:3]] == [1, 2, 3] and statements[-1].line == 30001
