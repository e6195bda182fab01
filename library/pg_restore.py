#!/usr/bin/python
"""Restore a verified pg_dump archive into the target or a scratch database."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_restore
short_description: Restore a pgrollout archive, checksum first, atomically or into a scratch database
description:
  - Before anything else, compares the archive with the sha256 in its
    manifest (per file for a directory archive) and refuses a damaged one.
  - O(mode=target) makes the target database what the archive holds, in ONE
    transaction that the module opens and commits only after pg_restore exited
    0, so it ends restored or exactly as it was. Objects created after the
    backup (tables, views, sequences, functions, types, schemas the archive
    does not hold) are dropped first, every name quoted as an identifier
    (functions by their argument types); then the archive's script runs with
    C(--clean --if-exists). A schema-scoped restore refuses to drop anything
    that objects outside its schemas depend on.
  - A restore into the target discards data, so it is the operator's decision -
    it needs O(confirm), the first 12 hex digits of the archive's sha256, and
    first reports what it would throw away (per table rows inserted, updated
    and deleted since the backup, row counts then and now, objects created and
    migrations applied since); with writes since the backup it also needs
    O(discard_writes).
  - With O(tables), only those tables' rows are restored, emptied and
    reloaded in one transaction; their definitions stay.
  - O(mode=scratch) creates O(scratch_db) on the same server and restores
    into it with O(jobs) parallel workers (custom and directory formats).
  - O(mode=rehearse) restores into a new scratch database, compares every
    table's row count with the counts the manifest recorded in the dump's
    snapshot, and drops the scratch database even when they differ.
  - The password reaches pg_restore and psql through a temporary 0600 passfile, never argv.
version_added: "0.1.0"
options:
  archive:
    description: The archive (file or directory) with its C(.manifest.json) beside it.
    type: path
    required: true
  mode:
    description: Where to restore.
    type: str
    choices: [target, scratch, rehearse]
    default: target
  scratch_db:
    description: Database to create for O(mode=scratch), named C(pgrollout_...); it must not exist.
    type: str
  tables:
    description: Restore only these tables (C(schema.table) or C(table)).
    type: list
    elements: str
    default: []
  schemas:
    description: O(mode=target) only; restore (and clean) only these schemas. All when empty.
    type: list
    elements: str
    default: []
  jobs:
    description: Parallel pg_restore workers for O(mode=scratch) and O(mode=rehearse).
    type: int
    default: 1
  lock_timeout:
    description: O(mode=target) only; how long the restore waits for each lock before it fails (and rolls back).
    type: str
    default: 30s
  pg_bindir:
    description: Folder of pg_restore and psql; found on PATH when not set.
    type: path
  confirm:
    description: O(mode=target) - the first 12 hex digits of the archive's sha256, the operator's decision.
    type: str
  discard_writes:
    description: O(mode=target) - restore even though rows were written since the backup (they are lost).
    type: bool
    default: false
  own_xids:
    description:
      - Transaction ids of this run's own migrations (pg_migrate's per-file C(xid)); rows they wrote
        are not counted as other sessions' writes in C(discard_report.others_wrote_since).
    type: list
    elements: str
    default: []
  refuse_others_writes:
    description:
      - O(mode=target) - refuse when any session other than O(own_xids) wrote rows since the backup,
        whatever O(discard_writes) says (an automatic restore).
    type: bool
    default: false
  run_id:
    description: This run's identifier; with O(require_lease) a target restore runs only under its lease.
    type: str
  require_lease:
    description: Refuse a target restore unless O(run_id) holds the run lease.
    type: bool
    default: false
  progress_seconds:
    description:
      - Run with C(async) and C(poll), a progress line this often (O(mode=target) - the archive's SQL sent to
        the target so far; O(mode=rehearse) - the scratch database's size), read at each of Ansible's polls.
    type: float
    default: 10.0
extends_documentation_fragment: [pgrollout.postgresql.pgrollout, pgrollout.postgresql.pgrollout.controller]
attributes:
  check_mode:
    support: full
    description:
      - Verifies the checksum, lists what would be dropped and restored and
        reports what the restore would discard; changes nothing.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Put production back to the state before 003 (the operator's decision)
  pgrollout.postgresql.pg_restore:
    archive: /var/backups/pgrollout/prod/prod-db__postgres__pre_003__20261130T100000Z.dump
    confirm: 3f2a9c01b7de
    login_host: db.example.supabase.co
    login_password: "{{ vault_db_password }}"

- name: Prove the backup restores, with identical row counts
  pgrollout.postgresql.pg_restore:
    archive: "{{ backup_result.path }}"
    mode: rehearse
    jobs: 2
"""

RETURN = r"""
sha256: {description: The archive's verified sha256., returned: always, type: str}
drop_first:
  description: O(mode=target) the statements that drop objects created since the backup.
  returned: always
  type: list
tables: {description: Tables restored (or that would be)., returned: always, type: list}
discard_report:
  description:
    - O(mode=target) what the restore discards - tables (per table rows_at_backup,
      rows_now, inserted, updated, deleted since the backup), objects_created_since,
      migrations_applied_since, writes_since_backup.
  returned: mode target
  type: dict
rehearsal: {description: "O(mode=rehearse) tables, rows and differences found.", returned: when rehearsed, type: dict}
msg: {description: "What was done (or would be, in check mode).", returned: always, type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.backup import BackupError, trusted_manifest
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible_collections.pgrollout.postgresql.plugins.module_utils.lease import LeaseError, check
from ansible_collections.pgrollout.postgresql.plugins.module_utils.restore import (
    describe_report,
    discard_report,
    plan,
    rehearsal_said,
    rehearse,
    restore_scratch,
    restore_target,
)


def decided(module: AnsibleModule, p: dict, sha256: str, report: dict) -> None:
    """A target restore goes ahead only on the operator's explicit, informed decision."""
    common = {"sha256": sha256, "discard_report": report}
    if (p["confirm"] or "").lower() != sha256[:12]:
        module.fail_json(msg=f"restoring {p['archive']} into {p['login_db']} discards data: "
                             f"{describe_report(report)}. It needs the operator's decision: confirm with the first "
                             f"12 hex digits of its sha256 ({sha256[:12]}).", **common)
    if p["refuse_others_writes"] and report["others_wrote_since"] is not False:
        module.fail_json(msg=f"other sessions wrote to {p['login_db']} since the backup {p['archive']} (or it cannot "
                             f"be told: {report['others_wrote_since'] is None}); an automatic restore never discards "
                             f"them: {describe_report(report)}. Nothing was restored.", **common)
    if report["writes_since_backup"] and not p["discard_writes"]:
        module.fail_json(msg=f"rows were written since the backup of {p['archive']} and the restore would discard "
                             f"them: {describe_report(report)}. To restore anyway, also set discard_writes "
                             "(pgrollout_restore_discard_writes=true).", **common)


def main() -> None:
    spec = dict(
        CONNECTION_ARGUMENT_SPEC,
        archive={"type": "path", "required": True},
        mode={"type": "str", "default": "target", "choices": ["target", "scratch", "rehearse"]},
        scratch_db={"type": "str"},
        tables={"type": "list", "elements": "str", "default": []},
        schemas={"type": "list", "elements": "str", "default": []},
        jobs={"type": "int", "default": 1},
        lock_timeout={"type": "str", "default": "30s"},
        pg_bindir={"type": "path"},
        confirm={"type": "str"},
        discard_writes={"type": "bool", "default": False},
        own_xids={"type": "list", "elements": "str", "default": []},
        refuse_others_writes={"type": "bool", "default": False},
        run_id={"type": "str"},
        require_lease={"type": "bool", "default": False},
        progress_seconds={"type": "float", "default": 10.0},
        controller_pid={"type": "int"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_if=[("mode", "scratch", ["scratch_db"]), ("require_lease", True, ["run_id"])])
    p = module.params
    archive, mode = p["archive"], p["mode"]
    into_target = mode == "target"
    try:
        manifest = trusted_manifest(archive)  # the checksum, before anything else
        sha256 = manifest["sha256"]
        if into_target:
            what = plan(p, archive, p["schemas"], p["tables"], p["pg_bindir"], into_target=True)
            report = discard_report(p, manifest, what["drop_first"], p["own_xids"])
            if module.check_mode:
                module.exit_json(changed=True, sha256=sha256, discard_report=report, **modules.public(what),
                                 msg=f"checksum verified; would restore {len(what['tables'])} table(s) and first "
                                     f"drop {len(what['drop_first'])} object(s) created since; it would discard: "
                                     f"{describe_report(report)}")
            decided(module, p, sha256, report)
            if p["require_lease"]:
                with connect(p) as conn, conn.transaction(), conn.cursor() as cur:
                    check(cur, p["run_id"])
            what = restore_target(p, archive, schemas=p["schemas"], tables=p["tables"],
                                  lock_timeout=p["lock_timeout"], bindir=p["pg_bindir"], run_id=p["run_id"],
                                  controller_pid=p["controller_pid"])
            what.pop("manifest")
            module.exit_json(changed=True, sha256=sha256, discard_report=report, **what,
                             msg=f"restored {archive} into {p['login_db']} in one transaction; discarded: "
                                 f"{describe_report(report)}")
        if module.check_mode:
            what = plan(p, archive, [], p["tables"], p["pg_bindir"], into_target=False)
            module.exit_json(changed=mode != "rehearse", sha256=sha256, **modules.public(what),
                             msg=f"checksum verified; would restore {len(what['tables'])} table(s) ({mode})")
        if mode == "scratch":
            restore_scratch(p, archive, p["scratch_db"], jobs=p["jobs"], tables=p["tables"], bindir=p["pg_bindir"])
            what = plan(p, archive, [], p["tables"], p["pg_bindir"], into_target=False)
            module.exit_json(changed=True, sha256=sha256, **modules.public(what),
                             msg=f"restored {archive} into the new database {p['scratch_db']}")
        result = rehearse(p, archive, jobs=p["jobs"], bindir=p["pg_bindir"])
        what = plan(p, archive, [], [], p["pg_bindir"], into_target=False)
        module.exit_json(changed=False, sha256=result["sha256"], rehearsal=result, **modules.public(what),
                         msg=rehearsal_said(result))
    except (BackupError, RuntimeError, OSError, LeaseError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, f"restoring {archive}"))


if __name__ == "__main__":
    main()
