#!/usr/bin/python
"""Record why a pgrollout run failed, and what its rescue rolls back."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_failed
short_description: Record a pgrollout run's failure in its rescue, and what the rescue rolls back
description:
  - Returns C(failure) (task, msg, kind, keep_applied) from the failed task's result, the kind as the
    step set it (M(pgrollout.postgresql.pgrollout_stop)), never read from a task's name.
  - For a rollout, also C(applied_here) (the versions the run applied, none where the stop keeps them or
    under a partially applied file), C(rollback_files) (their files from the plan, newest first) and
    C(own_xids).
  - Normally the action plugin of the same name runs it on the control node, without this module.
version_added: "0.5.0"
options:
  task:
    description: The failed task's name, kept for people to read only.
    type: str
    required: true
  result:
    description: The failed task's result (C(ansible_failed_result)).
    type: dict
    default: {}
  migrate:
    description: The migrate step's result (C(migrate_result)), when it ran.
    type: dict
    default: {}
  plan_files:
    description: The plan's files (version and path), from the preflight.
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
    description: Records the same way.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Keep what failed and what to roll back
  pgrollout.postgresql.pgrollout_failed:
    task: "{{ ansible_failed_task.name }}"
    result: "{{ ansible_failed_result }}"
    migrate: "{{ migrate_result | default({}) }}"
    plan_files: "{{ preflight_result.facts.migrations.files }}"
"""

RETURN = r"""
failure: {description: "The run record's failure (task, msg, kind, keep_applied).", returned: always, type: dict}
applied_here: {description: The versions a rollout's rescue rolls back., returned: always, type: list, elements: str}
rollback_files: {description: "Their files, newest first.", returned: always, type: list, elements: str}
own_xids: {description: The transaction ids of this run's migrations., returned: always, type: list, elements: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.stops import FAILED_SPEC, failed


def main() -> None:
    module = AnsibleModule(argument_spec=FAILED_SPEC, supports_check_mode=True)
    module.exit_json(**failed(module.params))


if __name__ == "__main__":
    main()
