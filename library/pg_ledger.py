#!/usr/bin/python
"""Baseline or repair the migration record; never runs migration SQL."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_ledger
short_description: Record migrations as applied without running them (baseline), or repair the record
description:
  - O(action=baseline) records every migration up to O(version) as applied
    (checksum, name, statements as the Supabase CLI writes them, O(reason), who),
    for a database built before pgrollout; refused, recording nothing, when any
    of them is already recorded with a different checksum.
  - O(action=repair) marks one O(version) C(applied) or C(reverted) after an
    incident repaired by hand.
  - Both change only the ledger (C(supabase_migrations.schema_migrations) and
    pgrollout's record), in one transaction, under the run lease, and record the
    action with its reason in C(pgrollout.history). No migration SQL runs.
version_added: "0.2.0"
options:
  action: {description: What to do., type: str, choices: [baseline, repair], required: true}
  version: {description: "Baseline up to this version, or the version to repair.", type: str, required: true}
  mark: {description: For repair - the state to record., type: str, choices: [applied, reverted]}
  reason: {description: Why (recorded; required)., type: str, required: true}
  migrations_dir: {description: Folder of the migration files., type: path, required: true}
  layout:
    description: How the migration files are named.
    type: str
    choices: [supabase, updown]
    default: supabase
  run_id: {description: This run's identifier; it must hold the run lease., type: str}
  require_lease: {description: Check that O(run_id) holds the run lease., type: bool, default: true}
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: full
    description: Reports what would be recorded; records nothing.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Adopt a database whose schema is at 002
  pgrollout.postgresql.pg_ledger:
    action: baseline
    version: "002"
    reason: built by hand in 2025, schema checked against 001-002
    migrations_dir: supabase/migrations
    run_id: "{{ pgrollout_run_id }}"
"""

RETURN = r"""
recorded: {description: Versions recorded by the baseline., returned: action baseline, type: list}
already: {description: Versions the ledger already held., returned: action baseline, type: list}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.adopt import baseline, repair
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible_collections.pgrollout.postgresql.plugins.module_utils.lease import LeaseError
from ansible_collections.pgrollout.postgresql.plugins.module_utils.plan import Layout, PlanError
from ansible_collections.pgrollout.postgresql.plugins.module_utils.sqlfile import MigrationFileError


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        CONNECTION_ARGUMENT_SPEC,
        action={"type": "str", "choices": ["baseline", "repair"], "required": True},
        version={"type": "str", "required": True},
        mark={"type": "str", "choices": ["applied", "reverted"]},
        reason={"type": "str", "required": True},
        migrations_dir={"type": "path", "required": True},
        layout={"type": "str", "choices": ["supabase", "updown"], "default": "supabase"},
        run_id={"type": "str"},
        require_lease={"type": "bool", "default": True},
    ), supports_check_mode=True, required_if=[("action", "repair", ["mark"])])
    p = module.params
    layout = Layout(p["migrations_dir"], layout=p["layout"])
    try:
        with connect(p) as conn:
            if p["action"] == "baseline":
                result = baseline(conn, layout, p["version"], p["reason"], p["run_id"], module.check_mode,
                                  p["require_lease"])
                changed = bool(result["recorded"])
                msg = (f"{'would record' if module.check_mode else 'recorded'} "
                       f"{', '.join(result['recorded']) or 'nothing'} as applied without running them "
                       f"(already recorded: {', '.join(result['already']) or 'none'}): {result['reason']}")
            else:
                result = repair(conn, layout, p["version"], p["mark"], p["reason"], p["run_id"],
                                module.check_mode, p["require_lease"])
                changed = True
                msg = f"recorded {p['version']} as {p['mark']} (no migration SQL ran): {result['reason']}"
    except (PlanError, MigrationFileError, LeaseError, RuntimeError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, f"the {p['action']}"))
    module.exit_json(changed=changed, msg=msg, **result)


if __name__ == "__main__":
    main()
