#!/usr/bin/python
"""Prepare a plain PostgreSQL target with the Supabase compatibility layer."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_compat
short_description: Apply the Supabase compatibility layer to a plain PostgreSQL target
description:
  - Runs each of O(files) (the compatibility layer first) in the connection's database, each in one
    transaction, so real Supabase migrations (auth, storage, vault, the API roles) run on a server that is
    not Supabase - a user's own staging server, a CI database.
  - Refuses a real Supabase project (C(auth.schema_migrations), C(storage.migrations) or the
    C(supabase_vault) extension exists) and changes nothing there.
  - C(changed) compares the catalog before and after, so a second run reports no change.
version_added: "0.4.0"
options:
  files:
    description: SQL files run in order, each in one transaction.
    type: list
    elements: path
    required: true
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: partial
    description: Can run in check_mode and report what it would do without changing the target.
    details: Refuses a Supabase project as a real run would and says what it would apply; changes nothing.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Prepare a CI database for Supabase migrations
  pgrollout.postgresql.pg_compat:
    files: [supabase/compat/supabase_compat.sql]
"""

RETURN = r"""
applied: {description: The files run., returned: always, type: list, elements: str}
msg: {description: What was done., returned: always, type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.compat import CompatError, prepare
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC
from ansible_collections.pgrollout.postgresql.plugins.module_utils.scratch import ScratchError


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        CONNECTION_ARGUMENT_SPEC,
        files={"type": "list", "elements": "path", "required": True},
    ), supports_check_mode=True)
    try:
        result = prepare(module.params, module.params["files"], module.check_mode)
    except (CompatError, ScratchError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, "preparing the target"))
    module.exit_json(changed=bool(result.pop("changed")), **result)


if __name__ == "__main__":
    main()
