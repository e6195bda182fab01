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
  - Keeps the newest O(keep) archives of the database in O(dest_dir) and
    removes older ones (only archives with a pgrollout manifest).
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
extends_documentation_fragment: [pgrollout]
attributes:
  check_mode:
    support: full
    description: Runs the checks, reports the archive it would write and its estimated size; writes nothing.
author: pgrollout developers
"""

EXAMPLES = r"""
- name: Back up before migrating
  pg_backup:
    dest_dir: /var/backups/pgrollout/prod
    label: pre_003
    keep: 10
    login_host: db.example.supabase.co
    login_password: "{{ vault_db_password }}"
  register: backup_result

- name: A large database, four workers
  pg_backup:
    dest_dir: /var/backups/pgrollout/prod
    format: directory
    jobs: 4
"""

RETURN = r"""
path: {description: The archive (a folder for the directory format)., returned: always, type: str}
manifest: {description: The manifest file beside it., returned: changed, type: str}
sha256: {description: SHA-256 of the archive (for a directory, over its files' digests)., returned: changed, type: str}
size_bytes: {description: Size of the archive., returned: changed, type: int}
database_size_bytes: {description: pg_database_size of the source., returned: always, type: int}
table_count: {description: Tables in the archive., returned: changed, type: int}
row_counts: {description: Exact rows per table, read in the dump's snapshot., returned: changed, type: dict}
row_estimates: {description: The planner's row estimate per table., returned: changed, type: dict}
validated: {description: How the archive was checked., returned: changed, type: str}
removed: {description: Older archives removed by retention., returned: changed, type: list}
msg: {description: What was written (or would be, in check mode)., returned: always, type: str}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgrollout.backup import (
    BackupError,
    DumpOptions,
    archive_name,
    check_before,
    dump,
    server_facts,
)
from ansible.module_utils.pgrollout.connection import CONNECTION_ARGUMENT_SPEC


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
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    opts = DumpOptions(format=p["format"], jobs=p["jobs"], schemas=p["schemas"], tables=p["tables"],
                       lock_wait_timeout=p["lock_wait_timeout"], compress=p["compress"],
                       free_space_factor=p["free_space_factor"], keep=p["keep"], bindir=p["pg_bindir"])
    try:
        major, size = server_facts(p)
        if module.check_mode:
            if os.path.isdir(p["dest_dir"]):
                check_before(p["dest_dir"], opts, major, size)
            planned = os.path.join(p["dest_dir"], archive_name(p["login_db"], p["label"], p["format"]))
            module.exit_json(changed=True, path=planned, database_size_bytes=size,
                             msg=f"would write {planned} (database is {size} bytes before compression)")
        manifest = dump(p, p["dest_dir"], p["label"], major, size, opts)
    except (BackupError, RuntimeError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, **manifest,
                     msg=f"wrote {manifest['path']} ({manifest['size_bytes']} bytes, {manifest['table_count']} "
                         f"tables, sha256 {manifest['sha256']}, validated: {manifest['validated']})"
                         + (f"; removed {len(manifest['removed'])} older archive(s)" if manifest["removed"] else ""))


if __name__ == "__main__":
    main()
