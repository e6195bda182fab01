"""Concurrent sessions for lock tests and the lock-safety benchmark: a blocker, timed readers."""
from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from pgrollout import connection


class Blocker:
    """A session that holds a lock on a table inside an open transaction until released."""

    def __init__(self, params: dict[str, Any], table: str, mode: str = "ACCESS SHARE", name: str = "test-blocker"):
        self.params = dict(params, connect_params={"application_name": name})
        self.table, self.mode = table, mode
        self.ready, self.done = threading.Event(), threading.Event()
        self.pid: int | None = None
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        with connection.connect(self.params) as conn:
            self.pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            conn.execute(f"LOCK TABLE {self.table} IN {self.mode} MODE")
            self.ready.set()
            self.done.wait(120)
            conn.rollback()

    def __enter__(self) -> Blocker:
        self.thread.start()
        assert self.ready.wait(10), "the blocker could not take its lock"
        return self

    def release(self) -> None:
        self.done.set()
        self.thread.join(10)

    def release_after(self, seconds: float) -> None:
        threading.Timer(seconds, self.release).start()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def kill_when_queued(self, proc: Any) -> None:
        """SIGKILL `proc` (an ansible-playbook) once a session of its run waits for this blocker's lock,
        then let the lock go: what the orphaned module does next is the test."""
        import os
        import signal

        with connection.connect(self.params, autocommit=True) as conn:
            while not conn.execute("SELECT pid FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                                   (self.table,)).fetchall():
                assert proc.poll() is None, proc.communicate()[0][-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.release()


class Readers:
    """Threads that run a short query on a table in a loop and record how long each took."""

    def __init__(self, params: dict[str, Any], sql: str, count: int = 2):
        self.params, self.sql = params, sql
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(count)]

    def _loop(self) -> None:
        with connection.connect(dict(self.params, connect_params={"application_name": "test-reader"}),
                                autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    conn.execute(self.sql)
                except psycopg.Error as exc:
                    self.errors.append(f"{exc.sqlstate}: {exc}")
                self.latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    @property
    def longest(self) -> float:
        return max(self.latencies, default=0.0)
