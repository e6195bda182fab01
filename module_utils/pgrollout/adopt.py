"""Adopting a database other tools built, and repairing the record after an incident.

Both change only the ledger, never run migration SQL, and record who, why and
when in pgrollout.history, in one transaction under the run lease.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import lease, ledger, schema, sqlfile
from .plan import Layout, PlanError

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection


def _reason(reason: str, what: str) -> str:
    if not reason.strip():
        raise PlanError(f"{what} needs a reason (it is recorded): -e 'pgrollout_{what}_reason=\"...\"'")
    return reason.strip()


def baseline(conn: Connection, layout: Layout, upto: str, reason: str, run_id: str | None,
             check_mode: bool = False, require_lease: bool = True) -> dict[str, Any]:
    """Record every migration up to `upto` as applied without running it."""
    reason = _reason(reason, "baseline")
    migrations = [m for m in layout.migrations() if m.number <= int(upto)]
    if not migrations:
        raise PlanError(f"no migration file at or below {upto} in {layout.migrations_dir}")
    files = {m.number: sqlfile.load(m.up, m.version, m.name) for m in migrations}
    with conn.transaction(), conn.cursor() as cur:
        if require_lease and not check_mode:
            lease.check(cur, run_id or "")
        applied = ledger.read(cur)
        differ = [f"{m.version} (recorded {applied.get(m.number).checksum}, file {files[m.number].checksum})"
                  for m in migrations if m.number in applied and applied.get(m.number).checksum
                  and applied.get(m.number).checksum != files[m.number].checksum]
        if differ:
            raise PlanError(f"refused: already recorded differently from the files: {', '.join(differ)}. Nothing "
                            "was recorded; restore the files as applied, or repair the record first (repair.yml)")
        # recorded in the Supabase ledger already (by pgrollout or the CLI): kept as it is
        recorded = set(applied.keys())
        todo = [m for m in migrations if m.number not in recorded]
        if not check_mode:
            for m in todo:
                mf = files[m.number]
                ledger.record(cur, version=mf.version, name=mf.name, statements=mf.ledger_statements,
                              checksum=mf.checksum, direction="baseline", duration_ms=0, run_id=run_id,
                              note=reason)
            # the adopted database's catalog is the recorded state drift is measured against from now on
            schema.store(cur, run_id, note=f"baseline: {reason}")
    return {"recorded": [m.version for m in todo],
            "already": [m.version for m in migrations if m not in todo], "reason": reason}


def repair(conn: Connection, layout: Layout, version: str, mark: str, reason: str, run_id: str | None,
           check_mode: bool = False, require_lease: bool = True) -> dict[str, Any]:
    """Mark one version applied or reverted in the record, as a person repaired it by hand."""
    reason = _reason(reason, "repair")
    migration = {m.number: m for m in layout.migrations()}.get(int(version))
    with conn.transaction(), conn.cursor() as cur:
        if require_lease and not check_mode:
            lease.check(cur, run_id or "")
        entry = ledger.read(cur).get(int(version))
        if mark == "applied":
            if entry is not None:
                raise PlanError(f"migration {version} is recorded as applied already: nothing to repair")
            if migration is None:
                raise PlanError(f"no file for migration {version}: the record needs its file (checksum, name)")
            mf = sqlfile.load(migration.up, migration.version, migration.name)
            if not check_mode:
                ledger.record(cur, version=mf.version, name=mf.name, statements=mf.ledger_statements,
                              checksum=mf.checksum, direction="repair_applied", duration_ms=0, run_id=run_id,
                              note=reason)
        else:
            if entry is None:
                raise PlanError(f"migration {version} is not recorded as applied: nothing to repair")
            if not check_mode:
                ledger.record(cur, version=entry.version, name=entry.name or "", statements=[],
                              checksum=entry.checksum or "", direction="repair_reverted", duration_ms=0,
                              run_id=run_id, note=reason)
        if not check_mode:  # the catalog as the repair by hand left it
            schema.store(cur, run_id, note=f"repair: {reason}")
    return {"version": version, "mark": mark, "reason": reason}
