"""Lock-bounded, concurrency-safe, drift-aware apply against a real server."""
from __future__ import annotations

import threading

import pytest

from conftest import MIGRATION_003, ROLLBACK_003, execute, query
from pgrollout import connection, locks, migrate, retry, sqlfile
from sessions import Blocker, Readers


def options(**kwargs) -> migrate.Options:
    policy = retry.RetryPolicy(retries=kwargs.pop("retries", 2), delay=kwargs.pop("delay", 0.2), max_delay=1.0)
    return migrate.Options(retry=policy, **kwargs)


def apply(params, path=MIGRATION_003, **kwargs):
    with connection.connect(params) as conn:
        return migrate.apply(conn, sqlfile.load(str(path)), options(**kwargs))


def not_applied(params) -> bool:
    return (query(params, "SELECT to_regclass('public.bots')") == [(None,)]
            and query(params, "SELECT count(*) FROM supabase_migrations.schema_migrations "
                              "WHERE version = '003'") == [(0,)]
            and query(params, "SELECT bool_or(relrowsecurity) FROM pg_class WHERE relname LIKE 'kb_%'") == [(False,)])


def test_a_held_lock_fails_the_rollout_after_its_retries_and_readers_wait_about_lock_timeout(db):
    # Without the bound, readers queue behind the waiting migration for as long as
    # the blocker holds kb_patterns (here: the whole ~4 s the rollout tries).
    with (Blocker(db, "public.kb_patterns") as blocker,
          Readers(db, "SELECT count(*) FROM public.kb_patterns") as readers,
          pytest.raises(migrate.MigrationError) as info):
        apply(db, lock_timeout="1s", retries=2)
    error = info.value
    assert "Gave up after 3 attempt(s)" in str(error) and f"pid {blocker.pid} (test-blocker" in str(error)
    attempts = error.details["attempts"]
    assert [a["outcome"] for a in attempts] == ["lock_timeout"] * 3
    assert all(blocker.pid in [b["pid"] for b in a["blockers"]] for a in attempts)
    assert attempts[0]["blockers"][0]["locks"] == "public.kb_patterns AccessShareLock"
    assert not_applied(db)
    assert readers.latencies and not readers.errors
    assert readers.longest < 2.5, f"a reader waited {readers.longest:.2f}s with lock_timeout 1s"


def test_the_same_rollout_succeeds_once_the_blocker_goes_away(db):
    with Blocker(db, "public.kb_correlations", mode="ROW EXCLUSIVE") as blocker:
        blocker.release_after(1.5)
        result = apply(db, lock_timeout="500ms", retries=6, delay=0.3)
    assert result["changed"]
    outcomes = [a["outcome"] for a in result["attempts"]]
    assert outcomes[0] == "lock_timeout" and outcomes[-1] == "done"
    assert blocker.pid in [b["pid"] for b in result["attempts"][0]["blockers"]]
    assert query(db, "SELECT count(*) FROM supabase_migrations.schema_migrations WHERE version = '003'") == [(1,)]


def test_two_rollouts_started_together_apply_exactly_once(db):
    barrier, outcomes = threading.Barrier(2), []

    def run():
        barrier.wait()
        try:
            outcomes.append(apply(db, lock_wait=30)["changed"])
        except migrate.MigrationError as exc:  # pragma: no cover - reported by the assertion
            outcomes.append(str(exc))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes, key=str) == [False, True]
    assert query(db, "SELECT count(*) FROM pgrollout.history WHERE version = '003' AND direction = 'up'") == [(1,)]


def test_a_rollout_waits_for_another_run_up_to_lock_wait(db):
    release = threading.Event()

    def hold():
        with connection.connect(db) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrate.ledger.ADVISORY_LOCK_KEY,))
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        with pytest.raises(migrate.MigrationError, match=r"another pgrollout session .* waited 0.5s"):
            apply(db, lock_wait=0.5)
        threading.Timer(0.5, release.set).start()
        assert apply(db, lock_wait=20)["changed"]
    finally:
        release.set()
        holder.join()


def test_an_accepted_drift_is_recorded_with_its_reason_and_not_reapplied(db, tmp_path):
    apply(db)
    edited = tmp_path / MIGRATION_003.name
    edited.write_text("-- reviewed again 2026-11-25\n" + MIGRATION_003.read_text())
    with pytest.raises(migrate.MigrationError, match="must not be edited"):
        apply(db, edited)
    result = apply(db, edited, accept_drift={"003": "comment added after review"})
    assert result["changed"] and result["drift_accepted"] == "comment added after review"
    assert query(db, "SELECT direction, note, checksum FROM pgrollout.history WHERE version = '003' "
                     "ORDER BY id DESC LIMIT 1") == [("drift_accepted", "comment added after review",
                                                       sqlfile.load(str(edited)).checksum)]
    assert not apply(db, edited)["changed"]
    assert query(db, "SELECT count(*) FROM pg_policies WHERE tablename = 'bots'") == [(2,)]


def test_a_non_transactional_file_runs_step_by_step_and_resumes_after_a_failure(db, tmp_path):
    path = tmp_path / "004_concurrent_indexes.sql"
    path.write_text(f"{sqlfile.NO_TRANSACTION_MARKER}\n"
                    "CREATE INDEX CONCURRENTLY kb_patterns_name_idx ON public.kb_patterns (name);\n"
                    "CREATE INDEX CONCURRENTLY kb_pair_idx ON public.kb_correlations (asset_a, asset_b);\n")
    execute(db, "CREATE TABLE public.blocking_name (x int); CREATE INDEX kb_pair_idx ON public.blocking_name (x)")

    dry = apply(db, path, check_mode=True)
    assert dry["dry_runnable"] is False and "not dry-runnable" in dry["msg"]
    assert query(db, "SELECT to_regclass('public.kb_patterns_name_idx')") == [(None,)]

    with pytest.raises(migrate.MigrationError, match=r"004_concurrent_indexes.sql:3: statement 2 .*42P07.*resume"):
        apply(db, path)
    assert query(db, "SELECT to_regclass('public.kb_patterns_name_idx')::text") == [("kb_patterns_name_idx",)]
    assert query(db, "SELECT statement_number FROM pgrollout.steps WHERE version = '004'") == [(1,)]

    execute(db, "DROP TABLE public.blocking_name")
    result = apply(db, path)
    assert result["changed"] and "resumed: 1 already done" in result["msg"] and result["statements"] == 1
    assert query(db, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('kb_patterns_name_idx', 'kb_pair_idx') "
                     "AND tablename LIKE 'kb_%'") == [(2,)]
    assert query(db, "SELECT count(*) FROM pgrollout.steps") == [(0,)]
    assert query(db, "SELECT count(*) FROM supabase_migrations.schema_migrations WHERE version = '004'") == [(1,)]
    assert not apply(db, path)["changed"]


@pytest.mark.parametrize("path, direction", [(MIGRATION_003, "up"), (ROLLBACK_003, "down")])
def test_the_lock_plan_is_exactly_what_the_dry_run_takes_on_existing_tables(db, path, direction):
    if direction == "down":
        apply(db)
    mf = sqlfile.load(str(path))
    existing = {f"{s}.{t}" for s, t in query(db, "SELECT schemaname, tablename FROM pg_tables")}
    with connection.connect(db) as conn, conn.cursor() as cur:
        planned = {f"{s}.{n}": mode for s, n, mode in locks.resolve(cur, locks.lock_plan(mf.statements))}
    with connection.connect(db) as conn:
        dry = migrate.apply(conn, mf, migrate.Options(check_mode=True), direction=direction)
    share = locks.LOCK_STRENGTH.index("ShareLock")
    taken = {lk["relation"]: lk["mode"] for lk in dry["locks"]
             if lk["relation"] in existing and locks.LOCK_STRENGTH.index(lk["mode"]) >= share}
    assert taken == planned
    if direction == "down":  # DROP TABLE locks auth.users ACCESS EXCLUSIVE through the foreign keys
        assert planned["auth.users"] == "AccessExclusiveLock"
        assert planned["public.bots"] == "AccessExclusiveLock"
