"""What a running pg_migrate is doing, as one progress line (progress.py) at each poll of its async job.

The file and statement it runs (and the attempt, after lock timeouts) come from the run itself (`Now`);
what the server does with it is read from a second connection: a CREATE INDEX's phase and share of the
work done (pg_stat_progress_create_index), or the lock it waits for and the sessions holding it
(pg_blocking_pids), with how long they have held it and what they run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

_SESSION_SQL = """
SELECT a.wait_event_type, a.wait_event, extract(epoch FROM now() - a.query_start)::int,
       pg_blocking_pids(a.pid), p.command, p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total,
       p.lockers_done, p.lockers_total
FROM pg_stat_activity a LEFT JOIN pg_stat_progress_create_index p ON p.pid = a.pid
WHERE a.pid = %s
"""
BLOCKERS_SQL = """
SELECT pid, coalesce(nullif(application_name, ''), usename::text, '?'), state,
       extract(epoch FROM now() - coalesce(xact_start, state_change))::int,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 60)
FROM pg_stat_activity WHERE pid = ANY(%s) ORDER BY pid
"""


@dataclass
class Now:
    """Where the run is: set by pg_migrate as it goes (read by the progress thread)."""

    file: str = ""
    statement: int = 0
    statements: int = 0
    attempt: int = 1
    attempts: int = 1
    backend_pid: int = 0

    def trying(self, attempt: int, attempts: int) -> None:
        """retry.run's on_attempt: which try of how many (after lock timeouts)."""
        self.attempt, self.attempts = attempt, attempts

    def at(self, path: str, statement: int, statements: int) -> None:
        self.file, self.statement, self.statements = os.path.basename(path), statement, statements

    def said(self) -> str:
        if not self.file:
            return "migrate: starting"
        doing = (f"statement {self.statement} of {self.statements}" if self.statement
                 else f"taking its locks ({self.statements} statements)")
        return f"migrate: {self.file}, {doing}" + (
            f", attempt {self.attempt} of {self.attempts}" if self.attempt > 1 else "")


def reading_said(paths: list[str], parsed: Any = ()) -> str:
    """The line while pg_migrate reads and parses the run's files (a big file takes seconds); those in
    `parsed` come with the preflight's parse."""
    sizes = [os.path.getsize(x) if os.path.exists(x) else 0 for x in paths]
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    named = ", ".join(os.path.basename(x) for x in paths[:3]) + more
    doing = "reading (as the preflight parsed them)" if paths and all(x in parsed for x in paths) \
        else "reading and parsing"
    return f"migrate: {doing} {named} ({sum(sizes) / 1048576:.1f} MB)"


def _share(done: Any, total: Any, unit: str) -> str:
    return f"{done} of {total} {unit} ({100 * done // total}%)" if total else ""


def index_said(command: str, phase: str, blocks: tuple[Any, Any], tuples: tuple[Any, Any],
               lockers: tuple[Any, Any]) -> str:
    work = _share(*blocks, "blocks") or _share(*tuples, "tuples") or _share(*lockers, "lockers")
    return f"{command}: {phase}" + (f", {work}" if work else "")


def blockers_said(rows: list[tuple[Any, ...]]) -> str:
    """The sessions holding what a statement waits for: pid, who, how long in their transaction, what."""
    return ", ".join(f"pid {pid} ({app}, {state}, in its transaction {seconds} s: {query})"
                     for pid, app, state, seconds, query in rows)


class SessionWatch:
    """Reads what a session waits for on a connection of its own, opened at the first look (only under
    async): pg_migrate's and a target restore's progress lines."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params, self.conn = params, None

    def _connection(self) -> Any:
        if self.conn is None:
            from .connection import connect

            self.conn = connect(self.params, autocommit=True)
        return self.conn

    def holders(self, blocking: list[int]) -> str:
        """The sessions of `blocking` (pids): who, in which state, how long in their transaction, what."""
        return blockers_said(self._connection().execute(BLOCKERS_SQL, [blocking]).fetchall())

    def waiting(self, backend: int | None) -> str:
        """'; waiting for a lock held by pid N (...)' while `backend` waits for a lock, else ''."""
        if not backend:
            return ""
        (blocking,) = self._connection().execute("SELECT pg_blocking_pids(%s)", [backend]).fetchone()
        return f"; waiting for a lock held by {self.holders(blocking)}" if blocking else ""

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class ApplyWatch(SessionWatch):
    """`line()` for progress.Progress: the run's place, a CREATE INDEX's phase, the lock it waits for."""

    def __init__(self, params: dict[str, Any], now: Now) -> None:
        super().__init__(params)
        self.now = now

    def line(self) -> str:
        said = self.now.said()
        if not self.now.backend_pid:
            return said
        row = self._connection().execute(_SESSION_SQL, [self.now.backend_pid]).fetchone()
        if not row:
            return said
        wait_type, wait_event, seconds, blocking, command, phase = row[:6]
        if command:
            said += "; " + index_said(command, phase, row[6:8], row[8:10], row[10:12])
        if wait_type == "Lock" and blocking:
            said += (f"; the statement has run {seconds} s, waiting for a lock ({wait_event}) held by "
                     f"{self.holders(blocking)}")
        return said
