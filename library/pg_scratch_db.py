#!/usr/bin/python
"""Create or drop a pgrollout scratch database on the target's server."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_scratch_db
short_description: Create or drop a scratch database for a rehearsal
description:
  - O(state=present) creates O(name) on the server of the connection (the
    connection's own database is only used to connect) and runs each of
    O(setup_files) in it, each in one transaction.
  - O(state=absent) drops it, ending its sessions.
  - Only names starting with C(pgrollout_) are accepted, so a wrong variable
    can never create or drop a real database.
version_added: "0.1.0"
options:
  name:
    description: The scratch database, C(pgrollout_...).
    type: str
    required: true
  state:
    description: Whether it should exist.
    type: str
    choices: [present, absent]
    default: present
  setup_files:
    description: SQL files run in the new database, in order, each in one transaction.
    type: list
    elements: path
    default: []
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: full
    description: Reports whether it would create or drop the database; changes nothing.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: A scratch database with the Supabase compatibility layer
  pgrollout.postgresql.pg_scratch_db:
    name: pgrollout_rehearsal_1a2b
    setup_files: [supabase/compat/supabase_compat.sql]

- name: Drop it
  pgrollout.postgresql.pg_scratch_db:
    name: pgrollout_rehearsal_1a2b
    state: absent
"""

RETURN = r"""
name: {description: The scratch database., returned: always, type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC
from ansible_collections.pgrollout.postgresql.plugins.module_utils.scratch import (
    ScratchError,
    create_database,
    drop_database,
    exists,
    run_sql_file,
)


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        CONNECTION_ARGUMENT_SPEC,
        name={"type": "str", "required": True},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        setup_files={"type": "list", "elements": "path", "default": []},
    ), supports_check_mode=True)
    p = module.params
    try:
        present = exists(p, p["name"])
        wanted = p["state"] == "present"
        if present == wanted or module.check_mode:
            module.exit_json(changed=present != wanted, name=p["name"])
        if wanted:
            create_database(p, p["name"])
            for path in p["setup_files"]:
                run_sql_file(dict(p, login_db=p["name"]), path)
        else:
            drop_database(p, p["name"])
    except (ScratchError, RuntimeError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, name=p["name"])


if __name__ == "__main__":
    main()
