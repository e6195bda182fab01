"""The post-deploy watch against a baseline, with a burst of rollbacks and deadlocks injected in its window."""
from __future__ import annotations

import contextlib
import re
import threading

import psycopg

from conftest import query
from pgrollout import connection, watch


def burst(params, stop: threading.Event) -> None:
    """Rolled-back transactions and deadlocks until told to stop."""
    with connection.connect(params, autocommit=True) as a, connection.connect(params, autocommit=True) as b:
        a.execute("CREATE TABLE IF NOT EXISTS public.deadlock_pair (id int PRIMARY KEY); "
                  "INSERT INTO public.deadlock_pair VALUES (1), (2) ON CONFLICT DO NOTHING")
        while not stop.is_set():
            for _ in range(20):
                a.execute("BEGIN")
                a.execute("SELECT 1")
                a.execute("ROLLBACK")
            a.execute("BEGIN")
            b.execute("BEGIN")
            a.execute("UPDATE public.deadlock_pair SET id = id WHERE id = 1")
            b.execute("UPDATE public.deadlock_pair SET id = id WHERE id = 2")
            worker = threading.Thread(target=_quietly, args=(b, "UPDATE public.deadlock_pair SET id = id WHERE id = 1"))
            worker.start()
            _quietly(a, "UPDATE public.deadlock_pair SET id = id WHERE id = 2")
            worker.join()
            for conn in (a, b):
                conn.execute("ROLLBACK")


def _quietly(conn, sql: str) -> None:
    with contextlib.suppress(psycopg.errors.DeadlockDetected):
        conn.execute(sql)


def test_breaches_are_peaks_above_both_the_floor_and_the_baseline():
    points = [{"at": 1, "rollbacks_per_second": 30.0, "deadlocks_per_second": 0.5, "lock_waiting_sessions": 1,
               "longest_lock_wait_seconds": 0.2}]
    found = watch.breaches(points, {"rollbacks_per_second": 2.0, "deadlocks_per_second": 0.0})
    assert [b["metric"] for b in found] == ["rollbacks_per_second", "deadlocks_per_second"]
    assert watch.breaches(points, {"rollbacks_per_second": 20.0, "deadlocks_per_second": 1.0}) == []


def test_a_watch_interval_is_said_with_its_rates_and_what_breaches():
    point = {"at": 1, "rollbacks_per_second": 30.0, "deadlocks_per_second": 0.0, "lock_waiting_sessions": 3,
             "longest_lock_wait_seconds": 1.5}
    line = watch.progress_line(point, 20.4, 60, {"rollbacks_per_second": 2.0})
    assert line.startswith("watch: 20s of 60s: 30 rollbacks/s, 0 deadlocks/s, 3 session(s) waiting for a lock "
                           "(longest 1.5s); rollbacks_per_second peaked at 30"), line
    assert watch.progress_line(point, 5, 60, None).endswith("; no breach in this interval")


def test_a_burst_in_the_watch_window_is_a_breach_and_rolls_back_by_script(playbook, db):
    playbook.set(pgrollout_watch_minutes=0.1, pgrollout_watch_interval=1, pgrollout_watch_on_breach="fail",
                 pgrollout_watch_rollback_on_breach=True)
    stop = threading.Event()

    def inject_once_applied() -> None:
        # the condition: 003 committed (then verification, then the watch)
        while not stop.is_set() and query(db, "SELECT count(*) FROM pg_tables WHERE tablename = 'bots'") == [(0,)]:
            stop.wait(0.2)
        burst(db, stop)

    injector = threading.Thread(target=inject_once_applied, daemon=True)
    injector.start()
    try:
        proc = playbook.run()
    finally:
        stop.set()
        injector.join(30)
    assert proc.returncode != 0
    said = " ".join(proc.stdout.split())
    assert "Rollout failed at 'Stop on a watch breach'" in said and "rollbacks_per_second peaked at" in said
    assert "Rolled back automatically (script)" in said
    # each async poll of the watch says its last interval under the step (pgrollout's console)
    polls = re.findall(r"\.\.\. watch : Watch the target after the change \(\d+s\): watch: \d+s of 6s: ([^\n]*)",
                       proc.stdout)
    assert polls and all("rollbacks/s" in x and "waiting for a lock" in x for x in polls), proc.stdout[-3000:]
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]
    record = playbook.evidence()[-1]
    assert record["watch"]["breaches"] and record["watch"]["baseline"] is not None
    assert record["rollback"]["path_taken"] == "script"
