"""A run's plan: which files run, in which order and direction, with which specs.

Everything a run needs is read and checked here, before anything changes:
every forward or rollback file exists and parses, every spec that exists (or
is required) is valid. The playbooks get the plan from pg_facts and hand the
files to pg_migrate; neither rebuilds file names.
"""
from __future__ import annotations

import functools
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


def refuse_too_big(path: str, max_mb: int) -> None:
    """PlanError for a file over `max_mb` MB (0: no limit), before it is read or parsed."""
    size = os.path.getsize(path) if max_mb and os.path.exists(path) else 0
    if size > max_mb * 1024 * 1024:
        raise PlanError(
            f"{os.path.basename(path)} is {size / 1024 / 1024:.1f} MB, over pgrollout_max_migration_mb ({max_mb}): "
            "every statement of a file is parsed and reviewed before the run, about a minute of CPU per 50 MB of "
            "INSERTs (bench/big_file_preflight.py), with no output while it runs, and applied one statement at a "
            "time. Load bulk data with COPY (psql's \\copy) outside the migration or split the file; or raise "
            "pgrollout_max_migration_mb for this run (-e pgrollout_max_migration_mb=100). Nothing was changed.")


def refuse_changed(items: list[Item], approved: dict[str, str]) -> None:
    """PlanError when a file to run differs from the checksum the preflight (and the gates) approved.

    The files are read again when they are applied; an edit in between (a
    checkout, a hand edit during the backup) would run what nobody reviewed.
    """
    changed = [f"{os.path.basename(i.file.path)} (approved {approved[i.file.path][:12]}, now {i.file.checksum[:12]})"
               for i in items if i.direction == "up" and i.file.path in approved
               and approved[i.file.path] and approved[i.file.path] != i.file.checksum]
    if changed:
        raise PlanError(f"changed since the preflight approved it: {', '.join(changed)}. Nothing was applied: run "
                        "again, so the file as it is now is reviewed, gated and backed up for")


def parsed(items: list[Item]) -> dict[str, str]:
    """The parse of each forward file of the plan, by path (sqlfile.summary): what pg_migrate takes instead of
    parsing again. Parsing takes about a second per 2 MB of INSERTs, building from the summary a tenth of that
    (150 small files: 0.15 s against 0.01 s)."""
    from . import locks

    return {i.file.path: sqlfile.summary(i.file, locks.file_plan(i.file)) for i in items if i.direction == "up"}


def _forward(migration: Migration, made: str | None) -> sqlfile.MigrationFile:
    """The forward file, from the preflight's parse where it matches the file as it is, else parsed."""
    found = sqlfile.from_summary(migration.up, migration.version, migration.name, made) if made else None
    return found or sqlfile.load(migration.up, migration.version, migration.name)


def build(layout: Layout, files: list[str], direction: str = "up", require_spec: bool = False,
          final_checks: list[dict[str, Any]] | None = None, require_rollback: bool = False,
          max_file_mb: int = 0, parsed: dict[str, str] | None = None) -> list[Item]:
    """Items for `files` (forward paths, in the order to run) with their rollback files and specs.

    With `require_rollback`, a forward file without its rollback file is refused; with `max_file_mb`,
    a file bigger than that; `parsed` (by path, from parsed()) spares a forward file its second parse."""
    by_path = {os.path.realpath(m.up): m for m in layout.migrations()}
    items = []
    for path in files:
        migration = by_path.get(os.path.realpath(path))
        if migration is None:
            raise PlanError(f"{path} is not a migration of {layout.migrations_dir} ({layout.layout} layout)")
        refuse_too_big(migration.up if direction == "up" else migration.down, max_file_mb)
        try:
            forward = _forward(migration, (parsed or {}).get(migration.up) if direction == "up" else None)
            sqlfile.refuse_transaction_control(forward)
            if direction == "up" and require_rollback and not os.path.exists(migration.down):
                raise PlanError(f"{migration.stem} has no rollback file {migration.down}: this environment requires "
                                "one (pgrollout_require_rollback). Write it (make new-migration creates both files; "
                                "README, Rollback), or set pgrollout_require_rollback: false for this environment.")
            if direction == "up":
                items.append(Item(file=forward, direction="up",
                                  checks=_spec(migration.spec, require_spec, migration.stem),
                                  spec=migration.spec if os.path.exists(migration.spec) else None))
                continue
            if not os.path.exists(migration.down):
                raise PlanError(f"{migration.stem} has no rollback file {migration.down}: nothing was rolled "
                                "back. Write it, or restore from a backup (README, Rollback).")
            down = sqlfile.load(migration.down, migration.version, migration.name)
            sqlfile.refuse_transaction_control(down)
        except MigrationFileError as exc:
            raise PlanError(str(exc)) from exc
        items.append(Item(file=down, direction="down", forward_checksum=forward.checksum,
                          checks=_spec(migration.rollback_spec, require_spec, f"the rollback of {migration.stem}"),
                          spec=migration.rollback_spec if os.path.exists(migration.rollback_spec) else None))
    if final_checks and items:
        last = items[-1]
        last.checks = (last.checks or []) + checks.validate(final_checks)
    return items


def _up_to(pending: list[Migration], target_version: str | None,
           layout: str) -> tuple[list[Migration], list[Migration]]:
    """The pending files up to and including `target_version`, and those after it."""
    if target_version in (None, ""):
        return pending, []
    limit = sqlfile.version_key(str(target_version), layout)
    return ([m for m in pending if sqlfile.version_key(m.version, layout) <= limit],
            [m for m in pending if sqlfile.version_key(m.version, layout) > limit])


def status(cur: Cursor, layout: Layout, accept_drift: list[str] = (), allow_out_of_order: list[str] = (),
           target_version: str | None = None) -> dict[str, Any]:
    """Applied, pending, drifted, missing and out-of-order migrations: ledger against files.

    With `target_version`, only the pending files up to and including it are pending
    (`beyond_target` lists the others); a version no file and no ledger row has is refused.
    """
    raw = ledger.read(cur)
    accepted = {int(v) for v in accept_drift if str(v).isdigit()}
    allowed = {int(v) for v in allow_out_of_order if str(v).isdigit()}
    migrations = layout.migrations()
    key = functools.partial(sqlfile.version_key, layout=layout.layout)
    # what another tool's ledger covers (golang-migrate: every version up to its own) counts as applied
    applied = {**{m.number: ledger.Applied(m.version, m.name, None) for m in migrations if m.number in raw},
               **raw}
    if target_version not in (None, ""):
        target = str(target_version)
        if not target.isdigit() or int(target) not in {m.number for m in migrations} | set(applied):
            raise PlanError(f"pgrollout_target_version {target}: no migration file and no applied migration has "
                            f"that version in {layout.migrations_dir}; give the version of a file there")
        # as that file (or ledger row) spells it: 3 and 003 name the same version
        target_version = next((m.version for m in migrations if m.number == int(target)),
                              applied[int(target)].version if int(target) in applied else target)
    files = {m.number: m for m in migrations}
    # checksums only: the files that will run are parsed when the plan is built
    loaded = {m.number: sqlfile.read(m.up) for m in migrations}
    pending, beyond = _up_to([m for m in migrations if m.number not in applied], target_version, layout.layout)
    drifted = [m for m in migrations if m.number in applied and applied[m.number].checksum
               and applied[m.number].checksum != loaded[m.number].checksum]
    # a ledger row compares as its file spells the version (another tool's ledger may write 10 for 010)
    spelled = {n: files[n].version if n in files else applied[n].version for n in applied}
    in_order = sorted(applied, key=lambda n: files[n].order if n in files else (key(spelled[n]),))
    newest = max(applied, key=lambda n: key(spelled[n]), default=None)
    later = [m for m in pending if newest is not None and key(m.version) < key(spelled[newest])]
    recorded = ledger.details(cur)
    applied_rows = []
    for number in in_order:
        entry = applied[number]
        file = files.get(number)
        file_sum = loaded[number].checksum if file else None
        applied_rows.append({
            "version": entry.version, "name": entry.name, **recorded.get(number, {}),
            "checksum": entry.checksum, "file": file.up if file else None,
            "checksum_matches": None if not (file and entry.checksum) else entry.checksum == file_sum,
            "spec": file.spec if file and os.path.exists(file.spec) else None})
    listed = [{**m.as_dict(), "checksum": loaded[m.number].checksum,
               "transactional": loaded[m.number].transactional} for m in migrations]
    pending_paths = {m.up for m in pending}
    return {
        "layout": layout.layout,
        "foreign_ledger": raw.tool,
        "applied_details": applied_rows,
        "applied": [applied[n].version for n in in_order],
        "applied_checksums": {applied[n].version: applied[n].checksum for n in in_order},
        "files": listed,
        # what the gates judge and the migrate step may run, decided here rather than by Jinja over 150 files
        "pending_files": [f for f in listed if f["path"] in pending_paths],
        "checksums": {f["path"]: f["checksum"] for f in listed},
        "pending": [os.path.basename(m.up) for m in pending],
        "pending_paths": [m.up for m in pending],
        "pending_versions": [m.version for m in pending],
        "pending_bytes": sum(os.path.getsize(m.up) for m in pending if os.path.exists(m.up)),
        "target_version": str(target_version) if target_version not in (None, "") else None,
        "beyond_target": [os.path.basename(m.up) for m in beyond],
        "drifted": [m.up for m in drifted if m.number not in accepted],
        "drift_accepted": [m.up for m in drifted if m.number in accepted],
        "out_of_order": [os.path.basename(m.up) for m in later if m.number not in allowed],
        "out_of_order_allowed": [os.path.basename(m.up) for m in later if m.number in allowed],
        "missing_files": [applied[n].version for n in in_order if n not in files],
        "newest_applied": applied[newest].version if newest is not None else None,
        # a backup taken before this run holds the target at its newest applied version
        "backup_label": (f"at_{applied[newest].version if newest is not None else 'none'}"
                         + (f"_before_{pending[0].version}" if pending else "")),
    }


def rollback_targets(state: dict[str, Any], to_version: str | None, version: str | None) -> list[dict[str, Any]]:
    """Applied migrations to roll back, newest first: down to (not including) `to_version`, or `version`
    alone (it must be the newest applied), or the newest applied one."""
    layout = state.get("layout", "supabase")
    by_number = {int(v): v for v in state["applied"]}
    applied = list(by_number)

    def key(number: int) -> bytes | int:
        return sqlfile.version_key(by_number.get(number, str(number)), layout)

    files = {int(f["version"]): f for f in state["files"]}
    if not applied:
        raise PlanError("nothing to roll back: no migration is applied here")
    if to_version is not None:
        limit = sqlfile.version_key(str(to_version), layout)
        wanted = sorted((v for v in applied if key(v) > limit), key=key, reverse=True)
        if not wanted:
            raise PlanError(f"nothing to roll back: no applied migration is newer than {to_version}")
    else:
        target = int(version) if version is not None else max(applied, key=key)
        if target not in applied:
            raise PlanError(f"migration {version} is not applied here (applied: {state['applied']})")
        newer = sorted((v for v in applied if key(v) > key(target)), key=key)
        if newer:
            raise PlanError(f"migration {version} is not the newest applied: {[by_number[v] for v in newer]} were "
                            "applied after it. "
                            f"Roll them back too with -e pgrollout_rollback_to=<the version before {version}>, "
                            "newest first")
        wanted = [target]
    missing = [v for v in wanted if v not in files]
    if missing:
        raise PlanError(f"applied migration(s) {missing} have no file here: nothing was rolled back")
    return [files[v] for v in wanted]


def rehearsal(state: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """What rehearse.yml rehearses: `version`, else every pending file (up to the target version), else the
    target version's file or the newest file; the files before the first of them (the baseline); what they
    lack, with the command that makes it."""
    files = state["files"]
    if version in (None, "") and not state["pending_paths"] and state.get("target_version"):
        version = state["target_version"]
    if version not in (None, ""):
        chosen = [f for f in files if str(version).isdigit() and int(f["version"]) == int(version)]
        if not chosen:
            raise PlanError(f"no migration {version} to rehearse in this folder: give the version of a file there")
    else:
        pending = set(state["pending_paths"])
        chosen = [f for f in files if f["path"] in pending] or files[-1:]
    if not chosen:
        raise PlanError("no migration file to rehearse")
    rehearsed = {f["path"] for f in chosen}
    first = files.index(chosen[0])
    return {
        "files": [f["path"] for f in chosen],
        "versions": [f["version"] for f in chosen],
        "baseline": [f["path"] for f in files[:first] if f["path"] not in rehearsed],
        "missing_specs": [f"{os.path.basename(f['path'])} has no verification spec {f['spec']}: write it with "
                          f"`make spec VERSION={f['version']}`" for f in chosen if not f["spec_exists"]],
        "missing_rollbacks": [f"{os.path.basename(f['path'])} has no rollback file {f['down']}: write it "
                              "(`make new-migration NAME=...` creates a migration with its rollback file and spec)"
                              for f in chosen if not f["down_exists"]],
        "missing_rollback_specs": [f["rollback_spec"] for f in chosen if not f["rollback_spec_exists"]],
    }
