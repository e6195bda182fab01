"""Timeout settings checked before connecting: a bound must be a bound."""
from __future__ import annotations

import re

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|min|h|d)?\s*$")


class TimeoutSettingError(ValueError):
    """A timeout that is not a PostgreSQL duration, or that is zero (unbounded)."""


def seconds(value: str | int | float, name: str) -> float:
    """Seconds of a PostgreSQL duration ('2s', '500ms', '5min'; a bare number is milliseconds)."""
    match = _RE.match(str(value))
    if not match:
        raise TimeoutSettingError(
            f"{name} {value!r} is not a duration: write a number with a unit (us, ms, s, min, h, d), e.g. 2s")
    number, unit = float(match.group(1)), match.group(2) or "ms"
    result = number * _UNITS[unit]
    if result <= 0:
        raise TimeoutSettingError(
            f"{name} {value!r} means no limit at all: pgrollout needs a bound (e.g. 2s for lock_timeout, "
            "30min for a long statement)")
    return result


def check(**settings: str) -> None:
    for name, value in settings.items():
        seconds(value, name)


def check_settings(settings: dict[str, object]) -> None:
    """The run's settings that need a range, checked before anything runs: durations bounded, counts positive.

    Keys are the pgrollout_* variable names, so the message names what to change."""
    for name, value in settings.items():
        if name.endswith("_timeout"):
            seconds(value, name)  # type: ignore[arg-type]
        elif name in ("pgrollout_lease_ttl", "pgrollout_lock_retries", "pgrollout_backup_keep",
                      "pgrollout_max_migration_mb"):
            minimum = 0 if name in ("pgrollout_lock_retries", "pgrollout_max_migration_mb") else 1
            try:
                number = int(str(value))
            except ValueError:
                raise TimeoutSettingError(f"{name} {value!r} is not a whole number") from None
            if number < minimum:
                raise TimeoutSettingError(f"{name} {value!r} must be at least {minimum}")
