#!/usr/bin/python
"""The preflight's verdict on a target's state."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_preflight
short_description: Read the target with pg_facts, then refuse, warn or go on
description:
  - Without O(facts), the action plugin checks that a database host and password are configured, runs
    M(pgrollout.postgresql.pg_facts) with O(read) and the connection options (from the play's
    C(module_defaults), as every pgrollout module takes them), and returns its result with the verdict
    below - C(lines), C(refusal) (the first check that refuses, or null) and C(started_at). A refusal is
    returned, not failed, so the run record keeps what was read; M(pgrollout.postgresql.pgrollout_stop)
    then stops the run.
  - Checks, in order, what no run may proceed with - a migration role that lacks a privilege, an
    extension the server cannot provide, a transaction-mode pooler, a read replica, applied files edited
    or missing, schema drift nobody acknowledged (where refused), pending files out of order, a plan
    that cannot run - and fails with the first, C(refused_by) naming the check and C(failure_kind=refused).
  - Otherwise returns the warnings (stub extensions, schema drift where it warns, unfinished runs,
    files without a rollback) and the target's state, as lines to show once.
  - The action plugin of the same name runs it on the control node; this module can only judge O(facts).
version_added: "0.4.0"
options:
  facts:
    description: The C(facts) pg_facts returned; given, they are judged and nothing is read.
    type: dict
  read:
    description: The options of M(pgrollout.postgresql.pg_facts) (without the connection) for the read.
    type: dict
    default: {}
  evidence_dir:
    description: The run's evidence folder, checked first (created, a file written and removed, free space).
    type: path
  environment:
    description: The environment, named in messages.
    type: str
    default: ""
  target:
    description: The target, named in messages; the inventory hostname when empty.
    type: str
    default: ""
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
  progress_seconds:
    description:
      - While the read takes longer than this, the action says a line this often (what it reads, how long it has run).
      - V(0) says none.
    type: float
    default: 10.0
  progress_min_bytes:
    description: On a database at least this big (bytes) the backup and the migrations are long steps (RV(long_steps)).
    type: int
    default: 268435456
  progress_min_file_bytes:
    description: When the pending files together are at least this big (bytes) the migrations are a long step.
    type: int
    default: 16777216
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: full
    description: Decides the same way; changes nothing (the read runs as pg_facts does in check mode).
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Read the target's state and judge it
  pgrollout.postgresql.pgrollout_preflight:
    login_host: db.example.com
    login_password: "{{ vault_db_password }}"
    read:
      migrations_dir: supabase/migrations
    environment: staging
    schema_drift: refuse
  register: preflight_result
"""

RETURN = r"""
lines:
  description: Warnings and the target's state, to show.
  returned: success
  type: list
  elements: str
refusal:
  description: The first check that refuses (check, msg, refusals), or null. Returned by a read.
  returned: success
  type: dict
long_steps:
  description:
    - The later steps that run as polled async jobs, a progress line at each poll (V(backup), V(migrate), each a bool).
  returned: success
  type: dict
started_at:
  description: When the read started (UTC, the controller's clock).
  returned: success
  type: str
facts:
  description: What pg_facts read (see M(pgrollout.postgresql.pg_facts)).
  returned: success
  type: dict
record:
  description: The record of the read, for the evidence.
  returned: success
  type: dict
refused_by:
  description: The check that refused (given O(facts)), or the host or password that is not configured.
  returned: failure
  type: str
refusals:
  description: Every check that refused (check, msg), given O(facts).
  returned: failure
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC
from ansible_collections.pgrollout.postgresql.plugins.module_utils.verdict import ACTION_SPEC, verdict


def main() -> None:
    module = AnsibleModule(argument_spec={**ACTION_SPEC, **CONNECTION_ARGUMENT_SPEC}, supports_check_mode=True)
    if module.params["facts"] is None:
        module.fail_json(msg="pgrollout_preflight reads the target through its action plugin (the control node); "
                             "run as a module it only judges the facts given in `facts`")
    result = verdict(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
