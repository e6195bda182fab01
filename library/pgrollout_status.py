#!/usr/bin/python
"""Write a target's migration status into the environment's status.json and show it."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_status
short_description: Record and show what is applied, pending, missing or drifted on a target
description:
  - From the facts M(pgrollout.postgresql.pg_facts) gathered (read-only) and the newest evidence
    record, builds the target's status - applied migrations (version, name,
    applied at, by, whether the checksum matches the file, verified or not),
    pending, missing, drifted and out-of-order files, the run lease held, and
    the last run's outcome.
  - Adds it to the environment's status document (O(path), one entry per
    target, schema in docs/status.schema.json) and returns it with a table for people.
  - Runs on the control node; changes nothing on the database.
version_added: "0.2.0"
options:
  facts:
    description: The C(facts) of M(pgrollout.postgresql.pg_facts) for this target.
    type: dict
    required: true
  host: {description: The inventory host., type: str, required: true}
  environment: {description: The environment (inventory group)., type: str, required: true}
  path: {description: The status document to write., type: path, required: true}
  evidence_dir: {description: The environment's evidence folder (for the last run)., type: path}
attributes:
  check_mode:
    support: full
    description: Writes the status document in check mode too (it describes, it changes no target).
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Record the status
  pgrollout.postgresql.pgrollout_status:
    facts: "{{ status_facts.facts }}"
    host: "{{ inventory_hostname }}"
    environment: prod
    path: .ops/evidence/prod/status.json
"""

RETURN = r"""
status: {description: This target's entry of the status document., returned: always, type: dict}
table: {description: The status as lines for people., returned: always, type: list}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.status import table, target_status, write


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        facts={"type": "dict", "required": True},
        host={"type": "str", "required": True},
        environment={"type": "str", "required": True},
        path={"type": "path", "required": True},
        evidence_dir={"type": "path"},
    ), supports_check_mode=True)
    p = module.params
    try:
        entry = target_status(p["facts"], p["host"], p["evidence_dir"])
        write(p["path"], p["environment"], entry)
    except OSError as exc:
        module.fail_json(msg=f"cannot write the status document {p['path']}: {exc}")
    module.exit_json(changed=False, status=entry, table=table(entry))


if __name__ == "__main__":
    main()
