"""Preflight looks before it leaps: poolers, long lock holders, ledger/file mismatches."""
from __future__ import annotations

import shutil
import time

from conftest import REPO, query
from pgrollout import facts
from sessions import Blocker


def test_a_transaction_pooler_is_detected_and_a_direct_connection_is_not(db, pgbouncer):
    through = facts.pooler(pgbouncer)
    assert through["suspected"] and "served by one server backend" in through["reason"]
    assert facts.pooler(db) == {"suspected": False, "reason": None}


def test_the_rollout_refuses_a_transaction_pooler(playbook, db, pgbouncer):
    playbook.set(pgrollout_db_port=pgbouncer["login_port"])
    proc = playbook.run()
    assert proc.returncode != 0
    assert "transaction-mode pooler" in proc.stdout and "Connect to the database directly" in proc.stdout
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]


def test_preflight_waits_for_a_long_lock_holder_then_refuses_naming_it(playbook, db):
    playbook.set(preflight_blocker_min_seconds=1, preflight_blocker_wait=2, preflight_blocker_poll=1)
    with Blocker(db, "public.kb_macro_events", name="nightly-report") as blocker:
        time.sleep(1.2)
        proc = playbook.run()
    assert proc.returncode != 0
    assert f"pid {blocker.pid} (nightly-report" in proc.stdout
    assert "public.kb_macro_events AccessShareLock" in proc.stdout
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]
    (record,) = playbook.evidence()
    assert record["outcome"] == "refused" and record["backup"] is None
    assert record["refused_by"] == "Refuse while a long transaction still holds a lock on a table the run will lock"


def test_preflight_proceeds_once_the_long_lock_holder_ends(playbook, db):
    playbook.set(preflight_blocker_min_seconds=1, preflight_blocker_wait=30, preflight_blocker_poll=1)
    with Blocker(db, "public.kb_macro_events") as blocker:
        time.sleep(1.2)  # the blocker's transaction must be older than preflight_blocker_min_seconds
        # released once the wait has seen it at least once (ansible prints each retry), however slow the machine
        proc = playbook.run(when_printed=("waiting: preflight : Wait for long transactions", blocker.release))
    assert proc.returncode == 0, proc.stdout[-3000:]
    (waited,) = playbook.task_results(proc, "Wait for long transactions holding locks on the tables the run will lock")
    assert waited["attempts"] >= 2


def test_missing_and_out_of_order_files_stop_the_rollout(playbook, db, tmp_path):
    migrations, specs = tmp_path / "migrations", tmp_path / "verification"
    migrations.mkdir()
    specs.mkdir()
    for name in ("001_initial_schema.sql", "002_knowledge_base.sql"):
        shutil.copy(REPO / "supabase" / "migrations" / name, migrations)
    (migrations / "004_late.sql").write_text("CREATE TABLE public.late (id int);\n")
    (specs / "004_late.yml").write_text(
        "checks:\n  - {name: late exists, sql: SELECT 1 FROM pg_tables WHERE tablename = 'late', expect: {count: 1}}\n")
    playbook.set(pgrollout_migrations_dir=str(migrations), pgrollout_verification_dir=str(specs))
    assert playbook.run().returncode == 0  # applies 004

    shutil.copy(REPO / "supabase" / "migrations" / "003_bot_registration_sharing.sql", migrations)
    proc = playbook.run()
    assert proc.returncode != 0 and "['003_bot_registration_sharing.sql'] would apply out of order" in proc.stdout
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]

    (migrations / "003_bot_registration_sharing.sql").unlink()
    (migrations / "001_initial_schema.sql").unlink()
    proc = playbook.run()
    assert proc.returncode != 0 and "Applied but no file: ['001']" in proc.stdout


def test_an_edited_applied_file_stops_the_rollout_until_the_edit_is_accepted(playbook, db, tmp_path):
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "supabase" / "migrations", migrations)
    playbook.set(pgrollout_migrations_dir=str(migrations))
    assert playbook.run().returncode == 0
    edited = migrations / "003_bot_registration_sharing.sql"
    edited.write_text(edited.read_text().replace("-- 003: bot registration", "-- 003: Bot registration"))
    proc = playbook.run()
    assert proc.returncode != 0 and f"Edited after being applied: ['{edited}']" in proc.stdout

    playbook.set(pgrollout_accept_drift={"003": "capitalised a comment (CHG-42)"})
    proc = playbook.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    record = playbook.evidence()[-1]
    assert record["migrations"][0]["drift_accepted"] == "capitalised a comment (CHG-42)"
    assert query(db, "SELECT note FROM pgrollout.history WHERE direction = 'drift_accepted'") == [
        ("capitalised a comment (CHG-42)",)]
