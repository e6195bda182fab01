#!/usr/bin/python
"""pg_dump to a verified, checksummed custom-format archive."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup
short_description: Back a PostgreSQL database up with pg_dump into a verified archive
description:
  - Runs pg_dump into O(dest_dir) in custom format (default), directory format
    (with parallel O(jobs)) or plain SQL, of the whole database or of chosen
    O(schemas) or O(tables), writing under a temporary name and renaming only
    after pg_dump succeeded and a full read of the archive passed.
  - Checks first that pg_dump is at least the server's major version, that
    O(dest_dir) is writable and has free space for the database.
  - pg_dump runs on a snapshot exported by a transaction that counts every
    dumped table's rows, so the manifest beside the archive holds the exact row
    counts of the archive, with sha256 (per file for a directory), size, table
    count and the planner's row estimates. Files 0600, folders 0700.
  - Keeps the newest O(keep) archives of this host's database in O(dest_dir) and
    removes older ones (only archives with a pgrollout manifest), never one in
    O(protect) and never one the newest evidence in O(evidence_dir) of a still
    applied migration names.
  - Archive names carry the inventory host, database, label, time and run id.
  - With O(run_id) and O(require_lease), refuses to back up unless this run holds the run lease.
  - The password reaches pg_dump through a temporary 0600 passfile, never argv.
version_added: "0.1.0"
options:
  dest_dir:
    description: Folder for the archive on the managed host; created 0700 when missing.
    type: path
    required: true
  label:
    description: Part of the archive name, for example C(pre_003).
    type: str
    default: backup
  format:
    description: C(custom) (compressed, one file), C(directory) (one file per table, parallel) or C(plain) SQL.
    type: str
    choices: [custom, directory, plain]
    default: custom
  jobs:
    description: Parallel pg_dump workers (O(format=directory) only).
    type: int
    default: 1
  compress:
    description: gzip level 0-9; pg_dump's default when not set.
    type: int
  schemas:
    description: Dump only these schemas (the whole database when empty).
    type: list
    elements: str
    default: []
  tables:
    description: Dump only these tables (C(schema.table) or C(table)).
    type: list
    elements: str
    default: []
  lock_wait_timeout:
    description:
      - How long pg_dump waits for a table lock before failing, so a backup
        never queues behind an exclusive lock.
    type: str
    default: 30s
  free_space_factor:
    description: Free space needed in O(dest_dir), as a multiple of the database size; C(0) skips the check.
    type: float
    default: 1.0
  keep:
    description: Keep the newest N archives of this database in O(dest_dir); C(0) keeps all.
    type: int
    default: 0
  pg_bindir:
    description: Folder of pg_dump and pg_restore; found on PATH when not set.
    type: path
  inventory_host:
    description: The inventory host, in the archive's name and manifest (retention is per host and database).
    type: str
    default: ""
  run_id:
    description: The run's identifier, in the archive's name and manifest.
    type: str
    default: ""
  require_lease:
    description: Refuse unless O(run_id) holds the run lease on the database.
    type: bool
    default: false
  protect:
    description: Archives retention never removes.
    type: list
    elements: path
    default: []
  progress_seconds:
    description:
      - Run with C(async) and C(poll), a progress line (tables dumped of the total, bytes written, the
        sessions pg_dump waits for) this often in the job's status, which each poll of Ansible shows;
        without async nothing is written.
    type: float
    default: 10.0
  rehearse:
    description:
      - After the dump, rehearse its restore into a scratch database on the same server and compare
        row counts (as M(pgrollout.postgresql.pg_restore) O(pgrollout.postgresql.pg_restore#module:mode=rehearse)
        does), in the same module run; the result in C(rehearsal_result). Not in check mode.
    type: bool
    default: false
  evidence_dir:
    description:
      - Evidence folder; the backups named by the newest record of each
        still-applied migration are protected from retention.
    type: path
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: full
    description: Runs the checks, reports the archive it would write and its estimated size; writes nothing.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Back up before migrating
  pgrollout.postgresql.pg_backup:
    dest_dir: /var/backups/pgrollout/prod
    label: pre_003
    keep: 10
    login_host: db.example.supabase.co
    login_password: "{{ vault_db_password }}"
  register: backup_result

- name: A large database, four workers
  pgrollout.postgresql.pg_backup:
    dest_dir: /var/backups/pgrollout/prod
    format: directory
    jobs: 4
"""

RETURN = r"""
rehearsal_result:
  description: With O(rehearse), the rehearsal (rehearsal, sha256, msg) as pg_restore returns it; else skipped.
  returned: changed
  type: dict
path: {description: The archive (a folder for the directory format)., returned: always, type: str}
manifest: {description: The manifest file beside it., returned: changed, type: str}
sha256: {description: "SHA-256 of the archive (a directory: over its files' digests).", returned: changed, type: str}
size_bytes: {description: Size of the archive., returned: changed, type: int}
database_size_bytes: {description: pg_database_size of the source., returned: always, type: int}
table_count: {description: Tables in the archive., returned: changed, type: int}
row_counts: {description: "Exact rows per table, read in the dump's snapshot.", returned: changed, type: dict}
row_estimates: {description: The planner's row estimate per table., returned: changed, type: dict}
validated: {description: How the archive was checked., returned: changed, type: str}
removed: {description: Older archives removed by retention., returned: changed, type: list}
msg: {description: "What was written (or would be, in check mode).", returned: always, type: str}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.backup import (
    BackupError,
    DumpOptions,
    archive_name,
    check_before,
    dump,
    server_facts,
)
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible_collections.pgrollout.postgresql.plugins.module_utils.evidence import protected_backups
from ansible_collections.pgrollout.postgresql.plugins.module_utils.lease import LeaseError, check


def lease_and_ledger(p: dict) -> list[str]:
    """Check the run lease (when required); return the applied versions."""
    with connect(p) as conn, conn.transaction(), conn.cursor() as cur:
        if p["require_lease"]:
            check(cur, p["run_id"])
        cur.execute("SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL")
        if not cur.fetchone()[0]:
            return []
        cur.execute("SELECT version FROM supabase_migrations.schema_migrations")
        return [row[0] for row in cur.fetchall()]


def rehearsed(module: AnsibleModule, p: dict, path: str) -> dict:
    """The archive restored into a scratch database and its row counts compared, as pg_restore's rehearse
    mode reports it (the same module run: no second process)."""
    # imported where it is needed: a backup without rehearsal does not load the restore code
    from ansible_collections.pgrollout.postgresql.plugins.module_utils.restore import rehearsal_said, rehearse

    try:
        result = rehearse(p, path, jobs=p["jobs"], bindir=p["pg_bindir"])
    except (BackupError, RuntimeError, OSError) as exc:
        module.fail_json(msg=f"the backup {path} was written, but rehearsing its restore failed: {exc}. Nothing "
                             "else was changed", path=path)
    return {"changed": False, "sha256": result["sha256"], "rehearsal": result, "msg": rehearsal_said(result)}


def main() -> None:
    spec = dict(
        CONNECTION_ARGUMENT_SPEC,
        dest_dir={"type": "path", "required": True},
        label={"type": "str", "default": "backup"},
        format={"type": "str", "default": "custom", "choices": ["custom", "directory", "plain"]},
        jobs={"type": "int", "default": 1},
        compress={"type": "int"},
        schemas={"type": "list", "elements": "str", "default": []},
        tables={"type": "list", "elements": "str", "default": []},
        lock_wait_timeout={"type": "str", "default": "30s"},
        free_space_factor={"type": "float", "default": 1.0},
        keep={"type": "int", "default": 0},
        pg_bindir={"type": "path"},
        inventory_host={"type": "str", "default": ""},
        run_id={"type": "str", "default": ""},
        require_lease={"type": "bool", "default": False},
        protect={"type": "list", "elements": "path", "default": []},
        evidence_dir={"type": "path"},
        rehearse={"type": "bool", "default": False},
        progress_seconds={"type": "float", "default": 10.0},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    opts = DumpOptions(format=p["format"], jobs=p["jobs"], schemas=p["schemas"], tables=p["tables"],
                       lock_wait_timeout=p["lock_wait_timeout"], compress=p["compress"],
                       free_space_factor=p["free_space_factor"], keep=p["keep"], bindir=p["pg_bindir"],
                       inventory_host=p["inventory_host"], run_id=p["run_id"],
                       progress_seconds=p["progress_seconds"])
    try:
        major, size = server_facts(p)
        applied = lease_and_ledger(dict(p, require_lease=p["require_lease"] and not module.check_mode))
        opts.protect = p["protect"] + protected_backups(p["evidence_dir"], p["inventory_host"], applied)
        if module.check_mode:
            if os.path.isdir(p["dest_dir"]):
                check_before(p["dest_dir"], opts, major, size)
            planned = os.path.join(p["dest_dir"], archive_name(p["login_db"], p["label"], p["format"],
                                                               host=p["inventory_host"], run_id=p["run_id"]))
            module.exit_json(changed=True, path=planned, database_size_bytes=size,
                             msg=f"would write {planned} (database is {size} bytes before compression)")
        manifest = dump(p, p["dest_dir"], p["label"], major, size, opts)
    except (BackupError, RuntimeError, OSError, LeaseError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, "backing the database up"))
    rehearsal = rehearsed(module, p, manifest["path"]) if p["rehearse"] else {"skipped": True}
    module.exit_json(changed=True, **manifest, rehearsal_result=rehearsal,
                     msg=f"wrote {manifest['path']} ({manifest['size_bytes']} bytes, {manifest['table_count']} "
                         f"tables, sha256 {manifest['sha256']}, validated: {manifest['validated']})"
                         + (f"; removed {len(manifest['removed'])} older archive(s)" if manifest["removed"] else ""))


if __name__ == "__main__":
    main()
