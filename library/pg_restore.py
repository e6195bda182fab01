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
    transaction (psql --single-transaction), so it ends restored or exactly as
    it was. Objects created after the backup (tables, views, sequences,
    functions, types, schemas the archive does not hold) are dropped first;
    then the archive's script runs with C(--clean --if-exists).
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
extends_documentation_fragment: [pgrollout]
attributes:
  check_mode:
    support: full
    description: Verifies the checksum and lists what would be dropped and restored; changes nothing.
author: pgrollout developers
"""

EXAMPLES = r"""
- name: Put production back to the state before 003
  pg_restore:
    archive: /var/backups/pgrollout/prod/postgres_pre_003_20261130T100000Z.dump
    login_host: db.example.supabase.co
    login_password: "{{ vault_db_password }}"

- name: Prove the backup restores, with identical row counts
  pg_restore:
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
rehearsal: {description: O(mode=rehearse) tables, rows and differences found., returned: when rehearsed, type: dict}
msg: {description: What was done (or would be, in check mode)., returned: always, type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgrollout.backup import BackupError, trusted_manifest
from ansible.module_utils.pgrollout.connection import CONNECTION_ARGUMENT_SPEC
from ansible.module_utils.pgrollout.restore import plan, rehearse, restore_scratch, restore_target


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
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_if=[("mode", "scratch", ["scratch_db"])])
    p = module.params
    archive, mode = p["archive"], p["mode"]
    into_target = mode == "target"
    try:
        # each restore verifies the checksum itself, first; check mode verifies it here
        if module.check_mode:
            sha256 = trusted_manifest(archive)["sha256"]
            what = plan(p, archive, p["schemas"] if into_target else [], p["tables"], p["pg_bindir"],
                        into_target=into_target)
            module.exit_json(changed=mode != "rehearse", sha256=sha256, **what,
                             msg=f"checksum verified; would restore {len(what['tables'])} table(s) "
                                 f"({mode}) and first drop {len(what['drop_first'])} object(s) created since")
        if into_target:
            what = restore_target(p, archive, schemas=p["schemas"], tables=p["tables"],
                                  lock_timeout=p["lock_timeout"], bindir=p["pg_bindir"])
            sha256 = what.pop("manifest")["sha256"]
            msg = f"restored {archive} into {p['login_db']} in one transaction"
        elif mode == "scratch":
            sha256 = restore_scratch(p, archive, p["scratch_db"], jobs=p["jobs"], tables=p["tables"],
                                     bindir=p["pg_bindir"])["manifest"]["sha256"]
            what = plan(p, archive, [], p["tables"], p["pg_bindir"], into_target=False)
            msg = f"restored {archive} into the new database {p['scratch_db']}"
        else:
            result = rehearse(p, archive, jobs=p["jobs"], bindir=p["pg_bindir"])
            what = plan(p, archive, [], [], p["pg_bindir"], into_target=False)
            module.exit_json(changed=False, sha256=result["sha256"], rehearsal=result, **what,
                             msg=f"rehearsal: {result['tables']} tables and {result['rows']} rows restored "
                                 "as dumped; scratch database dropped")
    except (BackupError, RuntimeError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, sha256=sha256, **what, msg=msg)


if __name__ == "__main__":
    main()
