"""Apply one migration file (forward or rollback) in one transaction, with its ledger entry.

Either every statement and the ledger row commit together, or nothing does:
a failure anywhere rolls the whole transaction back. Check mode runs the very
same transaction and rolls it back, reporting the locks and schema change.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import checks as checks_mod
from . import ledger, schema
from .sqlfile import MigrationFile, Statement, position_to_line

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor

# Table lock modes, weakest first (PostgreSQL docs, "Table-Level Locks").
LOCK_STRENGTH = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
                 "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


def strongest_locks(rows: list[tuple[str, str]]) -> list[dict[str, str]]:
    """One entry per relation: the strongest mode held, which decides who waits."""
    best: dict[str, str] = {}
    for relation, mode in rows:
        if relation not in best or LOCK_STRENGTH.index(mode) > LOCK_STRENGTH.index(best[relation]):
            best[relation] = mode
    return [{"relation": r, "mode": best[r]} for r in sorted(best)]


class MigrationError(Exception):
    """A migration that failed; the message points at file, statement and line."""

    def __init__(self, message: str, details: dict[str, Any]):
        super().__init__(message)
        self.details = details


class _DryRunDone(Exception):
    """Raised inside the transaction to roll back a check-mode run."""


LOCKS_SQL = """
SELECT n.nspname || '.' || c.relname AS relation, l.mode
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'supabase_migrations', 'pgrollout')
ORDER BY 1, 2
"""


def _statement_error(mf: MigrationFile, stmt: Statement, exc: Exception) -> MigrationError:
    diag = getattr(exc, "diag", None)
    position = getattr(diag, "statement_position", None)
    line = position_to_line(stmt, int(position) if position else None)
    sqlstate = getattr(exc, "sqlstate", None) or "?????"
    primary = getattr(diag, "message_primary", None) or str(exc).strip()
    details = {
        "file": mf.path,
        "line": line,
        "statement_number": stmt.number,
        "statement": stmt.text[:500],
        "sqlstate": sqlstate,
        "error": primary,
    }
    message = (f"{mf.path}:{line}: statement {stmt.number} failed with SQLSTATE {sqlstate}: "
               f"{primary}. Nothing was applied: the transaction was rolled back.")
    return MigrationError(message, details)


def _take_rollout_lock(cur: Cursor) -> None:
    cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (ledger.ADVISORY_LOCK_KEY,))
    if not cur.fetchone()[0]:
        holder = ledger.lock_holder(cur) or {}
        raise MigrationError(
            "another pgrollout run holds the rollout lock on this database "
            f"(pid {holder.get('pid')}, application {holder.get('application_name')!r}, "
            f"user {holder.get('user')}, since {holder.get('backend_start')}); "
            "wait for it to finish, then run again",
            {"lock_holder": holder},
        )


def _already_done(mf: MigrationFile, direction: str, applied: dict[str, ledger.Applied],
                  forward_checksum: str | None) -> str | None:
    """Why no work is needed, or None; raises on a forward file that drifted."""
    entry = applied.get(mf.version)
    if direction == "down":
        return None if entry else f"migration {mf.version} is not applied"
    if entry is None:
        return None
    if entry.checksum and entry.checksum != forward_checksum:
        raise MigrationError(
            f"{mf.path}: migration {mf.version} was applied with checksum {entry.checksum} "
            f"but the file now has checksum {forward_checksum}. An applied migration must not be "
            "edited: restore the file, or ship the change as a new migration.",
            {"applied_checksum": entry.checksum, "file_checksum": forward_checksum},
        )
    return f"migration {mf.version} is already applied" + (
        "" if entry.checksum else " (recorded by another tool, checksum unknown)")


def apply(conn: Connection, mf: MigrationFile, *, direction: str = "up", check_mode: bool = False,
          lock_timeout: str = "5s", statement_timeout: str = "5min",
          run_id: str | None = None, forward_checksum: str | None = None,
          checks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Apply `mf` in one transaction. For direction 'down' pass the forward file's checksum.

    With `checks` (validated), they run inside the transaction before it
    commits: a failing check rolls the migration back, so a migration that
    does not verify never becomes visible.
    """
    nontx = mf.non_transactional()
    if nontx:
        first = nontx[0]
        raise MigrationError(
            f"{mf.path}:{first.line}: statement {first.number} ({first.kind[1:]}) cannot run inside "
            "a transaction. Ship it in a migration of its own that holds only such statements.",
            {"file": mf.path, "line": first.line, "statement_number": first.number},
        )
    forward_checksum = forward_checksum or mf.checksum
    result: dict[str, Any] = {"version": mf.version, "name": mf.name, "direction": direction,
                              "checksum": mf.checksum, "path": mf.path, "dry_run": check_mode}
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, true), "
                        "set_config('statement_timeout', %s, true)", (lock_timeout, statement_timeout))
            _take_rollout_lock(cur)
            reason = _already_done(mf, direction, ledger.read(cur), forward_checksum)
            if reason:
                result.update(changed=False, msg=reason, statements=0)
                return result
            before = schema.snapshot(cur)
            started = time.monotonic()
            for stmt in mf.statements:
                try:
                    cur.execute(stmt.text, prepare=False)
                except Exception as exc:  # psycopg.Error; imported lazily by the caller
                    raise _statement_error(mf, stmt, exc) from exc
            duration_ms = int((time.monotonic() - started) * 1000)
            after = schema.snapshot(cur)
            cur.execute(LOCKS_SQL)
            locks = strongest_locks(cur.fetchall())
            ledger.ensure(cur)
            ledger.record(cur, version=mf.version, name=mf.name,
                          statements=[s.text for s in mf.statements], checksum=forward_checksum,
                          direction=direction, duration_ms=duration_ms, run_id=run_id)
            if checks:
                results = checks_mod.run(conn, checks)
                result["checks"] = results
                result["checks_summary"] = checks_mod.table(results)
                failed = checks_mod.failures(results)
                if failed:
                    raise MigrationError(
                        f"{mf.path}: {len(failed)} verification check(s) failed inside the transaction "
                        f"({', '.join(r['name'] for r in failed)}); nothing was committed",
                        {"file": mf.path, "checks": results})
            changes = schema.diff(before, after)
            touched = {n for kind in changes.values() for group in kind.values() for n in group}
            result.update(
                changed=True, statements=len(mf.statements), duration_ms=duration_ms,
                locks=locks, schema_changes=changes,
                diff={"before": schema.render(before, touched), "after": schema.render(after, touched),
                      "before_header": f"{mf.version} not applied" if direction == "up" else mf.version,
                      "after_header": mf.path},
                msg=("dry run: " if check_mode else "")
                + f"{'applied' if direction == 'up' else 'rolled back'} {mf.version}_{mf.name}"
                + (" and rolled back the transaction" if check_mode else ""),
            )
            if check_mode:
                raise _DryRunDone()
    except _DryRunDone:
        pass
    return result
