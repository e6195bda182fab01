#!/usr/bin/python
"""Stop a pgrollout run with a failure kind."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_stop
short_description: Stop a pgrollout run, saying why as a value
description:
  - Fails the task with O(msg), and returns C(failure_kind) and C(keep_applied), so the run's rescue
    decides from values (whether what the run applied is rolled back), never from a task's name.
  - Normally the action plugin of the same name runs it on the control node, without this module.
version_added: "0.4.0"
options:
  kind:
    description: Why the run stops.
    type: str
    required: true
    choices: [check_failed, lint_unacknowledged, refused, warnings_unacknowledged, watch_breach]
  msg:
    description: What the operator reads, and what to do.
    type: str
    required: true
  keep_applied:
    description: What the run applied stays (a verified migration held only for a reason that is not its fault).
    type: bool
    default: false
  refused_by:
    description: The check that refused (O(kind=refused)), returned as C(refused_by) for the evidence.
    type: str
attributes:
  check_mode:
    support: full
    description: Fails the same way.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Stop on warnings nobody acknowledged
  pgrollout.postgresql.pgrollout_stop:
    kind: warnings_unacknowledged
    msg: 2 warnings must be acknowledged in staging
    keep_applied: true
  when: unacknowledged | length > 0
"""

RETURN = r"""
failure_kind: {description: The O(kind)., returned: always, type: str}
keep_applied: {description: The O(keep_applied)., returned: always, type: bool}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.stops import ARGUMENT_SPEC, stop


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = stop(module.params)
    module.fail_json(**{k: v for k, v in result.items() if k != "failed"})


if __name__ == "__main__":
    main()
