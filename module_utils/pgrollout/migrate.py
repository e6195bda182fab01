"""Apply one migration file (forward or rollback) in one transaction, with its ledger entry.

Either every statement and the ledger row commit together, or nothing does.
Every lock the migration needs on existing tables is taken up front, within
lock_timeout; on a lock timeout the whole transaction is retried with backoff,
and each attempt and the sessions that blocked it are reported. Check mode runs
the very same transaction and rolls it back, reporting locks and schema change.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import checks as checks_mod
from . import ledger, locks, retry, schema
from .sqlfile import NO_TRANSACTION_MARKER, MigrationFile, Statement, position_to_line

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor

strongest_locks = locks.strongest_locks


@dataclass
class Options:
    lock_timeout: str = "5s"
    statement_timeout: str = "5min"
    retry: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)
    lock_wait: float = 0.0  # seconds to wait for another pgrollout run to finish
    check_mode: bool = False
    run_id: str | None = None
    accept_drift: dict[str, str] = field(default_factory=dict)  # version -> reason
    checks: list[dict[str, Any]] | None = None


class MigrationError(Exception):
    """A migration that failed; the message points at file, statement and line."""

    def __init__(self, message: str, details: dict[str, Any]):
        super().__init__(message)
        self.details = details


class _DryRunDone(Exception):
    """Raised inside the transaction to roll back a check-mode run."""


# Tables by OID, so the locks on a table the migration dropped can still be named.
TABLES_SQL = """
SELECT c.oid::bigint, n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'supabase_migrations', 'pgrollout')
"""
HELD_SQL = """
SELECT relation::bigint, mode FROM pg_locks
WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted AND database = (
  SELECT oid FROM pg_database WHERE datname = current_database())
"""


def held_locks(cur: Cursor, names_before: dict[int, str]) -> list[dict[str, str]]:
    """Strongest lock per user table this transaction holds, dropped tables included."""
    cur.execute(TABLES_SQL)
    names = {**names_before, **dict(cur.fetchall())}
    cur.execute(HELD_SQL)
    return strongest_locks([(names[oid], mode) for oid, mode in cur.fetchall() if oid in names])


def statement_error(mf: MigrationFile, stmt: Statement, exc: Exception, applied_note: str) -> MigrationError:
    diag = getattr(exc, "diag", None)
    position = getattr(diag, "statement_position", None)
    line = position_to_line(stmt, int(position) if position else None)
    sqlstate = getattr(exc, "sqlstate", None) or "?????"
    primary = getattr(diag, "message_primary", None) or str(exc).strip()
    details = {"file": mf.path, "line": line, "statement_number": stmt.number,
               "statement": stmt.text[:500], "sqlstate": sqlstate, "error": primary}
    message = (f"{mf.path}:{line}: statement {stmt.number} failed with SQLSTATE {sqlstate}: "
               f"{primary}. {applied_note}")
    return MigrationError(message, details)


def take_rollout_lock(cur: Cursor, wait_seconds: float, session: bool = False) -> None:
    """pgrollout's advisory lock: one run per database. Waits up to `wait_seconds`."""
    function = "pg_try_advisory_lock" if session else "pg_try_advisory_xact_lock"
    deadline = time.monotonic() + wait_seconds
    while True:
        cur.execute(f"SELECT {function}(%s)", (ledger.ADVISORY_LOCK_KEY,))
        if cur.fetchone()[0]:
            return
        if time.monotonic() >= deadline:
            holder = ledger.lock_holder(cur) or {}
            raise MigrationError(
                "another pgrollout run holds the rollout lock on this database "
                f"(pid {holder.get('pid')}, application {holder.get('application_name')!r}, "
                f"user {holder.get('user')}, connected since {holder.get('backend_start')}); "
                f"waited {wait_seconds:g}s. Wait for it to finish, then run again",
                {"lock_holder": holder})
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))


def check_drift(mf: MigrationFile, entry: ledger.Applied, forward_checksum: str,
                accept_drift: dict[str, str]) -> str | None:
    """None when the applied record matches; the accepted reason; or MigrationError."""
    if not entry.checksum or entry.checksum == forward_checksum:
        return None
    if mf.version in accept_drift:
        return accept_drift[mf.version] or "no reason given"
    raise MigrationError(
        f"{mf.path}: migration {mf.version} was applied with checksum {entry.checksum} "
        f"but the file now has checksum {forward_checksum}. An applied migration must not be "
        "edited: restore the file, or ship the change as a new migration (to accept the edit, "
        "name the version in accept_drift with a reason).",
        {"applied_checksum": entry.checksum, "file_checksum": forward_checksum})


def _lock_failure(exc: Exception, resolved: list[tuple[str, str, str]], lock_timeout: str) -> retry.LockTimeout:
    names = ", ".join(f"{plain} ({mode})" for _, plain, mode in resolved)
    error = MigrationError(
        f"could not take the migration's locks within lock_timeout {lock_timeout}: {names}. "
        "Nothing was applied.",
        {"sqlstate": getattr(exc, "sqlstate", None), "error": str(exc).strip()})
    return retry.LockTimeout(error, {"sqlstate": getattr(exc, "sqlstate", None)})


def _run_statements(conn: Connection, cur: Cursor, mf: MigrationFile, opts: Options,
                    plan: dict[str, str]) -> tuple[dict[str, Any], Any]:
    import psycopg

    resolved = locks.resolve(cur, plan)
    try:
        with conn.transaction():
            locks.take_all(cur, resolved, opts.lock_timeout)
    except psycopg.errors.LockNotAvailable as exc:
        raise _lock_failure(exc, resolved, opts.lock_timeout) from exc
    except psycopg.errors.QueryCanceled as exc:  # statement_timeout of the combined LOCK
        raise _lock_failure(exc, resolved, opts.lock_timeout) from exc
    before = schema.snapshot(cur)
    cur.execute(TABLES_SQL)
    names_before = dict(cur.fetchall())
    started = time.monotonic()
    for stmt in mf.statements:
        try:
            cur.execute(stmt.text, prepare=False)
        except psycopg.Error as exc:
            error = statement_error(mf, stmt, exc, "Nothing was applied: the transaction was rolled back.")
            if exc.sqlstate in locks.LOCK_TIMEOUT_STATES:
                raise retry.LockTimeout(error, {"sqlstate": exc.sqlstate, "statement_number": stmt.number}) from exc
            raise error from exc
    duration_ms = int((time.monotonic() - started) * 1000)
    return {"duration_ms": duration_ms, "locks": held_locks(cur, names_before)}, before


def _attempt(conn: Connection, mf: MigrationFile, opts: Options, direction: str,
             forward_checksum: str, plan: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {"version": mf.version, "name": mf.name, "direction": direction,
                              "checksum": mf.checksum, "path": mf.path, "dry_run": opts.check_mode}
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                        (opts.lock_timeout, opts.statement_timeout))
            take_rollout_lock(cur, opts.lock_wait)
            entry = ledger.read(cur).get(mf.version)
            if direction == "down" and entry is None:
                return {**result, "changed": False, "statements": 0, "msg": f"migration {mf.version} is not applied"}
            if direction == "up" and entry is not None:
                reason = check_drift(mf, entry, forward_checksum, opts.accept_drift)
                if reason is None:
                    known = "" if entry.checksum else " (recorded by another tool, checksum unknown)"
                    return {**result, "changed": False, "statements": 0,
                            "msg": f"migration {mf.version} is already applied{known}"}
                ledger.record(cur, version=mf.version, name=mf.name, statements=[], checksum=forward_checksum,
                              direction="drift_accepted", duration_ms=0, run_id=opts.run_id, note=reason)
                result.update(changed=True, statements=0, drift_accepted=reason,
                              msg=f"accepted the edited file of applied migration {mf.version}: {reason}")
                if opts.check_mode:
                    raise _DryRunDone()
                return result
            ran, before = _run_statements(conn, cur, mf, opts, plan)
            after = schema.snapshot(cur)
            ledger.ensure(cur)
            ledger.record(cur, version=mf.version, name=mf.name, statements=[s.text for s in mf.statements],
                          checksum=forward_checksum, direction=direction, duration_ms=ran["duration_ms"],
                          run_id=opts.run_id)
            if opts.checks:
                _verify_in_transaction(conn, mf, opts.checks, result)
            changes = schema.diff(before, after)
            touched = {n for kind in changes.values() for group in kind.values() for n in group}
            verb = "applied" if direction == "up" else "rolled back"
            result.update(
                changed=True, statements=len(mf.statements), schema_changes=changes, **ran,
                diff={"before": schema.render(before, touched), "after": schema.render(after, touched),
                      "before_header": f"{mf.version} not applied" if direction == "up" else mf.version,
                      "after_header": mf.path},
                msg=f"{'dry run: ' if opts.check_mode else ''}{verb} {mf.version}_{mf.name}"
                + (" and rolled back the transaction" if opts.check_mode else ""))
            if opts.check_mode:
                raise _DryRunDone()
    except _DryRunDone:
        pass
    return result


def _verify_in_transaction(conn: Connection, mf: MigrationFile, checks: list[dict[str, Any]],
                           result: dict[str, Any]) -> None:
    results = checks_mod.run(conn, checks)
    result["checks"], result["checks_summary"] = results, checks_mod.table(results)
    failed = checks_mod.failures(results)
    if failed:
        raise MigrationError(
            f"{mf.path}: {len(failed)} verification check(s) failed inside the transaction "
            f"({', '.join(r['name'] for r in failed)}); nothing was committed",
            {"file": mf.path, "checks": results})


def blockers_report(conn: Connection, plan: dict[str, str]) -> list[dict[str, Any]]:
    """Sessions holding locks on the planned tables, read in a transaction of its own."""
    with conn.transaction(), conn.cursor() as cur:
        resolved = locks.resolve(cur, plan)
        return locks.holders(cur, [plain for _, plain, _ in resolved])


def apply(conn: Connection, mf: MigrationFile, options: Options | None = None, *, direction: str = "up",
          forward_checksum: str | None = None) -> dict[str, Any]:
    """Apply `mf`. For direction 'down' pass the forward file's checksum (the history records it)."""
    opts = options or Options()
    if not mf.transactional:
        from .steps import apply_steps
        return apply_steps(conn, mf, opts)
    nontx = mf.non_transactional()
    if nontx:
        first = nontx[0]
        raise MigrationError(
            f"{mf.path}:{first.line}: statement {first.number} ({first.kind[1:]}) cannot run inside "
            "a transaction. Ship it in a migration file of its own whose first line is "
            f"'{NO_TRANSACTION_MARKER}': its statements then run one by one with the same timeouts, "
            "and a failed run resumes after the last statement that succeeded.",
            {"file": mf.path, "line": first.line, "statement_number": first.number})
    plan = locks.lock_plan(mf.statements)
    attempts: list[dict[str, Any]] = []

    def on_timeout(timeout: retry.LockTimeout) -> dict[str, Any]:
        return {**timeout.details, "blockers": blockers_report(conn, plan)}

    try:
        result = retry.run(lambda: _attempt(conn, mf, opts, direction, forward_checksum or mf.checksum, plan),
                           opts.retry, on_timeout, attempts)
    except MigrationError as exc:
        exc.details["attempts"] = attempts
        if attempts and attempts[-1]["outcome"] == "lock_timeout":
            exc.args = (f"{exc} Gave up after {len(attempts)} attempt(s) on lock timeouts; "
                        f"blocking sessions: {_describe(attempts[-1].get('blockers', []))}",)
        raise
    result["attempts"] = attempts
    return result


def _describe(blockers: list[dict[str, Any]]) -> str:
    if not blockers:
        return "none left when checked"
    return "; ".join(f"pid {b['pid']} ({b['application_name'] or 'no application_name'}, {b['state']}, "
                     f"in transaction {b['transaction_seconds']}s, holding {b['locks']})" for b in blockers)
