#!/usr/bin/python
"""The version gate: can this control node run pgrollout?"""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_control_node
short_description: Refuse a control node that cannot run pgrollout
description:
  - Reads the versions of ansible-core, Python and the PostgreSQL client programs (pg_dump, pg_restore,
    psql on PATH) and fails, naming what is missing or too old, when ansible-core is older than 2.19,
    Python older than 3.11 or a client program is missing.
  - The action plugin of the same name runs it in the controller's own process (the control node is
    what is checked); the evidence records the same versions.
version_added: "0.5.0"
options:
  clients:
    description: The PostgreSQL client programs that must be on PATH.
    type: list
    elements: str
    default: [pg_dump, pg_restore, psql]
attributes:
  check_mode:
    support: full
    description: Reads and refuses the same way; changes nothing.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Refuse a control node that cannot run pgrollout
  pgrollout.postgresql.pgrollout_control_node:
  run_once: true
"""

RETURN = r"""
versions:
  description: ansible_core, python and each of O(clients) (its --version line, or null).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.tools import ARGUMENT_SPEC, control_node


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = control_node(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
