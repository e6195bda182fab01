"""Non-transactional migrations: files whose first line is '-- pgrollout: no-transaction'.

For statements PostgreSQL refuses inside a transaction (CREATE INDEX
CONCURRENTLY, VACUUM, ...). Each statement runs on its own, with the same
timeouts and lock-timeout retries, and is recorded in pgrollout.steps when it
succeeded, so a failed run resumes after the last statement that succeeded.
The ledger entry is written once every statement has run. Such a file cannot
be dry-run: check mode reports what it would run and runs nothing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import ledger, locks, retry
from .migrate import MigrationError, Options, check_drift, statement_error, take_rollout_lock
from .sqlfile import MigrationFile, Statement

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor


def _run_step(cur: Cursor, mf: MigrationFile, stmt: Statement) -> None:
    import psycopg

    try:
        cur.execute(stmt.text, prepare=False)
    except psycopg.Error as exc:
        note = (f"Statements before {stmt.number} are applied and recorded; fix the cause and run again "
                f"to resume at statement {stmt.number}.")
        if stmt.kind == "!IndexStmt":
            note += " A failed CREATE INDEX CONCURRENTLY leaves an INVALID index: drop it first."
        error = statement_error(mf, stmt, exc, note)
        if exc.sqlstate in locks.LOCK_TIMEOUT_STATES:
            raise retry.LockTimeout(error, {"sqlstate": exc.sqlstate, "statement_number": stmt.number}) from exc
        raise error from exc
    ledger.record_step(cur, mf.version, mf.checksum, stmt.number)


def _pending_steps(cur: Cursor, mf: MigrationFile) -> list[Statement]:
    done = ledger.steps_done(cur, mf.version)
    stale = {n for n, c in done.items() if c != mf.checksum}
    if stale:
        raise MigrationError(
            f"{mf.path}: an earlier run applied statements {sorted(stale)} of a different version of this "
            "file (checksum changed). Restore the file as it was, or finish by hand and clear "
            f"pgrollout.steps for version {mf.version}.",
            {"file": mf.path, "stale_steps": sorted(stale)})
    return [s for s in mf.statements if s.number not in done]


def apply_steps(conn: Connection, mf: MigrationFile, opts: Options) -> dict[str, Any]:
    result: dict[str, Any] = {"version": mf.version, "name": mf.name, "direction": "up", "path": mf.path,
                              "checksum": mf.checksum, "dry_run": opts.check_mode, "transactional": False}
    if opts.check_mode:
        return {**result, "changed": True, "statements": 0, "dry_runnable": False,
                "msg": f"not dry-runnable: {mf.path} is marked non-transactional; it would run "
                       f"{len(mf.statements)} statement(s) one by one"}
    was_autocommit = conn.autocommit
    conn.autocommit = True
    attempts: list[dict[str, Any]] = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                        (opts.lock_timeout, opts.statement_timeout))
            take_rollout_lock(cur, opts.lock_wait, session=True)
            try:
                with conn.transaction():
                    ledger.ensure(cur)
                    entry = ledger.read(cur).get(mf.version)
                if entry is not None:
                    check_drift(mf, entry, mf.checksum, {})
                    return {**result, "changed": False, "statements": 0,
                            "msg": f"migration {mf.version} is already applied"}
                pending = _pending_steps(cur, mf)
                for stmt in pending:
                    retry.run(lambda s=stmt: _run_step(cur, mf, s), opts.retry,
                              lambda t: dict(t.details), attempts)
                with conn.transaction():
                    ledger.record(cur, version=mf.version, name=mf.name,
                                  statements=[s.text for s in mf.statements], checksum=mf.checksum,
                                  direction="up", duration_ms=sum(a["elapsed_ms"] for a in attempts),
                                  run_id=opts.run_id)
                    ledger.clear_steps(cur, mf.version)
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (ledger.ADVISORY_LOCK_KEY,))
    except MigrationError as exc:
        exc.details["attempts"] = attempts
        raise
    finally:
        conn.autocommit = was_autocommit
    resumed = len(mf.statements) - len(pending)
    return {**result, "changed": True, "statements": len(pending), "attempts": attempts,
            "msg": f"applied {mf.version}_{mf.name} statement by statement"
                   + (f" (resumed: {resumed} already done)" if resumed else "")}
