#!/usr/bin/python
"""The change window and the promotion gate, before a run changes anything."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_gates
short_description: Refuse a change outside its window or without proof from earlier environments
description:
  - B(Change window.) When O(window) is set, refuses unless O(now) (default
    the current time) falls on one of its days between its start and end, in
    its timezone (IANA name; daylight saving time follows the tz database).
    O(window_override=true) with a O(window_override_reason) lets the run go
    on; the result says so, for the evidence.
  - B(Promotion.) Refuses unless, for every migration in O(migrations), each
    environment in O(promotion_environments) has a succeeded rollout record
    and a succeeded rehearsal record under O(evidence_root)/<env>/ in which
    that file (same checksum) changed the database. The refusal names each
    missing record. O(promotion_override=true) with a reason lets it go on.
  - In check mode nothing is refused; what would be is reported in RV(refusals).
version_added: "0.1.0"
options:
  window:
    description: C(days) (mon..sun), C(start), C(end) (HH:MM), C(timezone); no window when empty.
    type: dict
    default: {}
  now:
    description:
      - The time to judge, ISO 8601 with an offset; the current time when empty.
      - A given time is recorded in RV(overrides) (gate C(clock)), so it can never pass a window silently.
    type: str
  window_override: {description: Go on outside the window., type: bool, default: false}
  window_override_reason: {description: Why; required with O(window_override)., type: str, default: ""}
  signing_key:
    description:
      - The key evidence records are signed with (pgrollout_evidence_signing_key). When set, only records
        whose HMAC-SHA256 signature verifies with it count as promotion evidence; unsigned or edited ones do not.
    type: str
    default: ""
  evidence_root: {description: Folder holding one evidence folder per environment., type: path}
  promotion_environments:
    description: Environments whose evidence must show each migration rolled out and rehearsed.
    type: list
    elements: str
    default: []
  migrations:
    description: The migrations this run would apply, each with C(version), C(name), C(checksum).
    type: list
    elements: dict
    default: []
  allow_dirty:
    description: Count evidence written from a work tree with uncommitted changes (C(git_dirty)) for promotion.
    type: bool
    default: false
  promotion_override: {description: Go on without the evidence., type: bool, default: false}
  promotion_override_reason: {description: Why; required with O(promotion_override)., type: str, default: ""}
  backup:
    description: The run takes a backup.
    type: bool
    default: true
  backup_required:
    description: A backup is required here; without one (O(backup=false)) the run is refused first.
    type: bool
    default: false
  environment:
    description: The environment, named in messages.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    description: Reports what it would refuse and refuses nothing.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Gate a production rollout
  pgrollout.postgresql.pgrollout_gates:
    window: {days: [mon, tue, wed, thu, fri], start: "10:00", end: "12:00", timezone: UTC}
    evidence_root: .ops/evidence
    promotion_environments: [dev]
    migrations: [{version: "003", name: bot_registration_sharing, checksum: "5f0c..."}]
"""

RETURN = r"""
refusals: {description: Why the run may not go on (empty when it may)., returned: always, type: list}
overrides:
  description: Each override used, with its reason, for the evidence.
  returned: always
  type: list
window: {description: The window and the local time judged., returned: always, type: dict}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.gates import ARGUMENT_SPEC, judge


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = judge(module.params, module.check_mode)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
