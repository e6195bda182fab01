"""Non-transactional files, forward or rollback: statements one by one.

For statements PostgreSQL refuses inside a transaction (CREATE INDEX
CONCURRENTLY, VACUUM, ...), in files carrying a no-transaction marker
(pgrollout's, morph's, atlas's or dbmate's). Each statement runs on its own,
with the same timeouts and lock-timeout retries, and is recorded in
pgrollout.steps (by its text's hash) when it succeeded, so a failed run
resumes after the last statement that succeeded, even after the file was
fixed: steps are matched by statement, not by the file's checksum.

A concurrent index build that fails leaves an INVALID index behind: it is
dropped (concurrently) before the build runs again, and every concurrent
build is checked for indisvalid before the step is recorded.
"""
from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING, Any

from . import lease, ledger, locks, retry
from .migrate import Item, MigrationError, Options, before_commit, skip_or_drift, statement_error, take_rollout_lock
from .sqlfile import Statement, nodes

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor

_INDEX_SQL = """
SELECT n.nspname, i.relname, x.indisvalid
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE x.indrelid = to_regclass(CASE WHEN %(s)s::text IS NULL THEN format('%%I', %(t)s::text)
                                    ELSE format('%%I.%%I', %(s)s::text, %(t)s::text) END)
"""


def statement_sha(stmt: Statement) -> str:
    return hashlib.sha256(" ".join(stmt.text.split()).encode("utf-8")).hexdigest()


def _concurrent_index(stmt: Statement) -> Any | None:

    if stmt.kind != "!IndexStmt":
        return None
    (node,) = nodes(stmt)
    return node


def _indexes(cur: Cursor, node: Any) -> list[tuple[str, str, bool]]:
    cur.execute(_INDEX_SQL, {"s": node.relation.schemaname or None, "t": node.relation.relname})
    return cur.fetchall()


def _drop_invalid_leftover(cur: Cursor, node: Any) -> list[str]:
    """Drop an INVALID index of the name this build creates (a failed earlier build)."""
    from psycopg import sql

    dropped = []
    for schema, name, valid in _indexes(cur, node):
        if not valid and name == node.idxname:
            cur.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)))
            dropped.append(f"{schema}.{name}")
    return dropped


def _drop_leftover_or_say(cur: Cursor, item: Item, stmt: Statement, index: Any) -> list[str]:
    """The leftover's DROP waits for the same sessions the build waits for: its lock timeout is retried as the
    statement's, and its error names the INVALID index still on the target (never a bare database error)."""
    import psycopg

    try:
        return _drop_invalid_leftover(cur, index)
    except psycopg.Error as exc:
        invalid = [f"{s}.{n}" for s, n, valid in _indexes(cur, index) if not valid]
        error = MigrationError(
            f"{item.file.path}:{stmt.line}: could not drop the INVALID index {', '.join(invalid) or index.idxname} "
            f"a failed concurrent build left, before building it again (statement {stmt.number}): SQLSTATE "
            f"{exc.sqlstate}: {str(exc).strip()}. It is still on the target; the next run drops it and builds it "
            "again.", {"file": item.file.path, "statement_number": stmt.number, "sqlstate": exc.sqlstate,
                       "invalid_indexes": invalid})
        if exc.sqlstate in locks.LOCK_TIMEOUT_STATES:
            raise retry.LockTimeout(error, {"sqlstate": exc.sqlstate, "statement_number": stmt.number}) from exc
        raise error from exc


def _run_step(cur: Cursor, item: Item, stmt: Statement, opts: Options, notes: list[str]) -> None:
    import psycopg

    mf = item.file
    index = _concurrent_index(stmt)
    if index is not None and index.idxname:
        notes += [f"dropped the INVALID index {n} left by an earlier failed build" for n in
                  _drop_leftover_or_say(cur, item, stmt, index)]
    before_commit(opts)
    opts.now.at(mf.path, stmt.number, len(mf.statements))
    try:
        cur.execute(stmt.text, prepare=False)
    except psycopg.Error as exc:
        note = (f"Statements before {stmt.number} are applied and recorded; fix the cause and run again "
                f"to resume at statement {stmt.number}.")
        if index is not None:
            note += " The INVALID index a failed concurrent build leaves is dropped before the next try."
        error = statement_error(mf, stmt, exc, note)
        if exc.sqlstate in locks.LOCK_TIMEOUT_STATES:
            raise retry.LockTimeout(error, {"sqlstate": exc.sqlstate, "statement_number": stmt.number}) from exc
        raise error from exc
    if index is not None:
        invalid = [f"{s}.{n}" for s, n, valid in _indexes(cur, index) if not valid]
        if invalid:
            raise MigrationError(
                f"{mf.path}:{stmt.line}: statement {stmt.number} finished but left INVALID index(es) "
                f"{', '.join(invalid)} (a concurrent build that did not complete). Not recorded: the next run "
                "drops a named leftover and builds it again.", {"file": mf.path, "invalid_indexes": invalid})
    ledger.record_step(cur, mf.version, item.direction, mf.checksum, stmt.number, statement_sha(stmt))


def _pending(cur: Cursor, item: Item) -> tuple[list[Statement], int]:
    """Statements not run yet, matched by text; how many earlier steps are done."""
    done = ledger.steps_done(cur, item.file.version, item.direction)
    shas = {sha for _unused, sha in done.values() if sha}
    known = {statement_sha(s) for s in item.file.statements}
    gone = sorted(n for n, (_unused, sha) in done.items() if sha and sha not in known)
    legacy = sorted(n for n, (_unused, sha) in done.items() if not sha)
    if gone or legacy:
        raise MigrationError(
            f"{item.file.path}: an earlier run applied statement(s) {gone or legacy} of this file that are no "
            "longer in it. Restore those statements as they ran, or finish by hand and clear "
            f"pgrollout.steps for version {item.file.version} ({item.direction}).",
            {"file": item.file.path, "stale_steps": gone or legacy})
    pending = [s for s in item.file.statements if statement_sha(s) not in shas]
    return pending, len(item.file.statements) - len(pending)


def apply_steps(conn: Connection, item: Item, opts: Options) -> dict[str, Any]:
    """A real run only: the dry run reports a non-transactional file without running it (migrate._whole_plan)."""
    mf = item.file
    result: dict[str, Any] = {**item.base(opts), "transactional": False}
    was_autocommit = conn.autocommit
    conn.autocommit = True
    attempts: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                        (opts.lock_timeout, opts.statement_timeout))
            take_rollout_lock(cur, opts.lock_wait, session=True)
            try:
                with conn.transaction():
                    if opts.require_lease:
                        lease.check(cur, opts.run_id or "")
                    entry = ledger.read(cur).get(item.number)
                    skipped = skip_or_drift(cur, item, opts, entry)
                if skipped is not None:
                    return skipped
                pending, resumed = _pending(cur, item)
                for stmt in pending:
                    if opts.require_lease:
                        lease.check(cur, opts.run_id or "")
                    # counted per statement: each statement's tries start at 1
                    retry.run(functools.partial(_run_step, cur, item, stmt, opts, notes), opts.retry,
                              lambda t: dict(t.details), attempts, on_attempt=opts.now.trying)
                with conn.transaction():
                    if opts.require_lease:
                        lease.check(cur, opts.run_id or "")
                    ledger.record(cur, version=mf.version, name=mf.name, statements=mf.ledger_statements,
                                  checksum=item.forward_checksum or mf.checksum, direction=item.direction,
                                  duration_ms=sum(a["elapsed_ms"] for a in attempts), run_id=opts.run_id,
                                  applied_version=entry.version if entry else None)
                    ledger.clear_steps(cur, mf.version, item.direction)
                    before_commit(opts)
            finally:
                if not conn.closed:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (ledger.ADVISORY_LOCK_KEY,))
    except MigrationError as exc:
        exc.details["attempts"] = attempts
        raise
    except lease.LeaseError as exc:
        raise MigrationError(str(exc), {"lease": True, "attempts": attempts}) from exc
    finally:
        if not conn.closed:
            conn.autocommit = was_autocommit
    verb = "applied" if item.direction == "up" else "rolled back"
    return {**result, "changed": True, "statements": len(pending), "attempts": attempts, "notes": notes,
            "msg": f"{verb} {mf.version}_{mf.name} statement by statement"
                   + (f" (resumed: {resumed} already done)" if resumed else "")}
