"""The run lease: one pgrollout run that changes a database at a time, for the whole run.

A row in pgrollout.lease names the run (run id, inventory host, OS user,
control node, started, last heartbeat). It is taken at the start of a rollout
or rollback, before the backup; every step that changes the target checks it
(a migration's transaction reads it FOR KEY SHARE, so the lease cannot be
broken under a commit); it is released at the end, even after a failure.

A lease whose holder died stays until it lapses (no heartbeat for its TTL) or
an operator breaks it, naming the run id and a reason; both are recorded in
pgrollout.lease_events. The transaction-level advisory lock (ledger.py) still
guards each commit.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor

FIELDS = ("run_id", "kind", "inventory_host", "os_user", "control_node", "controller_pid", "started_at",
          "heartbeat_at", "ttl_seconds", "age_seconds", "idle_seconds", "lapsed")
_SELECT = """
SELECT run_id, kind, inventory_host, os_user, control_node, controller_pid,
       to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), ttl_seconds,
       extract(epoch FROM clock_timestamp() - started_at)::int,
       extract(epoch FROM clock_timestamp() - heartbeat_at)::int,
       clock_timestamp() - heartbeat_at > make_interval(secs => ttl_seconds)
FROM pgrollout.lease
"""


class LeaseError(Exception):
    """The lease is held by another run, was lost, or cannot be broken as asked."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None):
        super().__init__(message)
        self.holder = holder


@dataclass
class Claim:
    run_id: str
    kind: str = "rollout"
    inventory_host: str | None = None
    os_user: str | None = None
    control_node: str | None = None
    controller_pid: int | None = None
    ttl_seconds: int = 600


def holder(cur: Cursor) -> dict[str, Any] | None:
    """The current lease, or None (also when pgrollout's tables do not exist yet)."""
    cur.execute("SELECT to_regclass('pgrollout.lease') IS NOT NULL")
    if not cur.fetchone()[0]:
        return None
    cur.execute(_SELECT)
    row = cur.fetchone()
    return dict(zip(FIELDS, row, strict=True)) if row else None


# Runs that took the lease and never released it (killed, or still running) after the last run that
# released its own, and that changed the target: what they applied has no completed record.
_UNFINISHED_SQL = """
SELECT a.run_id, to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       coalesce((SELECT e.event FROM pgrollout.lease_events e WHERE e.run_id = a.run_id
                 AND e.event IN ('lapsed', 'broken') ORDER BY e.id DESC LIMIT 1), 'held'),
       array(SELECT h.version || ' ' || h.direction FROM pgrollout.history h WHERE h.run_id = a.run_id ORDER BY h.id)
FROM pgrollout.lease_events a
WHERE a.event = 'acquired'
  AND NOT EXISTS (SELECT FROM pgrollout.lease_events r WHERE r.run_id = a.run_id AND r.event = 'released')
  AND a.id > coalesce((SELECT max(id) FROM pgrollout.lease_events WHERE event = 'released'), 0)
  AND EXISTS (SELECT FROM pgrollout.history h WHERE h.run_id = a.run_id)
ORDER BY a.id
"""


def unfinished(cur: Cursor, held: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Runs since the last finished one that changed the target and never released their lease."""
    cur.execute("SELECT to_regclass('pgrollout.lease_events') IS NOT NULL AND to_regclass('pgrollout.history') "
                "IS NOT NULL")
    if not cur.fetchone()[0]:
        return []
    cur.execute(_UNFINISHED_SQL)
    runs = []
    for run_id, started, ended, changes in cur.fetchall():
        holding = held is not None and held["run_id"] == run_id
        if holding and not held["lapsed"]:
            ended = "holds the lease (still running, or killed: the lease lapses after its ttl)"
        elif holding:
            ended = "holds a lapsed lease"
        else:
            ended = {"lapsed": "its lease lapsed", "broken": "its lease was broken"}.get(ended, ended)
        runs.append({"run_id": run_id, "started_at": started, "ended": ended, "changes": changes,
                     "message": f"run {run_id} (started {started}) did not finish: {ended}. It changed the target "
                                f"({', '.join(changes)}) and left no completed record of it, so its verification "
                                "after the commit may not have run"})
    return runs


def describe(held: dict[str, Any]) -> str:
    return (f"run {held['run_id']} ({held['kind']} from {held['inventory_host'] or '?'}, user "
            f"{held['os_user'] or '?'} on {held['control_node'] or '?'}, pid {held['controller_pid'] or '?'}), "
            f"started {held['started_at']} ({held['age_seconds']}s ago), last heartbeat "
            f"{held['idle_seconds']}s ago, lapses after {held['ttl_seconds']}s without one")


def _event(cur: Cursor, event: str, run_id: str, by_run_id: str | None, reason: str | None) -> None:
    cur.execute("INSERT INTO pgrollout.lease_events (event, run_id, by_run_id, reason) VALUES (%s, %s, %s, %s)",
                (event, run_id, by_run_id, reason))


def _insert(cur: Cursor, claim: Claim) -> bool:
    cur.execute(
        "INSERT INTO pgrollout.lease (run_id, kind, inventory_host, os_user, control_node, controller_pid, "
        "ttl_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (scope) DO NOTHING RETURNING run_id",
        (claim.run_id, claim.kind, claim.inventory_host, claim.os_user, claim.control_node,
         claim.controller_pid, claim.ttl_seconds))
    return cur.fetchone() is not None


def refuse_replica(conn: Connection) -> None:
    """LeaseError on a read replica: nothing can be written there, and saying so beats a read-only error later."""
    in_recovery = conn.execute("SELECT pg_is_in_recovery(), current_database()").fetchone()
    if in_recovery[0]:
        raise LeaseError(f"database {in_recovery[1]} is a read replica (in recovery): nothing can be changed there. "
                         "Point the inventory at the primary; nothing was changed")


def refuse_unprivileged(conn: Connection) -> None:
    """LeaseError when the role cannot create or use pgrollout's records (a role that is not a superuser)."""
    from . import privileges

    with conn.transaction(), conn.cursor() as cur:
        found = privileges.tool_findings(cur)
        user = conn.info.user
    if found:
        raise LeaseError("; ".join(f"role {user} cannot {what}" for what in found) + ". Nothing was changed: "
                         "grant these and run again (README, A migration role that is not a superuser)")


def acquire(conn: Connection, claim: Claim, break_run_id: str | None = None, break_reason: str = "",
            lock_timeout: str = "5s") -> dict[str, Any]:
    """Take the lease for `claim`; returns what happened (taken, renewed, lapsed or broken lease)."""
    if break_run_id and not break_reason.strip():
        raise LeaseError(f"breaking the lease of run {break_run_id} needs a reason: "
                         "-e pgrollout_break_lease_reason='...' (it is recorded)")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
        if _insert(cur, claim):
            _event(cur, "acquired", claim.run_id, None, None)
            return {"acquired": True, "previous": None, "event": "acquired"}
        cur.execute(_SELECT + " FOR UPDATE")
        held = dict(zip(FIELDS, cur.fetchone(), strict=True))
        if held["run_id"] == claim.run_id:
            cur.execute("UPDATE pgrollout.lease SET heartbeat_at = now()")
            return {"acquired": True, "previous": held, "event": "renewed"}
        if break_run_id and break_run_id != held["run_id"]:
            raise LeaseError(f"asked to break the lease of run {break_run_id}, but the lease is held by "
                             f"{describe(held)}: nothing was broken", held)
        if held["lapsed"]:
            event, reason = "lapsed", f"no heartbeat for {held['idle_seconds']}s (ttl {held['ttl_seconds']}s)"
        elif break_run_id:
            event, reason = "broken", break_reason
        else:
            raise LeaseError(
                f"another pgrollout run holds this database: {describe(held)}. Wait for it to finish. If that "
                f"run is dead, break its lease: -e pgrollout_break_lease={held['run_id']} "
                "-e pgrollout_break_lease_reason='<why>' (recorded)", held)
        cur.execute("DELETE FROM pgrollout.lease")
        _event(cur, event, held["run_id"], claim.run_id, reason)
        _insert(cur, claim)
        _event(cur, "acquired", claim.run_id, None, None)
        return {"acquired": True, "previous": held, "event": event, "reason": reason}


def release(conn: Connection, run_id: str) -> bool:
    """Give the lease up; False when this run did not hold it (any more)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT to_regclass('pgrollout.lease') IS NOT NULL")
        if not cur.fetchone()[0]:
            return False
        cur.execute("DELETE FROM pgrollout.lease WHERE run_id = %s RETURNING run_id", (run_id,))
        released = cur.fetchone() is not None
        if released:
            _event(cur, "released", run_id, None, None)
        return released


def check(cur: Cursor, run_id: str) -> None:
    """Inside a transaction that changes the target: the lease must be this run's.

    FOR KEY SHARE keeps the row (a break or release deletes it) until this
    transaction ends, without blocking heartbeats.
    """
    cur.execute("SELECT to_regclass('pgrollout.lease') IS NOT NULL")
    found = None
    if cur.fetchone()[0]:
        cur.execute("SELECT run_id FROM pgrollout.lease FOR KEY SHARE")
        found = cur.fetchone()
    if found is None or found[0] != run_id:
        raise LeaseError(
            f"run {run_id} does not hold the run lease on this database "
            f"({'held by run ' + found[0] if found else 'no lease is held'}): it was released, broken or "
            "never taken. Nothing more was changed; start a new run.")


def beat(conn: Connection, run_id: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("UPDATE pgrollout.lease SET heartbeat_at = now() WHERE run_id = %s RETURNING 1", (run_id,))
        return cur.fetchone() is not None


@contextlib.contextmanager
def heartbeat(params: dict[str, Any], run_id: str | None, interval: float) -> Iterator[None]:
    """Renew the lease every `interval` seconds from a connection of its own while a long step runs."""
    if not run_id:
        yield
        return
    from .connection import connect

    stop = threading.Event()

    def loop() -> None:
        try:
            with connect(params, autocommit=True) as conn:
                while not stop.wait(interval):
                    beat(conn, run_id)
        except Exception:  # noqa: BLE001 - a lost heartbeat shows as a lapsed lease, never as a crash here
            return

    thread = threading.Thread(target=loop, name="pgrollout-lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
