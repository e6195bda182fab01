"""Progress on a long step (issue 23): a backup that takes a while prints what it has done at every poll of
Ansible's async job - tables dumped of the total, bytes written, and who holds a lock pg_dump waits for."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import psycopg

from conftest import REPO, set_playbook
from migsets import MigrationSet, chain
from sessions import Blocker

PROGRESS = re.compile(r"backup: pg_dump has dumped (\d+) of (\d+) tables, (\d+) bytes written")


def test_a_backup_held_up_by_a_lock_prints_its_progress_and_who_holds_the_lock(empty_db, tmp_path):
    book = set_playbook(empty_db, chain(tmp_path / "set", 2), tmp_path / "work")
    # every database is big enough here, a poll every 2 s (a line at least every 10 s is the promise)
    book.set(pgrollout_progress_min_bytes=0, pgrollout_progress_seconds=2)
    holder = psycopg.connect(**{"host": empty_db["login_host"], "port": empty_db["login_port"],
                                "user": empty_db["login_user"], "password": empty_db["login_password"],
                                "dbname": empty_db["login_db"]})
    holder.execute("CREATE TABLE public.held (id int)")
    holder.commit()
    holder.execute("LOCK TABLE public.held IN ACCESS EXCLUSIVE MODE")  # until the progress is seen
    holder_pid = holder.info.backend_pid
    child = subprocess.Popen(book.command("rollout.yml"), cwd=REPO, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=book.environment(ANSIBLE_STDOUT_CALLBACK="pgrollout"))
    seen: list[str] = []
    assert child.stdout is not None
    try:
        for line in child.stdout:  # the condition: two progress lines naming the lock's holder
            seen.append(line.rstrip())
            held_up = PROGRESS.search(line) and f"waiting for a lock held by pid {holder_pid}" in line
            if held_up and sum(bool(PROGRESS.search(x)) for x in seen) >= 2:
                break
    finally:
        holder.rollback()  # the lock goes: pg_dump goes on
        holder.close()
    rest, _ = child.communicate(timeout=600)
    seen += rest.splitlines()
    text = "\n".join(seen)
    assert child.returncode == 0, text[-3000:]
    progress = [PROGRESS.search(x) for x in seen if PROGRESS.search(x)]
    # said under the step that runs (not Ansible's async_status), with the time it has run
    assert all(re.search(r"\.\.\. backup : Back the database up .*\(\d+s\): backup: pg_dump", x)
               for x in seen if PROGRESS.search(x)), text
    assert len(progress) >= 2, text
    # the total is the tables the dump holds; no more are said to be done than there are
    assert all(int(m.group(1)) <= int(m.group(2)) for m in progress) and int(progress[0].group(2)) >= 1
    (record,) = book.evidence()
    assert record["outcome"] == "succeeded" and len(record["backup"]["sha256"]) == 64
    assert record["backup"]["table_count"] == int(progress[0].group(2))
    manifest = json.loads(Path(record["backup"]["manifest"]).read_text())
    assert "public.held" in manifest["row_counts"]


def test_a_backup_of_a_database_that_takes_a_while_says_its_progress_as_it_goes(empty_db, tmp_path):
    """No lock holds it up: the database is big (above the default pgrollout_progress_min_bytes, 256 MB) and the
    archive compressed hard, so pg_dump takes about 20 s here; the lines say the bytes growing as it writes."""
    book = set_playbook(empty_db, chain(tmp_path / "set", 1), tmp_path / "work")
    book.set(pgrollout_progress_seconds=3, pgrollout_backup_compress=9, pgrollout_backup_rehearse=False)
    with session(empty_db) as setup:
        for name in ("events_a", "events_b"):  # hex text: gzip -9 works hard on it
            setup.execute(f"CREATE TABLE public.{name} AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS a, "
                          "md5((g * 13)::text) AS b FROM generate_series(1, 2000000) g")
        size = setup.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    assert size > 268435456, size  # the default threshold: progress without setting anything
    proc = subprocess.run(book.command("rollout.yml"), cwd=REPO, text=True, capture_output=True, timeout=900,
                          env=book.environment(ANSIBLE_STDOUT_CALLBACK="pgrollout"))
    seen = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout[-3000:]
    progress = [PROGRESS.search(x) for x in seen if PROGRESS.search(x)]
    assert len(progress) >= 2, proc.stdout[-3000:]
    written = [int(m.group(3)) for m in progress]
    assert written == sorted(written) and written[-1] > written[0], written  # it grows, line by line
    (record,) = book.evidence()
    assert record["outcome"] == "succeeded" and record["backup"]["table_count"] == int(progress[-1].group(2))


def test_a_big_file_on_a_small_database_says_its_progress_in_the_preflight_and_while_it_applies(
        empty_db, tmp_path):
    """A 10 MB bulk-data file: its parse and review in the preflight (a controller-side step, not async) and its
    apply (async because the pending files are big, though the database is small) each say lines as they run."""
    mset = MigrationSet(tmp_path / "set")
    statements, k = ['CREATE TABLE public."Bulk Rows" (id bigint PRIMARY KEY, note text);'], 0
    while sum(map(len, statements)) < 10 * 1048576:
        statements.append('INSERT INTO public."Bulk Rows" VALUES '
                          + ",".join(f"({k * 1000 + i}, 'row {i} {'x' * 40}')" for i in range(1000)) + ";")
        k += 1
    mset.add("001", "bulk", "\n".join(statements) + "\n", 'DROP TABLE public."Bulk Rows";\n',
             spec_of('SELECT count(*)::int FROM public."Bulk Rows"', [[k * 1000]]))
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_backup=False, pgrollout_progress_seconds=1, pgrollout_progress_min_file_bytes=1048576)
    proc = subprocess.run(book.command("rollout.yml"), cwd=REPO, text=True, capture_output=True, timeout=900,
                          env=book.environment(ANSIBLE_STDOUT_CALLBACK="pgrollout"))
    seen = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout[-3000:]
    reading = [x for x in seen if re.search(r"\.\.\. preflight : Read the target's state \(\d+s\): preflight: reading "
                                            r".*parsing and reviewing the migration files \(1 in .*, 10\.\d MB\)", x)]
    # most of the apply step is pg_migrate reading the file again (its own parse): said so
    applying = [x for x in seen if re.search(r"\.\.\. migrate : Apply the run's files \(\d+s\): migrate: (reading and "
                                             r"parsing )?001_bulk\.sql", x)]
    assert reading and applying, proc.stdout[-3000:]
    (record,) = book.evidence()
    assert record["outcome"] == "succeeded" and record["changed"] == ["001"]
    with session(empty_db) as check:
        assert check.execute('SELECT count(*) FROM public."Bulk Rows"').fetchone()[0] == k * 1000


def test_a_restore_into_the_target_says_what_it_sent_and_who_holds_it_up(playbook, db, tmp_path):
    """rollback.yml in dev with a broken rollback script restores the run's backup. Under async (a big database;
    here every database is big enough) its polls say the archive's SQL sent so far and, while a session holds a
    lock the restore needs, that session; once it lets go, the target ends as it was before the rollback run."""
    with session(db) as setup:
        setup.execute('CREATE TABLE public."Archive Rows" AS SELECT g AS id, md5(g::text) AS a '
                      "FROM generate_series(1, 100000) g")
    proc = playbook.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    rollbacks = tmp_path / "rollbacks"
    shutil.copytree(REPO / "supabase" / "rollbacks", rollbacks)
    script = rollbacks / "003_bot_registration_sharing_rollback.sql"
    script.write_text(script.read_text() + "\nSELECT 1 / 0;\n")
    playbook.set(pgrollout_rollbacks_dir=str(rollbacks), pgrollout_progress_min_bytes=0,
                 pgrollout_progress_seconds=1, pgrollout_backup_rehearse=False, pgrollout_restore_lock_timeout="120s")
    sending = re.compile(r"\.\.\. restore : .*\(\d+s\): restore: (\d+) MB of the archive's SQL sent to \S+, in one "
                         r"transaction \(the dumped database was \d+ MB\)")
    with Blocker(db, 'public."Archive Rows"') as blocker:  # the restore's DROP TABLE waits for it
        held_up = re.compile(rf"{sending.pattern}; waiting for a lock held by pid {blocker.pid} \(test-blocker, "
                             r"idle in transaction, in its transaction \d+ s: LOCK TABLE")
        console = playbook.environment(ANSIBLE_STDOUT_CALLBACK="pgrollout")
        child = subprocess.Popen(playbook.command("rollback.yml"), cwd=REPO, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, env=console)
        seen: list[str] = []
        assert child.stdout is not None
        for line in child.stdout:  # the condition: two polls said who holds the restore up
            seen.append(line.rstrip())
            if sum(bool(held_up.search(x)) for x in seen) >= 2:
                break
    rest, _ = child.communicate(timeout=600)
    seen += rest.splitlines()
    text = "\n".join(seen)
    assert child.returncode != 0 and "pgrollout_auto_restore restored this run's backup" in text, text[-3000:]
    sent = [int(m.group(1)) for m in map(sending.search, seen) if m]
    assert sum(bool(held_up.search(x)) for x in seen) >= 2 and sent == sorted(sent), text[-3000:]
    with session(db) as check:
        assert check.execute('SELECT count(*) FROM public."Archive Rows"').fetchone()[0] == 100000
        assert check.execute("SELECT to_regclass('public.bots')::text").fetchone()[0] == "bots"  # 003 still applied
    assert playbook.evidence()[-1]["rollback"]["path_taken"] == "restore"


def test_a_restore_rehearsal_says_how_far_the_scratch_database_has_grown(db, empty_db):
    """The rehearsal's progress line (said at each async poll, as the backup's): the scratch database's size
    of the dumped one's, read from the server while pg_restore runs (here: a database standing in for it)."""
    from pgrollout import restore

    said = restore._restore_progress(db, empty_db["login_db"], {"database_size_bytes": 512 * 1048576}).read()
    match = re.fullmatch(r"restore rehearsal: the scratch database holds (\d+) MB of the dumped database's 512 MB",
                         said)
    assert match, said
    with psycopg.connect(host=db["login_host"], port=db["login_port"], user=db["login_user"],
                         password=db["login_password"], dbname=db["login_db"]) as conn:
        size = conn.execute("SELECT pg_database_size(%s)", [empty_db["login_db"]]).fetchone()[0]
    assert int(match.group(1)) == size // 1048576
    # without the dump's size (an older manifest) it says what it knows
    assert restore._restore_progress(db, empty_db["login_db"], {}).read().endswith(" MB")


def spec_of(sql: str, rows: list) -> str:
    return json.dumps({"checks": [{"name": "holds", "sql": sql, "expect": {"rows": rows}}]})


def rolled_out_while(book, wanted: re.Pattern, holder) -> tuple[list[str], dict]:
    """A rollout read until `wanted` has been said twice, then `holder` (a session holding it up) let go;
    the rollout succeeds: its console lines and its record."""
    child = subprocess.Popen(book.command("rollout.yml"), cwd=REPO, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=book.environment(ANSIBLE_STDOUT_CALLBACK="pgrollout"))
    seen: list[str] = []
    assert child.stdout is not None
    try:
        for line in child.stdout:  # the condition: the line said at two polls
            seen.append(line.rstrip())
            if sum(bool(wanted.search(x)) for x in seen) >= 2:
                break
    finally:
        holder.rollback()
        holder.close()
    rest, _ = child.communicate(timeout=600)
    seen += rest.splitlines()
    (record,) = book.evidence()
    assert (child.returncode, record["outcome"]) == (0, "succeeded"), "\n".join(seen)[-3000:]
    return seen, record


def session(params: dict):
    return psycopg.connect(host=params["login_host"], port=params["login_port"], user=params["login_user"],
                           password=params["login_password"], dbname=params["login_db"])


def test_a_migration_waiting_for_a_lock_says_which_statement_and_who_holds_the_lock(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "held_column", "ALTER TABLE public.held ADD COLUMN note text;\n",
             "ALTER TABLE public.held DROP COLUMN note;\n",
             spec_of("SELECT count(*)::int FROM information_schema.columns WHERE table_name = 'held' "
                     "AND column_name = 'note'", [[1]]))
    book = set_playbook(empty_db, mset, tmp_path / "work")
    # every database is big enough here, a poll every second; the lock wait outlasts several polls
    # (the preflight waits out long transactions holding such locks: this one it lets through)
    book.set(pgrollout_progress_min_bytes=0, pgrollout_progress_seconds=1, pgrollout_lock_timeout="120s",
             pgrollout_backup=False, preflight_blocker_min_seconds=3600)
    holder = session(empty_db)
    holder.execute("CREATE TABLE public.held (id int)")
    holder.commit()
    holder.execute("SELECT count(*) FROM public.held")  # ACCESS SHARE until released: ALTER TABLE waits
    pid = holder.info.backend_pid
    wanted = re.compile(rf"migrate: 001_held_column.sql, taking its locks \(1 statements\); the statement has run "
                        rf"\d+ s, waiting for a lock \(relation\) held by pid {pid} \(")
    seen, record = rolled_out_while(book, wanted, holder)
    text = "\n".join(seen)
    assert not any("ASYNC" in x for x in seen), text  # the async job's own lines: not on the console
    # said under the step that runs, at Ansible's async polls
    assert all(re.search(r"\.\.\. migrate : Apply the run's files .*\(\d+s\): migrate: ", x)
               for x in seen if wanted.search(x)), text
    assert record["changed"] == ["001"]


def test_a_concurrent_index_build_says_its_phase_while_it_waits(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "big_index", "-- pgrollout: no-transaction\nCREATE INDEX CONCURRENTLY big_v ON public.big (v);\n",
             "DROP INDEX CONCURRENTLY public.big_v;\n",
             spec_of("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.big_v'::regclass", [[True]]))
    book = set_playbook(empty_db, mset, tmp_path / "work")
    # the build waits for the snapshot as a lock (virtualxid): lock_timeout must outlast two polls on a busy machine
    book.set(pgrollout_progress_min_bytes=0, pgrollout_progress_seconds=1, pgrollout_backup=False,
             pgrollout_lock_timeout="120s")
    with session(empty_db) as setup:
        setup.execute("CREATE TABLE public.big AS SELECT g AS id, g % 97 AS v FROM generate_series(1, 5000) g")
    holder = session(empty_db)
    holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT count(*) FROM public.big")  # a snapshot the build must wait out
    wanted = re.compile(r"migrate: 001_big_index.sql, statement 1 of 1; CREATE INDEX CONCURRENTLY: "
                        r"waiting for (old snapshots|writers before validation|readers before marking dead)")
    rolled_out_while(book, wanted, holder)
    with session(empty_db) as check:
        assert check.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.big_v'::regclass"
                             ).fetchall() == [(True,)]
