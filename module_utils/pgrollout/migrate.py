"""The engine: apply a run's plan (ordered files, one direction) on one connection.

Real run: each transactional file in its own transaction (or, with
single_transaction, all of them in one), stopping at the first failure. In a
file's transaction: the run lease is checked, every lock it needs on existing
tables is taken up front within lock_timeout (retried with backoff on a lock
timeout), its statements run, its ledger rows are written and its spec's checks
run; then, if the ansible-playbook that started us is still alive, COMMIT.
Non-transactional files run statement by statement (steps.py).

Dry run (check mode): every transactional file of the plan in ONE transaction,
in order, a savepoint per file, so a file sees what earlier files created; each
file's spec runs; locks and schema change are reported per file; then ROLLBACK.
A statement that outlives the dry run's statement_timeout is reported as what
it is: a lock held for longer than that.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import checks as checks_mod
from . import lease, ledger, locks, retry, schema
from .applying import Now
from .controller import ControllerWatch
from .sqlfile import MigrationFile, Statement, control_notes, position_to_line

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor

strongest_locks = locks.strongest_locks
CANCELLED = "57014"
# admin_shutdown, crash_shutdown, cannot_connect_now: the server ended the session
CONNECTION_ENDED = ("57P01", "57P02", "57P03")


@dataclass
class Options:
    lock_timeout: str = "5s"
    statement_timeout: str = "5min"
    retry: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)
    lock_wait: float = 0.0  # seconds to wait for the advisory lock of another pgrollout session
    check_mode: bool = False
    run_id: str | None = None
    accept_drift: dict[str, str] = field(default_factory=dict)  # version -> reason
    single_transaction: bool = False
    dry_run_statement_timeout: str = "10s"
    require_lease: bool = False  # check, in every transaction, that run_id holds the run lease
    controller: ControllerWatch | None = None
    now: Now = field(default_factory=Now)  # where the run is, for its progress line (applying.py)


@dataclass
class Item:
    """One file of the plan: what to run, in which direction, with which checks."""

    file: MigrationFile
    direction: str = "up"
    forward_checksum: str | None = None  # for down: the forward file's, recorded in the history
    checks: list[dict[str, Any]] | None = None
    spec: str | None = None

    @property
    def number(self) -> int:
        return int(self.file.version)

    def base(self, opts: Options) -> dict[str, Any]:
        mf = self.file
        return {"version": mf.version, "name": mf.name, "direction": self.direction, "checksum": mf.checksum,
                "path": mf.path, "dry_run": opts.check_mode, "transactional": mf.transactional,
                "spec": self.spec}


class MigrationError(Exception):
    """A migration that failed; the message points at file, statement and line."""

    def __init__(self, message: str, details: dict[str, Any]):
        super().__init__(message)
        self.details = details


class TooSlowForDryRun(Exception):
    """A statement cancelled by the dry run's statement_timeout."""

    def __init__(self, result: dict[str, Any]):
        super().__init__(result["msg"])
        self.result = result


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


def held_locks(cur: Cursor, names_before: dict[int, str],
               held_before: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Strongest lock per user table this transaction holds, dropped tables included.

    With `held_before` (a dry run of several files in one transaction), only
    the locks this file took or made stronger.
    """
    cur.execute(TABLES_SQL)
    held = _held(cur, {**names_before, **dict(cur.fetchall())})
    if not held_before:
        return held
    return [lk for lk in held if lk["relation"] not in held_before
            or locks.PLAN_STRENGTH.index(lk["mode"]) > locks.PLAN_STRENGTH.index(held_before[lk["relation"]])]


def _held(cur: Cursor, names: dict[int, str]) -> list[dict[str, str]]:
    cur.execute(HELD_SQL)
    return strongest_locks([(names[oid], mode) for oid, mode in cur.fetchall() if oid in names])


def _file_locks(taken: list[dict[str, str]], resolved: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """What this file holds: the locks it took, and those of its plan that the transaction held already."""
    rows = [(lk["relation"], lk["mode"]) for lk in taken] + [(f"{s}.{n}", mode) for s, n, mode in resolved]
    return strongest_locks(rows)


def statement_error(mf: MigrationFile, stmt: Statement, exc: Exception, applied_note: str) -> MigrationError:
    diag = getattr(exc, "diag", None)
    position = getattr(diag, "statement_position", None)
    line = position_to_line(stmt, int(position) if position else None)
    sqlstate = getattr(exc, "sqlstate", None)
    primary = getattr(diag, "message_primary", None) or str(exc).strip()
    details = {"file": mf.path, "line": line, "statement_number": stmt.number,
               "statement": stmt.text[:500], "sqlstate": sqlstate, "error": primary}
    if sqlstate is None or sqlstate.startswith("08") or sqlstate in CONNECTION_ENDED:
        # the session is gone (no answer at all, or the server ended it): not an error of the statement
        details["connection_lost"] = True
        message = (f"{mf.path}:{line}: lost the connection to the server while statement {stmt.number} ran "
                   f"(the server restarted, or the session was terminated{f'; SQLSTATE {sqlstate}' if sqlstate else ''}"
                   f"): {primary}. {applied_note} Check the server, then run again.")
        return MigrationError(message, details)
    message = (f"{mf.path}:{line}: statement {stmt.number} failed with SQLSTATE {sqlstate}: "
               f"{primary}. {applied_note}")
    return MigrationError(message, details)


def take_rollout_lock(cur: Cursor, wait_seconds: float, session: bool = False) -> None:
    """pgrollout's advisory lock, held for one commit. Waits up to `wait_seconds`."""
    function = "pg_try_advisory_lock" if session else "pg_try_advisory_xact_lock"
    deadline = time.monotonic() + wait_seconds
    while True:
        cur.execute(f"SELECT {function}(%s)", (ledger.ADVISORY_LOCK_KEY,))
        if cur.fetchone()[0]:
            return
        if time.monotonic() >= deadline:
            holder = ledger.lock_holder(cur) or {}
            raise MigrationError(
                "another pgrollout session is committing on this database "
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
    for version, reason in accept_drift.items():
        if str(version).isdigit() and int(version) == int(mf.version):
            return reason or "no reason given"
    raise MigrationError(
        f"{mf.path}: migration {mf.version} was applied with checksum {entry.checksum} "
        f"but the file now has checksum {forward_checksum}. An applied migration must not be "
        "edited: restore the file, or ship the change as a new migration (to accept the edit, "
        "name the version in accept_drift with a reason).",
        {"applied_checksum": entry.checksum, "file_checksum": forward_checksum})


def before_commit(opts: Options) -> None:
    if opts.controller is not None and not opts.controller.alive():
        raise MigrationError(
            "the ansible-playbook that started this run is gone (killed?): rolled back instead of committing. "
            "Nothing of this file was applied; run again.", {"controller_gone": True})


def begin(cur: Cursor, opts: Options, statement_timeout: str) -> None:
    """Session settings of a migration transaction, its advisory lock and the lease check."""
    cur.execute("SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                (opts.lock_timeout, statement_timeout))
    if opts.check_mode:
        return
    take_rollout_lock(cur, opts.lock_wait)
    if opts.require_lease:
        try:
            lease.check(cur, opts.run_id or "")
        except lease.LeaseError as exc:
            raise MigrationError(str(exc), {"lease": True}) from exc


def _lock_failure(exc: Exception, resolved: list[tuple[str, str, str]], lock_timeout: str) -> retry.LockTimeout:
    names = ", ".join(f"{s}.{n} ({mode})" for s, n, mode in resolved)
    error = MigrationError(
        f"could not take the migration's locks within lock_timeout {lock_timeout}: {names}. "
        "Nothing was applied.",
        {"sqlstate": getattr(exc, "sqlstate", None), "error": str(exc).strip()})
    return retry.LockTimeout(error, {"sqlstate": getattr(exc, "sqlstate", None)})


def _too_slow(item: Item, opts: Options, stmt: Statement, resolved: list[tuple[str, str, str]]) -> TooSlowForDryRun:
    held = ", ".join(f"{m} on {s}.{n}" for s, n, m in resolved) or "its locks"
    msg = (f"dry run: {item.file.path}:{stmt.line}: statement {stmt.number} would hold {held} for more than "
           f"{opts.dry_run_statement_timeout} (cancelled at the dry run's statement_timeout; an index build "
           "or a table rewrite?). The real run holds these locks that long: plan for it, or make the "
           "change online (CREATE INDEX CONCURRENTLY in a non-transactional file, NOT VALID + VALIDATE, ...)")
    return TooSlowForDryRun({**item.base(opts), "changed": True, "statements": stmt.number - 1,
                             "too_slow_to_dry_run": True, "msg": msg,
                             "locks": [{"relation": f"{s}.{n}", "mode": m} for s, n, m in resolved]})


def skip_or_drift(cur: Cursor, item: Item, opts: Options, entry: ledger.Applied | None) -> dict[str, Any] | None:
    """The result when the file needs no run (applied already / not applied), or after recording accepted drift.

    `entry` is the file's version in the ledger (None: not applied), read by the caller in this transaction.
    """
    mf = item.file
    result = item.base(opts)
    if item.direction == "down":
        if entry is None:
            return {**result, "changed": False, "statements": 0, "msg": f"migration {mf.version} is not applied"}
        return None
    if entry is None:
        return None
    reason = check_drift(mf, entry, item.forward_checksum or mf.checksum, opts.accept_drift)
    if reason is None:
        known = "" if entry.checksum else " (recorded by another tool, checksum unknown)"
        return {**result, "changed": False, "statements": 0, "msg": f"migration {mf.version} is already applied{known}"}
    ledger.record(cur, version=mf.version, name=mf.name, statements=[], checksum=mf.checksum,
                  direction="drift_accepted", duration_ms=0, run_id=opts.run_id, note=reason,
                  applied_version=entry.version)
    return {**result, "changed": True, "statements": 0, "drift_accepted": reason,
            "msg": f"accepted the edited file of applied migration {mf.version}: {reason}"}


def run_file(conn: Connection, cur: Cursor, item: Item, opts: Options) -> dict[str, Any]:
    """Inside an open transaction (or savepoint): locks, statements, ledger rows, checks."""
    import psycopg

    mf = item.file
    entry = ledger.read(cur).get(item.number)
    skipped = skip_or_drift(cur, item, opts, entry)
    if skipped is not None:
        return skipped
    cur.execute(TABLES_SQL)
    names_before = dict(cur.fetchall())
    held_before = {lk["relation"]: lk["mode"] for lk in _held(cur, names_before)}
    resolved = locks.resolve(cur, locks.file_plan(mf))
    opts.now.at(mf.path, 0, len(mf.statements))  # statement 0: taking the file's locks
    try:
        with conn.transaction():
            locks.take_all(cur, resolved, opts.lock_timeout)
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
        raise _lock_failure(exc, resolved, opts.lock_timeout) from exc
    locked_at = time.monotonic()
    for stmt in mf.statements:
        opts.now.at(mf.path, stmt.number, len(mf.statements))
        try:
            cur.execute(stmt.text, prepare=False)
        except psycopg.Error as exc:
            if opts.check_mode and exc.sqlstate == CANCELLED:
                raise _too_slow(item, opts, stmt, resolved) from exc
            error = statement_error(mf, stmt, exc, "Nothing of this file was applied: its transaction was rolled back.")
            if exc.sqlstate in locks.LOCK_TIMEOUT_STATES:
                raise retry.LockTimeout(error, {"sqlstate": exc.sqlstate, "statement_number": stmt.number}) from exc
            raise error from exc
    duration_ms = int((time.monotonic() - locked_at) * 1000)
    ledger.record(cur, version=mf.version, name=mf.name, statements=mf.ledger_statements,
                  checksum=item.forward_checksum or mf.checksum, direction=item.direction,
                  duration_ms=duration_ms, run_id=opts.run_id,
                  applied_version=entry.version if entry else None)
    result = {**item.base(opts), "changed": True, "statements": len(mf.statements), "duration_ms": duration_ms,
              "locks": _file_locks(held_locks(cur, names_before, held_before), resolved), "_locked_at": locked_at}
    if not opts.check_mode:  # this file's transaction: its rows are this run's, not another session's
        cur.execute("SELECT txid_current()::text")
        result["xid"] = cur.fetchone()[0]
    acknowledged = control_notes(mf)
    if acknowledged:
        result["notes"] = acknowledged
    if item.checks:
        _verify_in_transaction(conn, item, result)
    verb = "applied" if item.direction == "up" else "rolled back"
    result["msg"] = (f"{'dry run: ' if opts.check_mode else ''}{verb} {mf.version}_{mf.name}"
                     + (" (no statements: comment-only)" if not mf.statements else ""))
    return result


def _verify_in_transaction(conn: Connection, item: Item, result: dict[str, Any]) -> None:
    results = checks_mod.run(conn, item.checks or [])
    result["checks"], result["checks_summary"] = results, checks_mod.table(results)
    failed = checks_mod.failures(results)
    if failed:
        raise MigrationError(
            f"{item.file.path}: {len(failed)} verification check(s) of {item.spec or 'its spec'} failed inside "
            f"the transaction ({', '.join(r['name'] for r in failed)}); nothing of this file was committed",
            {"file": item.file.path, "checks": results, "checks_summary": result["checks_summary"]})


def _verify_as_after_commit(conn: Connection, results: list[dict[str, Any]], after: dict[str, Any]) -> None:
    """The dry run's stand-in for the verify step: the same checks, at the state the plan ends in."""
    chosen = checks_mod.after_commit(results)
    try:
        found = checks_mod.spec_checks(chosen["specs"], chosen["lasting_specs"])
    except checks_mod.SpecError as exc:
        raise MigrationError(str(exc), {"after_commit": chosen}) from exc
    outcome = checks_mod.run(conn, found) if found else []
    after.update(chosen, checks=outcome, checks_summary=checks_mod.table(outcome))
    failed = checks_mod.failures(outcome)
    if failed:
        names = ", ".join(f"{r['name']} ({r['spec']})" for r in failed)
        raise MigrationError(
            f"dry run: {len(failed)} check(s) the run verifies after its commit failed at the state the plan "
            f"ends in: {names}. The run would apply every file and then fail its verification (and roll back). "
            "A spec's checks that later files may change belong in that file's spec only, not marked lasting "
            "(README, Verification specs)", {"after_commit": after, "checks_summary": after["checks_summary"]})


def _finish_hold(result: dict[str, Any], until: float) -> dict[str, Any]:
    locked_at = result.pop("_locked_at", None)
    if locked_at is not None:
        result["lock_hold_ms"] = int((until - locked_at) * 1000)
    return result


def blockers_report(conn: Connection, files: list[MigrationFile]) -> list[dict[str, Any]]:
    """Sessions holding locks on the planned tables, read in a transaction of its own."""
    plan = locks.merge([locks.file_plan(f) for f in files])
    with conn.transaction(), conn.cursor() as cur:
        resolved = locks.resolve(cur, plan)
        return locks.holders(cur, [locks.plain(s, n) for s, n, _unused in resolved])


def _with_retries(conn: Connection, files: list[MigrationFile], opts: Options, action: Any,
                  attempts: list[dict[str, Any]]) -> Any:
    def on_timeout(timeout: retry.LockTimeout) -> dict[str, Any]:
        return {**timeout.details, "blockers": blockers_report(conn, files)}

    try:
        return retry.run(action, opts.retry, on_timeout, attempts, on_attempt=opts.now.trying)
    except MigrationError as exc:
        exc.details["attempts"] = list(attempts)
        if attempts and attempts[-1]["outcome"] == "lock_timeout":
            exc.args = (f"{exc} Gave up after {len(attempts)} attempt(s) on lock timeouts; "
                        f"blocking sessions: {_describe(attempts[-1].get('blockers', []))}",)
        raise


def apply_one(conn: Connection, item: Item, opts: Options) -> dict[str, Any]:
    """One transactional file in a transaction of its own, retried on lock timeouts."""
    attempts: list[dict[str, Any]] = []

    def attempt() -> dict[str, Any]:
        with conn.transaction(), conn.cursor() as cur:
            begin(cur, opts, opts.statement_timeout)
            result = run_file(conn, cur, item, opts)
            if result["changed"]:
                before_commit(opts)
        return _finish_hold(result, time.monotonic())

    result = _with_retries(conn, [item.file], opts, attempt, attempts)
    result["attempts"] = attempts
    return result


def _whole_plan(conn: Connection, items: list[Item], opts: Options, results: list[dict[str, Any]],
                after: dict[str, Any]) -> None:
    """All files in one transaction, a savepoint each; rolled back in check mode.

    The dry run then runs what the real run verifies after its commit, against the
    state the last file left (`after` gets those results)."""
    import psycopg

    results.clear()
    after.clear()
    not_run: list[str] = []  # files before this one whose effect the dry run could not include
    timeout = opts.dry_run_statement_timeout if opts.check_mode else opts.statement_timeout
    with conn.transaction() as outer, conn.cursor() as cur:
        begin(cur, opts, timeout)
        if opts.check_mode:
            ledger.ensure(conn, opts.lock_timeout)  # inside the dry run: rolled back with it
        # the catalog as it stands, while the last snapshot still describes it: a file's "after" is the next
        # file's "before" (half the snapshots of a dry run, most of its server CPU)
        known: dict[str, Any] | None = None
        for item in items:
            if not item.file.transactional:
                results.append({**item.base(opts), "changed": True, "statements": 0, "dry_runnable": False,
                                "msg": f"not dry-runnable: {item.file.path} is non-transactional; it would run "
                                       f"{len(item.file.statements)} statement(s) one by one"})
                not_run.append(item.file.path)
                continue
            before = (known if known is not None else schema.snapshot(cur)) if opts.check_mode else None
            known = before  # a file that changes nothing (or is rolled back to its savepoint) leaves it as it was
            try:
                with conn.transaction():
                    result = run_file(conn, cur, item, opts)
            except TooSlowForDryRun as slow:
                results.append(slow.result)
                not_run.append(item.file.path)
                continue
            except MigrationError as exc:
                if not_run:
                    exc.args = (f"{exc} This may be caused by {', '.join(not_run)}, which the dry run could not "
                                "run before it.",)
                    exc.details["caused_by_not_dry_run"] = list(not_run)
                results.append(failed_result(item, opts, exc))
                raise
            if opts.check_mode:  # as long as this file would hold them, up to its own commit
                _finish_hold(result, time.monotonic())
            if before is not None and result["changed"]:
                known = _add_diff(cur, item, result, before)
            results.append(result)
        if opts.check_mode:
            _lock_report(cur, results)
            _verify_as_after_commit(conn, results, after)
            raise psycopg.Rollback(outer)
        if any(r["changed"] for r in results):
            before_commit(opts)
    now = time.monotonic()
    for result in results:
        _finish_hold(result, now)


def _lock_report(cur: Cursor, results: list[dict[str, Any]]) -> None:
    """What each dry-run file would hold, on how big a table, for how long."""
    from .lint import human, table_sizes

    for result in results:
        tables = [tuple(lk["relation"].split(".", 1)) for lk in result.get("locks") or []]
        sizes = table_sizes(cur, tables) if tables and "lock_hold_ms" in result else {}
        result["lock_report"] = [
            f"holds {lk['mode']} on {lk['relation']} ({human(size['rows'], size['bytes'], size['counted'])}) for "
            f"{result['lock_hold_ms'] / 1000:.1f} s"
            for lk in result.get("locks") or [] if (size := sizes.get(lk["relation"]))]


def _add_diff(cur: Cursor, item: Item, result: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The file's schema changes and diff; returns the catalog after it."""
    after = schema.snapshot(cur)
    changes = schema.diff(before, after)
    touched = {n for kind in changes.values() for group in kind.values() for n in group}
    result["schema_changes"] = changes
    result["diff"] = {"before": schema.render(before, touched), "after": schema.render(after, touched),
                      "before_header": f"{item.file.version} {'not applied' if item.direction == 'up' else 'applied'}",
                      "after_header": item.file.path}
    return after


def _refuse_non_transactional_statements(items: list[Item]) -> None:
    from .sqlfile import NO_TRANSACTION_MARKER, MigrationFileError, refuse_transaction_control

    for item in items:
        mf = item.file
        try:
            refuse_transaction_control(mf)
        except MigrationFileError as exc:
            raise MigrationError(str(exc), {"file": mf.path}) from exc
        nontx = mf.non_transactional() if mf.transactional else []
        if nontx:
            first = nontx[0]
            raise MigrationError(
                f"{mf.path}:{first.line}: statement {first.number} ({first.kind[1:]}) cannot run inside "
                "a transaction. Ship it in a migration file of its own whose first line is "
                f"'{NO_TRANSACTION_MARKER}' (or morph's, atlas's or dbmate's marker): its statements then run "
                "one by one with the same timeouts, and a failed run resumes after the last statement that "
                "succeeded.", {"file": mf.path, "line": first.line, "statement_number": first.number})


def apply_plan(conn: Connection, items: list[Item], options: Options | None = None) -> dict[str, Any]:
    """Apply the plan in order, stopping at the first failure.

    Returns {"results": [...per file...], "changed": bool, "schema_changes": ...}.
    A failure raises MigrationError whose details hold the results so far under "results".
    """
    opts = options or Options()
    opts.now.backend_pid = conn.info.backend_pid
    _refuse_non_transactional_statements(items)
    if opts.single_transaction and not opts.check_mode:
        blocking = [i.file.path for i in items if not i.file.transactional]
        if blocking:
            raise MigrationError(f"single_transaction cannot include non-transactional files: {blocking}",
                                 {"files": blocking})
    results: list[dict[str, Any]] = []
    after: dict[str, Any] = {}
    try:
        if not opts.check_mode:
            ledger.ensure(conn, opts.lock_timeout)
        snapshot_before = _snapshot(conn) if not opts.check_mode else None
        if opts.check_mode or opts.single_transaction:
            attempts: list[dict[str, Any]] = []
            _with_retries(conn, [i.file for i in items], opts,
                          lambda: _whole_plan(conn, items, opts, results, after), attempts)
        else:
            _apply_each(conn, items, opts, results)
    except MigrationError as exc:
        exc.details["results"] = results
        if not opts.check_mode and (any(r.get("changed") for r in results) or exc.details.get("partial")):
            _record_catalog(conn, opts)  # what stays is this run's doing, not drift
        raise
    summary: dict[str, Any] = {"results": results, "changed": any(r.get("changed") for r in results),
                               # what the verify step runs after the commit (the dry run ran it: its results)
                               "after_commit": after or checks_mod.after_commit(results)}
    if snapshot_before is not None and summary["changed"]:
        # one reading of the catalog after the run: recorded (drift is measured against it) and diffed
        summary["schema_changes"] = schema.diff(snapshot_before, _record_catalog(conn, opts) or _snapshot(conn))
    return summary


def failed_result(item: Item, opts: Options, exc: MigrationError) -> dict[str, Any]:
    """The failed file's entry in the results: what failed, where, and that nothing of it stayed."""
    details = {k: v for k, v in exc.details.items() if k not in ("results", "attempts", "checks")}
    return {**item.base(opts), "changed": False, "failed": True, "statements": 0, "msg": str(exc),
            "error": details, "attempts": exc.details.get("attempts", []),
            **({"checks_summary": exc.details["checks_summary"]} if "checks_summary" in exc.details else {})}


def _apply_file(conn: Connection, item: Item, opts: Options) -> dict[str, Any]:
    """One file; a database error outside its statements (one of pgrollout's own queries) is a MigrationError
    too, so what the file left is compared all the same."""
    import psycopg

    from .steps import apply_steps

    try:
        return apply_one(conn, item, opts) if item.file.transactional else apply_steps(conn, item, opts)
    except psycopg.Error as error:
        raise MigrationError(f"{item.file.path}: database error (SQLSTATE {error.sqlstate}): {str(error).strip()}.",
                             {"file": item.file.path, "sqlstate": error.sqlstate}) from error


def _apply_each(conn: Connection, items: list[Item], opts: Options, results: list[dict[str, Any]]) -> None:
    for item in items:
        # a file whose failure can leave part of it behind: compared before and after, never assumed
        watched = not item.file.transactional or bool(item.file.transaction_control())
        before = _snapshot(conn) if watched else None
        try:
            results.append(_apply_file(conn, item, opts))
        except MigrationError as exc:
            if watched:
                left = left_behind(conn, item, before, exc)
                if left:
                    exc.details["partial"] = left
                    exc.args = (f"{exc} {left['msg']}",)
            results.append(failed_result(item, opts, exc))
            raise


def left_behind(conn: Connection, item: Item, before: dict[str, Any] | None,
                exc: MigrationError) -> dict[str, Any] | None:
    """What a failed file left on the target: its recorded steps, its schema changes, INVALID indexes; None when
    the comparison shows nothing. A comparison that cannot be made is reported as such, never as nothing."""
    mf = item.file
    try:
        with conn.transaction(), conn.cursor() as cur:
            done = ledger.steps_done(cur, mf.version, item.direction) if not mf.transactional else {}
            changes = schema.diff(before, schema.snapshot(cur)) if before is not None else {}
    except Exception as error:  # noqa: BLE001 - a lost connection: say that nothing could be checked
        return {"file": mf.path, "version": mf.version, "checked": False,
                "msg": f"What {mf.path} left on the target could not be checked ({type(error).__name__}: "
                       f"{str(error).strip()}): treat it as partially applied and look before running again."}
    changed = [f"{kind} {name}" for kind, groups in changes.items() for group in groups.values() for name in group]
    invalid = exc.details.get("invalid_indexes") or []
    if not done and not changed and not invalid:
        return None
    applied = sorted(done)
    resume = ("run the same command again once the cause is fixed: it resumes after the last statement that "
              "succeeded" if not mf.transactional else
              "its statements before the transaction control it let through were committed: undo them by hand or "
              "with its rollback file before running again")
    return {"file": mf.path, "version": mf.version, "checked": True, "statements_applied": applied,
            "statements": len(mf.statements), "schema_changes": changed, "invalid_indexes": invalid,
            "resume": resume,
            "msg": f"{mf.path} is PARTIALLY APPLIED: "
                   + (f"statement(s) {', '.join(map(str, applied))} of {len(mf.statements)} applied; " if applied
                      else "")
                   + (f"left on the target: {', '.join(changed)}; " if changed else "")
                   + (f"INVALID index(es) {', '.join(invalid)}; " if invalid else "") + resume + "."}


def _record_catalog(conn: Connection, opts: Options) -> dict[str, Any] | None:
    """Record the catalog as this run left it, the state drift is measured against; that snapshot.

    Never masks the run's own error: a failure to record returns None.
    """
    import psycopg

    try:
        with conn.transaction(), conn.cursor() as cur:
            snap = schema.snapshot(cur)
            schema.store(cur, opts.run_id, snap=snap)
            return snap
    except psycopg.Error:
        return None


def _snapshot(conn: Connection) -> dict[str, Any]:
    with conn.transaction(), conn.cursor() as cur:
        return schema.snapshot(cur)


def _describe(blockers: list[dict[str, Any]]) -> str:
    if not blockers:
        return "none left when checked"
    return "; ".join(f"pid {b['pid']} ({b['application_name'] or 'no application_name'}, {b['state']}, "
                     f"in transaction {b['transaction_seconds']}s, holding {b['locks']})" for b in blockers)


def apply(conn: Connection, mf: MigrationFile, options: Options | None = None, *, direction: str = "up",
          forward_checksum: str | None = None, checks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One file as a plan of one; returns that file's result (tests and the rehearsal use it)."""
    item = Item(file=mf, direction=direction, forward_checksum=forward_checksum, checks=checks)
    try:
        summary = apply_plan(conn, [item], options)
    except MigrationError as exc:
        results = exc.details.get("results") or []
        if results:
            exc.details.setdefault("attempts", results[-1].get("attempts", []))
        raise
    result = summary["results"][0]
    diff = result.get("diff")
    if diff is None and summary.get("schema_changes") is not None:
        result["schema_changes"] = summary["schema_changes"]
    return result
