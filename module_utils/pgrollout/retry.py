"""Retrying an action that failed on a lock timeout: exponential backoff with jitter."""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RetryPolicy:
    retries: int = 5  # attempts after the first
    delay: float = 1.0  # seconds before the first retry
    max_delay: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        """Seconds to sleep after failed attempt `attempt` (1-based): half fixed, half random."""
        ceiling = min(self.max_delay, self.delay * 2 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


class LockTimeout(Exception):
    """Raised by an action that could not get its locks in time; carries what to record."""

    def __init__(self, error: Exception, details: dict[str, Any]):
        super().__init__(str(error))
        self.error, self.details = error, details


def run(action: Callable[[], Any], policy: RetryPolicy, on_timeout: Callable[[LockTimeout], dict[str, Any]],
        attempts: list[dict[str, Any]], sleep: Callable[[float], None] = time.sleep,
        on_attempt: Callable[[int, int], None] | None = None) -> Any:
    """Call `action` until it does not raise LockTimeout, at most 1 + policy.retries times.

    Each attempt is appended to `attempts`. After the last one the LockTimeout's
    original error is raised, with the attempts in its details. `on_attempt(n, of)`
    is told each attempt before it starts (the progress line's "attempt n of m").
    """
    attempt = 0
    while True:
        attempt += 1
        if on_attempt is not None:
            on_attempt(attempt, policy.retries + 1)
        started = time.monotonic()
        try:
            result = action()
        except LockTimeout as timeout:
            entry = {"attempt": attempt, "outcome": "lock_timeout",
                     "elapsed_ms": int((time.monotonic() - started) * 1000), **on_timeout(timeout)}
            attempts.append(entry)
            if attempt > policy.retries:
                raise timeout.error from timeout
            entry["retry_in_ms"] = int(policy.backoff(attempt) * 1000)
            sleep(entry["retry_in_ms"] / 1000)
            continue
        attempts.append({"attempt": attempt, "outcome": "done",
                         "elapsed_ms": int((time.monotonic() - started) * 1000)})
        return result
