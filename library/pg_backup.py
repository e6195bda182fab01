#!/usr/bin/python
"""pg_dump to a verified, checksummed custom-format archive."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup
short_description: Back a PostgreSQL database up with pg_dump into a verified archive
description:
  - Runs pg_dump in custom format (compressed, restorable table by table with
    pg_restore) into O(dest_dir), writing under a temporary name and renaming
    only after pg_dump succeeded and a full read of the archive passed.
  - Writes the archive and a JSON manifest beside it (sha256, size, versions)
    with mode 0600 in a 0700 folder.
  - The password reaches pg_dump through a temporary 0600 passfile, never argv.
  - Refuses a pg_dump older than the server.
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
  lock_wait_timeout:
    description:
      - How long pg_dump waits for a table lock before failing, so a backup
        never queues behind an exclusive lock.
    type: str
    default: 30s
  pg_bindir:
    description: Folder of pg_dump and pg_restore; found on PATH when not set.
    type: path
extends_documentation_fragment: [pgrollout]
attributes:
  check_mode:
    support: full
    description: Reports the archive it would write and the database size; writes nothing.
author: pgrollout developers
"""

EXAMPLES = r"""
- name: Back up before migrating
  pg_backup:
    dest_dir: /var/backups/pgrollout/prod
    label: pre_003
    login_host: db.example.supabase.co
    login_password: "{{ vault_db_password }}"
  register: backup_result
"""

RETURN = r"""
path: {description: The archive., returned: changed, type: str}
manifest: {description: The manifest file beside it., returned: changed, type: str}
sha256: {description: SHA-256 of the archive., returned: changed, type: str}
size_bytes: {description: Size of the archive., returned: changed, type: int}
database_size_bytes: {description: pg_database_size of the source., returned: always, type: int}
validated: {description: How the archive was checked., returned: changed, type: str}
msg: {description: What was written (or would be, in check mode)., returned: always, type: str}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgrollout.backup import BackupError, archive_name, dump
from ansible.module_utils.pgrollout.connection import CONNECTION_ARGUMENT_SPEC, connect


def main() -> None:
    spec = dict(
        CONNECTION_ARGUMENT_SPEC,
        dest_dir={"type": "path", "required": True},
        label={"type": "str", "default": "backup"},
        lock_wait_timeout={"type": "str", "default": "30s"},
        pg_bindir={"type": "path"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        with connect(p, autocommit=True) as conn:
            major, size = conn.execute(
                "SELECT current_setting('server_version_num')::int / 10000, "
                "pg_database_size(current_database())").fetchone()
        if module.check_mode:
            planned = os.path.join(p["dest_dir"], archive_name(p["login_db"], p["label"]))
            module.exit_json(changed=True, path=planned, database_size_bytes=size,
                             msg=f"would write {planned} (database is {size} bytes before compression)")
        manifest = dump(p, p["dest_dir"], p["label"], major,
                        lock_wait_timeout=p["lock_wait_timeout"], bindir=p["pg_bindir"])
    except (BackupError, RuntimeError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, database_size_bytes=size, **manifest,
                     msg=f"wrote {manifest['path']} ({manifest['size_bytes']} bytes, "
                         f"sha256 {manifest['sha256']}, validated by a full read)")


if __name__ == "__main__":
    main()
