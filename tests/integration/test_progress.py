"""Progress on a long step (issue 23): a backup that takes a while prints what it has done at every poll of
Ansible's async job - tables dumped of the total, bytes written, and who holds a lock pg_dump waits for."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import psycopg

from conftest import REPO, set_playbook
from migsets import chain

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
