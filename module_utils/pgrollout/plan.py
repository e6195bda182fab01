"""A run's plan: which files run, in which order and direction, with which specs.

Everything a run needs is read and checked here, before anything changes:
every forward or rollback file exists and parses, every spec that exists (or
is required) is valid. The playbooks get the plan from pg_facts and hand the
files to pg_migrate; neither rebuilds file names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import checks, ledger, sqlfile
from .migrate import Item
from .sqlfile import Migration, MigrationFileError

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Cursor


# The options of every module that reads a plan's files (doc fragment pgrollout.layout).
LAYOUT_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "rollbacks_dir": {"type": "path"},
    "verification_dir": {"type": "path"},
    "layout": {"type": "str", "choices": ["supabase", "updown"], "default": "supabase"},
}


@dataclass
class Layout:
    migrations_dir: str
    rollbacks_dir: str | None = None
    verification_dir: str | None = None
    layout: str = "supabase"

    def migrations(self) -> list[Migration]:
        return sqlfile.discover(self.migrations_dir, self.rollbacks_dir, self.verification_dir, self.layout)


class PlanError(Exception):
    """A plan that cannot run as asked; nothing was changed."""


def _spec(path: str, required: bool, what: str) -> list[dict[str, Any]] | None:
    if not os.path.exists(path):
        if required:
            raise PlanError(f"{what} has no verification spec {path}: this environment requires one "
                            "(pgrollout_require_verification). Write it (README, Verification specs).")
        return None
    try:
        return checks.load_spec(path)
    except checks.SpecError as exc:
        raise PlanError(str(exc)) from exc


def build(layout: Layout, files: list[str], direction: str = "up", require_spec: bool = False,
          final_checks: list[dict[str, Any]] | None = None) -> list[Item]:
    """Items for `files` (forward paths, in the order to run) with their rollback files and specs."""
    by_path = {os.path.realpath(m.up): m for m in layout.migrations()}
    items = []
    for path in files:
        migration = by_path.get(os.path.realpath(path))
        if migration is None:
            raise PlanError(f"{path} is not a migration of {layout.migrations_dir} ({layout.layout} layout)")
        try:
            forward = sqlfile.load(migration.up, migration.version, migration.name)
            if direction == "up":
                items.append(Item(file=forward, direction="up",
                                  checks=_spec(migration.spec, require_spec, migration.stem),
                                  spec=migration.spec if os.path.exists(migration.spec) else None))
                continue
            if not os.path.exists(migration.down):
                raise PlanError(f"{migration.stem} has no rollback file {migration.down}: nothing was rolled "
                                "back. Write it, or restore from a backup (README, Rollback).")
            down = sqlfile.load(migration.down, migration.version, migration.name)
        except MigrationFileError as exc:
            raise PlanError(str(exc)) from exc
        items.append(Item(file=down, direction="down", forward_checksum=forward.checksum,
                          checks=_spec(migration.rollback_spec, require_spec, f"the rollback of {migration.stem}"),
                          spec=migration.rollback_spec if os.path.exists(migration.rollback_spec) else None))
    if final_checks and items:
        last = items[-1]
        last.checks = (last.checks or []) + checks.validate(final_checks)
    return items


def status(cur: Cursor, layout: Layout, accept_drift: list[str] = (), allow_out_of_order: list[str] = ()
           ) -> dict[str, Any]:
    """Applied, pending, drifted, missing and out-of-order migrations: ledger against files."""
    raw = ledger.read(cur)
    accepted = {int(v) for v in accept_drift if str(v).isdigit()}
    allowed = {int(v) for v in allow_out_of_order if str(v).isdigit()}
    migrations = layout.migrations()
    # what another tool's ledger covers (golang-migrate: every version up to its own) counts as applied
    applied = {**{m.number: ledger.Applied(m.version, m.name, None) for m in migrations if m.number in raw},
               **raw}
    files = {m.number: m for m in migrations}
    # checksums only: the files that will run are parsed when the plan is built
    loaded = {m.number: sqlfile.read(m.up) for m in migrations}
    pending = [m for m in migrations if m.number not in applied]
    drifted = [m for m in migrations if m.number in applied and applied[m.number].checksum
               and applied[m.number].checksum != loaded[m.number].checksum]
    newest = max(applied, default=0)
    recorded = ledger.details(cur)
    applied_rows = []
    for number in sorted(applied):
        entry = applied[number]
        file = files.get(number)
        file_sum = loaded[number].checksum if file else None
        applied_rows.append({
            "version": entry.version, "name": entry.name, **recorded.get(number, {}),
            "checksum": entry.checksum, "file": file.up if file else None,
            "checksum_matches": None if not (file and entry.checksum) else entry.checksum == file_sum,
            "spec": file.spec if file and os.path.exists(file.spec) else None})
    return {
        "foreign_ledger": raw.tool,
        "applied_details": applied_rows,
        "applied": [applied[n].version for n in sorted(applied)],
        "applied_checksums": {applied[n].version: applied[n].checksum for n in sorted(applied)},
        "files": [{**m.as_dict(), "checksum": loaded[m.number].checksum,
                   "transactional": loaded[m.number].transactional} for m in migrations],
        "pending": [os.path.basename(m.up) for m in pending],
        "pending_paths": [m.up for m in pending],
        "pending_versions": [m.version for m in pending],
        "drifted": [m.up for m in drifted if m.number not in accepted],
        "drift_accepted": [m.up for m in drifted if m.number in accepted],
        "out_of_order": [os.path.basename(m.up) for m in pending if m.number < newest and m.number not in allowed],
        "out_of_order_allowed": [os.path.basename(m.up) for m in pending if m.number < newest and m.number in allowed],
        "missing_files": [applied[n].version for n in sorted(applied) if n not in files],
        "newest_applied": applied[newest].version if applied else None,
    }


def rollback_targets(state: dict[str, Any], to_version: str | None, version: str | None) -> list[dict[str, Any]]:
    """Applied migrations to roll back, newest first: down to (not including) `to_version`, or `version`
    alone (it must be the newest applied), or the newest applied one."""
    applied = [int(v) for v in state["applied"]]
    files = {int(f["version"]): f for f in state["files"]}
    if not applied:
        raise PlanError("nothing to roll back: no migration is applied here")
    if to_version is not None:
        wanted = sorted((v for v in applied if v > int(to_version)), reverse=True)
        if not wanted:
            raise PlanError(f"nothing to roll back: no applied migration is newer than {to_version}")
    else:
        target = int(version) if version is not None else max(applied)
        if target not in applied:
            raise PlanError(f"migration {version} is not applied here (applied: {state['applied']})")
        newer = sorted(v for v in applied if v > target)
        if newer:
            raise PlanError(f"migration {version} is not the newest applied: {newer} were applied after it. "
                            f"Roll them back too with -e pgrollout_rollback_to=<the version before {version}>, "
                            "newest first")
        wanted = [target]
    missing = [v for v in wanted if v not in files]
    if missing:
        raise PlanError(f"applied migration(s) {missing} have no file here: nothing was rolled back")
    return [files[v] for v in wanted]
