"""The run lease through the plays: one run per target, a dead run's lease reported and broken."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import REPO, execute, query
from pgrollout import connection, lease
from sessions import Blocker


def hold_lease(params, run_id="20261129T000000Z-dead-0000", idle="10 seconds", ttl=600) -> None:
    with connection.connect(params, autocommit=True) as conn:
        from pgrollout import ledger
        ledger.ensure(conn)
        lease.acquire(conn, lease.Claim(run_id=run_id, kind="rollout", inventory_host="other-host",
                                        os_user="someone", control_node="elsewhere", ttl_seconds=ttl))
        conn.execute(f"UPDATE pgrollout.lease SET heartbeat_at = now() - interval '{idle}', "
                     f"started_at = now() - interval '{idle}'")


def backups(playbook) -> list[Path]:
    folder = playbook.workdir / "backups"
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".json")) if folder.exists() else []


def test_a_held_lease_refuses_the_run_before_the_backup_naming_the_holder(playbook, db):
    hold_lease(db)
    proc = playbook.run()
    assert proc.returncode != 0
    said = " ".join(proc.stdout.split())
    assert "another pgrollout run holds this database: run 20261129T000000Z-dead-0000 (rollout from other-host, " \
           "user someone on elsewhere" in said
    assert "-e pgrollout_break_lease=20261129T000000Z-dead-0000" in said
    assert backups(playbook) == [] and query(db, "SELECT to_regclass('public.bots')") == [(None,)]
    # the refused run released nothing of the holder's
    assert query(db, "SELECT run_id FROM pgrollout.lease") == [("20261129T000000Z-dead-0000",)]
    # a dry run takes no lease but reports the held one
    proc = playbook.run("rollout.yml", "--check")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "the run lease is held: run 20261129T000000Z-dead-0000" in " ".join((proc.stdout + proc.stderr).split())


def test_a_dead_runs_lease_is_broken_with_a_reason_that_is_recorded(playbook, db):
    hold_lease(db)
    proc = playbook.run("rollout.yml", "-e", "pgrollout_break_lease=20261129T000000Z-dead-0000")
    assert proc.returncode != 0 and "needs a reason" in " ".join(proc.stdout.split())
    proc = playbook.run("rollout.yml", "-e", json.dumps({"pgrollout_break_lease": "20261129T000000Z-dead-0000",
                                                         "pgrollout_break_lease_reason": "the CI job was cancelled"}))
    assert proc.returncode == 0, proc.stdout[-3000:]
    events = query(db, "SELECT event, run_id, reason FROM pgrollout.lease_events WHERE event = 'broken'")
    assert events == [("broken", "20261129T000000Z-dead-0000", "the CI job was cancelled")]
    assert query(db, "SELECT count(*) FROM pgrollout.lease") == [(0,)]  # released at the end
    record = playbook.evidence()[-1]
    assert record["lease"]["event"] == "broken"


def test_a_lease_without_heartbeat_for_its_ttl_lapses(playbook, db):
    hold_lease(db, idle="2 hours", ttl=60)
    proc = playbook.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert query(db, "SELECT event FROM pgrollout.lease_events WHERE run_id = '20261129T000000Z-dead-0000' "
                     "ORDER BY id") == [("acquired",), ("lapsed",)]


def test_two_runs_started_together_make_one_backup_and_one_apply(playbook, db):
    outcomes: list[subprocess.CompletedProcess] = []
    threads = [threading.Thread(target=lambda: outcomes.append(playbook.run_raw())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert sorted(p.returncode for p in outcomes)[0] == 0
    assert len(backups(playbook)) == 1
    assert query(db, "SELECT count(*) FROM pgrollout.history WHERE version = '003' AND direction = 'up'") == [(1,)]
    refused = [p for p in outcomes if p.returncode != 0]
    assert all("another pgrollout run holds this database" in " ".join(p.stdout.split()) for p in refused)


def test_leftovers_of_killed_runs_are_removed_and_reported(playbook, db, tmp_path):
    import tempfile
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    passfile = Path(tempfile.gettempdir()) / f"pgrollout-pass-{dead.pid}-leftover"
    passfile.write_text("*:*:*:postgres:secret\n")
    (playbook.workdir / "backups").mkdir()
    partial = playbook.workdir / "backups" / ".postgres_pre_003_x.dir.partial"
    partial.mkdir()
    from pgrollout import leftovers
    execute(db, "CREATE DATABASE pgrollout_rehearsal_deadbeef")
    comment = leftovers.scratch_comment(dead.pid).replace("'", "''")
    execute(db, f"COMMENT ON DATABASE pgrollout_rehearsal_deadbeef IS '{comment}'")
    proc = playbook.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert not passfile.exists() and not partial.exists()
    assert query(db, "SELECT count(*) FROM pg_database WHERE datname = 'pgrollout_rehearsal_deadbeef'") == [(0,)]
    said = " ".join(proc.stdout.split())
    assert "removed leftovers of killed runs" in said and "pgrollout_rehearsal_deadbeef" in said


@pytest.mark.parametrize("detached", [False, True], ids=["task", "async-job"])
def test_a_killed_ansible_playbook_does_not_commit_and_the_next_run_recovers(playbook, db, detached):
    """SIGKILL ansible-playbook while pg_migrate waits for a lock: the orphaned module must not commit - also
    as an async job (a big database: async_wrapper detaches the module; it watches the controller's pid)."""
    progress = ["-e", "pgrollout_progress_min_bytes=0", "-e", "pgrollout_progress_seconds=1"] if detached else []
    with Blocker(db, "public.kb_patterns") as blocker:
        proc = playbook.start("rollout.yml", "-e", "pgrollout_lock_timeout=500ms", "-e", "pgrollout_lock_retries=40",
                              "-e", "pgrollout_lock_retry_max_delay=0.5", "-e", "pgrollout_backup=false",
                              "-e", "preflight_blocker_min_seconds=3600", *progress)
        blocker.kill_when_queued(proc)  # the condition: the module is queued behind the blocker
    # the orphan goes on to its next attempt, sees its controller gone, rolls back and exits
    while query(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrollout' "
                    "AND pid <> pg_backend_pid()") != [(0,)]:
        pass
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]
    assert query(db, "SELECT count(*) FROM supabase_migrations.schema_migrations WHERE version = '003'") == [(0,)]
    held = query(db, "SELECT run_id FROM pgrollout.lease")
    assert len(held) == 1
    proc = playbook.run()
    assert proc.returncode != 0 and f"run {held[0][0]}" in " ".join(proc.stdout.split())
    proc = playbook.run("rollout.yml", "-e", f"pgrollout_break_lease={held[0][0]}",
                        "-e", "pgrollout_break_lease_reason=killed in a test")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert query(db, "SELECT to_regclass('public.bots')::text") == [("bots",)]


def test_rehearse_takes_no_lease(playbook, db):
    hold_lease(db)
    proc = playbook.run("rehearse.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert str(REPO)  # the rehearsal ran against a scratch database, past a held lease
