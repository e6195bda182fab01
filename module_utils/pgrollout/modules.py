"""What every module does with results and errors: no traceback, no internal fields."""
from __future__ import annotations

from typing import Any


def describe(exc: Exception, doing: str) -> str:
    """A clear one-line message for an unexpected error (a database error names its SQLSTATE)."""
    sqlstate = getattr(exc, "sqlstate", None)
    text = str(exc).strip() or type(exc).__name__
    if sqlstate:
        return f"database error while {doing}: SQLSTATE {sqlstate}: {text}"
    if type(exc).__module__.startswith("psycopg"):
        return f"database connection error while {doing}: {text} (is the server up and reachable?)"
    return f"unexpected error while {doing}: {type(exc).__name__}: {text}"


def public(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not k.startswith("_") and k != "diff"}


def changed_versions(results: list[dict[str, Any]]) -> list[str]:
    return [r["version"] for r in results if r.get("changed") and not r.get("dry_run")
            and not r.get("drift_accepted") and not r.get("failed")]
