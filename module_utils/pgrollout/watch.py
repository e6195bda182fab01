"""The post-deploy watch: sample the target's health, compare it with a baseline taken before the change.

Each sample reads cumulative counters (transactions rolled back, deadlocks,
conflicts, from pg_stat_database) and gauges (sessions waiting on locks and
the longest wait, connections by state, from pg_stat_activity); errors from
pg_stat_statements are not in PostgreSQL 15's view, so they are reported as
unavailable. Rates come from consecutive samples. A metric breaches when it
exceeds both its absolute floor and the baseline's value times its factor.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection

SAMPLE_SQL = """
SELECT xact_rollback, deadlocks, conflicts, xact_commit,
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'),
       (SELECT coalesce(max(extract(epoch FROM now() - query_start)), 0) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'),
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'),
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'),
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())
FROM pg_stat_database WHERE datname = current_database()
"""
COUNTERS = ("rollbacks", "deadlocks", "conflicts", "commits")
GAUGES = ("lock_waiting_sessions", "longest_lock_wait_seconds", "active", "idle_in_transaction", "connections")
# metric -> (absolute floor, factor over the baseline): both must be exceeded
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "rollbacks_per_second": {"floor": 1.0, "factor": 3.0},
    "deadlocks_per_second": {"floor": 0.0, "factor": 1.0},
    "lock_waiting_sessions": {"floor": 2.0, "factor": 2.0},
    "longest_lock_wait_seconds": {"floor": 5.0, "factor": 2.0},
}


def sample(conn: Connection) -> dict[str, float]:
    # a fresh snapshot of the statistics each time (not the one cached in a transaction)
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(SAMPLE_SQL).fetchone()
    return {"at": time.time(), **dict(zip(COUNTERS + GAUGES, (float(v) for v in row), strict=True))}


def series(samples: list[dict[str, float]]) -> list[dict[str, float]]:
    """Per interval: counter rates per second and the gauges at its end."""
    points = []
    for before, after in zip(samples, samples[1:], strict=False):
        seconds = max(after["at"] - before["at"], 1e-6)
        point = {"at": after["at"]}
        for counter in COUNTERS:
            point[f"{counter}_per_second"] = round(max(after[counter] - before[counter], 0) / seconds, 3)
        point.update({gauge: after[gauge] for gauge in GAUGES})
        points.append(point)
    return points


def peaks(points: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in (points[0] if points else {}) if k != "at"]
    return {k: max(p[k] for p in points) for k in keys}


def observe(conn: Connection, seconds: float, interval: float, on_point: Callable[[dict], None] | None = None,
            sleep: Callable[[float], None] = time.sleep) -> list[dict[str, float]]:
    samples = [sample(conn)]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sleep(max(0.0, min(interval, deadline - time.monotonic())))
        samples.append(sample(conn))
        if on_point:
            on_point(series(samples[-2:])[0])
    return series(samples)


def progress_line(point: dict[str, float], elapsed: float, seconds: float, baseline: dict[str, float] | None,
                  thresholds: dict[str, dict[str, float]] | None = None) -> str:
    """One interval, as the async poll shows it: the rates and lock waits, and what breaches so far."""
    found = breaches([point], baseline, thresholds) if baseline is not None else []
    return (f"watch: {elapsed:.0f}s of {seconds:g}s: {point.get('rollbacks_per_second', 0):g} rollbacks/s, "
            f"{point.get('deadlocks_per_second', 0):g} deadlocks/s, "
            f"{point.get('lock_waiting_sessions', 0):g} session(s) waiting for a lock "
            f"(longest {point.get('longest_lock_wait_seconds', 0):g}s); {describe(found)} in this interval")


def watched(conn: Connection, seconds: float, interval: float, baseline: dict[str, float] | None,
            thresholds: dict[str, dict[str, float]] | None = None) -> list[dict[str, float]]:
    """observe(), each interval said to Ansible's async poll when run as an async task (progress.py)."""
    from .progress import Progress

    progress = Progress()  # each point is said as it comes
    started = time.monotonic()
    return observe(conn, seconds, interval, on_point=lambda point: progress.say(
        progress_line(point, time.monotonic() - started, seconds, baseline, thresholds)))


def breaches(points: list[dict[str, float]], baseline: dict[str, float] | None,
             thresholds: dict[str, dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """The metrics whose peak exceeds both the floor and the baseline's peak times the factor."""
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    seen = peaks(points)
    found = []
    for metric, limit in limits.items():
        if metric not in seen:
            continue
        base = (baseline or {}).get(metric, 0.0)
        allowed = max(limit["floor"], base * limit["factor"])
        if seen[metric] > allowed:
            found.append({"metric": metric, "peak": seen[metric], "baseline": base, "allowed": allowed})
    return found


def describe(found: list[dict[str, Any]]) -> str:
    return "; ".join(f"{b['metric']} peaked at {b['peak']:g} (baseline {b['baseline']:g}, allowed {b['allowed']:g})"
                     for b in found) or "no breach"
