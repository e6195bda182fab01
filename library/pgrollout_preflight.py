#!/usr/bin/python
"""The preflight's verdict on a target's state."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_preflight
short_description: Refuse, warn or go on, from what pg_facts read
description:
  - Checks, in order, what no run may proceed with - a migration role that lacks a privilege, an
    extension the server cannot provide, a transaction-mode pooler, a read replica, applied files edited
    or missing, schema drift nobody acknowledged (where refused), pending files out of order, a plan
    that cannot run - and fails with the first, C(refused_by) naming the check and C(failure_kind=refused).
  - Otherwise returns the warnings (stub extensions, schema drift where it warns, unfinished runs,
    files without a rollback) and the target's state, as lines to show once.
  - Normally the action plugin of the same name runs it on the control node, without this module.
version_added: "0.4.0"
options:
  facts:
    description: The C(facts) pg_facts returned.
    type: dict
    required: true
  host:
    description: The inventory host, named in messages.
    type: str
    required: true
  schema_drift:
    description: What schema drift does here.
    type: str
    choices: [warn, refuse]
    default: refuse
  accept_drift_reason:
    description: The reason given to acknowledge schema drift; empty for none.
    type: str
    default: ""
  rolling_back:
    description: The run rolls back (files without a rollback file are not warned about).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Decides the same way; changes nothing.
author: pgrollout developers
"""

EXAMPLES = r"""
- name: Refuse, warn or go on
  pgrollout_preflight:
    facts: "{{ preflight_result.facts }}"
    host: "{{ inventory_hostname }}"
    schema_drift: refuse
"""

RETURN = r"""
lines: {description: Warnings and the target's state, to show., returned: success, type: list, elements: str}
refused_by: {description: The check that refused., returned: failure, type: str}
refusals: {description: Every check that refused (check, msg)., returned: failure, type: list, elements: dict}
"""

from ansible.module_utils.basic import AnsibleModule

try:  # this repository (ansible.cfg: module_utils = ./module_utils)
    from ansible.module_utils.pgrollout.verdict import ARGUMENT_SPEC, verdict
except ImportError:  # installed as the collection pgrollout.postgresql
    from ansible_collections.pgrollout.postgresql.plugins.module_utils.verdict import ARGUMENT_SPEC, verdict


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = verdict(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
