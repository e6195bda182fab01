#!/usr/bin/python
"""Write a run's evidence record."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_evidence
short_description: Record what a pgrollout run did, as JSON and Markdown
description:
  - Builds a versioned JSON record (schema_version 1, see README) and a
    Markdown summary from the registered results of the rollout's roles,
    environment, host, operator, git commit, tool versions, backup path and
    sha256, each migration with checksum, timing, locks and schema change,
    every verification check, and the failure if any.
  - Keeps only the fields an auditor needs (never module invocations) and
    replaces every value of O(redact) found in the text with asterisks.
version_added: "0.1.0"
options:
  dir: {description: Folder for the record., type: path, required: true}
  run_id: {description: Identifier of the run; names the files., type: str, required: true}
  kind:
    description: What ran.
    type: str
    choices: [rollout, rollback, rehearsal, baseline, repair]
    default: rollout
  environment: {description: "dev, staging or prod.", type: str, required: true}
  host: {description: Inventory host name of the target., type: str, required: true}
  started_at: {description: ISO 8601 start time., type: str, required: true}
  dry_run: {description: The run was a check-mode dry run; the files are suffixed -dryrun., type: bool, default: false}
  steps:
    description:
      - Registered results by step (preflight, backup, backup_rehearsal, migrate, verify, verify_spec,
        audit, gates, rollback, rollback_verify, restore), acknowledged_warnings (names),
        rollback_path (script or restore) and rollback_script_failure.
    type: dict
    default: {}
  failure: {description: The failed task and its message., type: dict}
  repo_dir: {description: "The repository, for its git commit.", type: path}
  tool_versions: {description: "Versions to record (ansible, ...).", type: dict, default: {}}
  marks:
    description: Step name -> UTC time it started (ISO 8601); the record gets each step's seconds.
    type: dict
    default: {}
  redact:
    description: Secrets that must not appear in the files.
    type: list
    elements: str
    default: []
  signing_key:
    description: HMAC-SHA256 key the record is signed with (pgrollout_evidence_signing_key); empty for none.
    type: str
    default: ""
  outcome_log:
    description: A file the run's one-line outcome is appended to (scripts/pgrollout-run); empty for none.
    type: path
    default: ""
  probe:
    description:
      - Write nothing but check that O(dir) can be written (created if missing) and has 10 MB free - what a
        run does when it starts, before anything changes.
    type: bool
    default: false
  auto_rollback:
    description:
      - Whether a failed rollout is rolled back automatically (pgrollout_auto_rollback); C(end_msg) says so
        when this run applied something and kept it.
    type: bool
    default: true
attributes:
  check_mode:
    support: none
    description: Run it with C(check_mode=false) so a dry run leaves its record.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Record the run
  pgrollout.postgresql.pgrollout_evidence:
    dir: .ops/evidence/dev
    run_id: "{{ pgrollout_run_id }}"
    environment: dev
    host: "{{ inventory_hostname }}"
    started_at: "{{ pgrollout_started_at }}"
    steps: {preflight: "{{ preflight_result }}", migrate: "{{ migrate_result }}"}
    redact: ["{{ pgrollout_db_password }}"]
  check_mode: false
"""

RETURN = r"""
json_path: {description: The JSON record., returned: always, type: str}
markdown_path: {description: The Markdown summary., returned: always, type: str}
outcome: {description: "One of the outcomes (README, Outcomes): succeeded, no_change, refused, ...", returned: always,
          type: str}
end_msg:
  description: The message a failed run ends with - the step, its message, what the target was left with
    (never "Nothing was changed" unless the record shows it), and the record's path.
  returned: when the run failed
  type: str
notify_text: {description: The webhook's line about the run., returned: always, type: str}
"""


from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.evidence import ARGUMENT_SPEC, record_run


def main() -> None:
    # Normally the action plugin of the same name does this on the control node, without this module.
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC)
    module.exit_json(changed=True, **record_run(module.params))


if __name__ == "__main__":
    main()
