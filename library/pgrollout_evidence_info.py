#!/usr/bin/python
"""Read evidence records: which runs happened, with what outcome and backup."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_evidence_info
short_description: Find pgrollout evidence records
description:
  - Reads the JSON records under an evidence folder (C(.ops/evidence/<env>/))
    and returns those matching every filter given, newest first.
  - With O(version) or O(checksum), only records in which that migration
    changed the database (not dry runs, not already-applied no-ops).
  - Read-only; used to find the backup taken before a migration, and by gates
    that need proof of earlier runs.
version_added: "0.1.0"
options:
  dir:
    description: The evidence folder.
    type: path
    required: true
  host: {description: Inventory host of the run., type: str}
  kind:
    description: Kind of run.
    type: str
    choices: [rollout, rollback, rehearsal]
  outcome:
    description: Outcome of the run.
    type: str
    choices: [succeeded, failed, dry_run]
  version: {description: Migration version the run applied (or rolled back)., type: str}
  checksum: {description: Checksum of the migration file the run applied., type: str}
attributes:
  check_mode:
    support: full
    description: Read-only.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: The rollout that applied 003 here, and its backup
  pgrollout.postgresql.pgrollout_evidence_info:
    dir: .ops/evidence/prod
    host: "{{ inventory_hostname }}"
    kind: rollout
    outcome: succeeded
    version: "003"
  register: found
"""

RETURN = r"""
records: {description: "Matching records, newest first.", returned: always, type: list}
latest: {description: "The newest matching record, or null.", returned: always, type: dict}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.evidence import find


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        dir={"type": "path", "required": True},
        host={"type": "str"},
        kind={"type": "str", "choices": ["rollout", "rollback", "rehearsal"]},
        outcome={"type": "str", "choices": ["succeeded", "failed", "dry_run"]},
        version={"type": "str"},
        checksum={"type": "str"},
    ), supports_check_mode=True)
    p = module.params
    records = find(p["dir"], host=p["host"], kind=p["kind"], outcome=p["outcome"], version=p["version"],
                   checksum=p["checksum"])
    module.exit_json(changed=False, records=records, latest=records[0] if records else None)


if __name__ == "__main__":
    main()
