"""Pure logic: the lock plan read from SQL, and the retry backoff."""
from __future__ import annotations

import random

import pytest
from ansible_collections.pgrollout.postgresql.plugins.module_utils import locks, retry, sqlfile


def plan(sql: str) -> dict[str, str]:
    """The plan with (schema, name) keys written as schema.name (name alone when unqualified)."""
    return {".".join(p for p in key if p): mode for key, mode in locks.lock_plan(sqlfile.split_statements(sql)).items()}


@pytest.mark.parametrize("sql, expected", [
    ("ALTER TABLE public.kb_patterns ENABLE ROW LEVEL SECURITY", {"public.kb_patterns": "AccessExclusiveLock"}),
    ("CREATE POLICY p ON kb FOR SELECT USING (true)", {"kb": "AccessExclusiveLock"}),
    ("DROP POLICY p ON public.kb", {"public.kb": "AccessExclusiveLock"}),
    ("CREATE INDEX i ON public.t (x)", {"public.t": "ShareLock"}),
    ("CREATE INDEX CONCURRENTLY i ON public.t (x)", {}),
    ("CREATE TRIGGER t AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f()",
     {"public.t": "ShareRowExclusiveLock"}),
    ("CREATE TABLE a (u uuid REFERENCES auth.users (id), b int, FOREIGN KEY (b) REFERENCES public.bots (x))",
     {"auth.users": "ShareRowExclusiveLock", "public.bots": "ShareRowExclusiveLock"}),
    ("DROP TABLE public.bots, runs", {"public.bots": locks.DROP, "runs": locks.DROP}),
    ("TRUNCATE a, b", {"a": "AccessExclusiveLock", "b": "AccessExclusiveLock"}),
    ("SELECT 1", {}),
    ('ALTER TABLE "Bots" ADD COLUMN x int', {"Bots": "AccessExclusiveLock"}),
    ('ALTER TABLE "my schema"."a ""b""" ENABLE ROW LEVEL SECURITY', {'my schema.a "b"': "AccessExclusiveLock"}),
    ('DROP POLICY "p" ON "Odd Table"', {"Odd Table": "AccessExclusiveLock"}),
])
def test_statement_lock_plan(sql, expected):
    assert plan(sql + ";") == expected


def test_the_strongest_mode_per_table_wins():
    assert plan("CREATE INDEX i ON t (x); ALTER TABLE t ADD COLUMN y int; CREATE INDEX j ON t (y);") == {
        "t": "AccessExclusiveLock"}


def test_strongest_lock_per_relation():
    rows = [("public.a", "AccessShareLock"), ("public.a", "AccessExclusiveLock"),
            ("public.a", "ShareLock"), ("auth.users", "AccessShareLock"),
            ("auth.users", "ShareRowExclusiveLock")]
    assert locks.strongest_locks(rows) == [
        {"relation": "auth.users", "mode": "ShareRowExclusiveLock"},
        {"relation": "public.a", "mode": "AccessExclusiveLock"}]


def test_backoff_doubles_up_to_the_ceiling_with_half_of_it_random():
    policy = retry.RetryPolicy(retries=6, delay=1.0, max_delay=5.0, rng=random.Random(7))
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (6, 5.0)]:
        delays = [policy.backoff(attempt) for _unused in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len({round(d, 6) for d in delays}) > 1


def test_run_retries_lock_timeouts_then_gives_up_with_every_attempt_recorded():
    calls, slept, attempts = [], [], []

    def action():
        calls.append(1)
        raise retry.LockTimeout(ValueError("locked"), {"sqlstate": "55P03"})

    with pytest.raises(ValueError, match="locked"):
        retry.run(action, retry.RetryPolicy(retries=2, delay=0.1), lambda t: {"blockers": [1]}, attempts,
                  sleep=slept.append)
    assert len(calls) == 3 and len(slept) == 2
    assert [a["outcome"] for a in attempts] == ["lock_timeout"] * 3
    assert all(a["blockers"] == [1] for a in attempts)
    assert "retry_in_ms" in attempts[0] and "retry_in_ms" not in attempts[-1]


def test_run_returns_once_the_action_succeeds():
    outcomes = iter([retry.LockTimeout(ValueError(), {}), "ok"])

    def action():
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    attempts: list = []
    assert retry.run(action, retry.RetryPolicy(retries=3), lambda t: {}, attempts, sleep=lambda s: None) == "ok"
    assert [a["outcome"] for a in attempts] == ["lock_timeout", "done"]


def test_run_tells_each_attempt_before_it_starts_as_n_of_m():
    told, seen = [], []

    def action():
        seen.append(told[-1])  # the progress line's attempt is set before the try, not after
        if len(seen) < 3:
            raise retry.LockTimeout(ValueError("locked"), {})
        return "ok"

    assert retry.run(action, retry.RetryPolicy(retries=4), lambda t: {}, [], sleep=lambda s: None,
                     on_attempt=lambda n, of: told.append((n, of))) == "ok"
    assert told == seen == [(1, 5), (2, 5), (3, 5)]
