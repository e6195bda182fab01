#!/usr/bin/python
"""Write a migration's verification specs from what a dry run of it observed."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_spec
short_description: Generate a pending migration's verification specs from a dry run
description:
  - Runs the pending files up to O(version), the migration itself and its
    rollback file in ONE transaction that is rolled back (as the dry run does),
    reading the catalog before and after each.
  - Writes C(NNN_name.yml) with checks that the tables, columns, indexes,
    constraints (foreign keys included), functions, RLS state and policies the
    migration creates or changes exist as it left them (and that what it drops
    is gone), and C(NNN_name_rollback.yml) with checks that they are gone again.
    Names are passed as query parameters.
  - A spec that already holds checks is kept unless O(force).
version_added: "0.2.0"
options:
  version: {description: The pending migration., type: str, required: true}
  migrations_dir: {description: Folder of the migration files., type: path, required: true}
  rollbacks_dir: {description: Folder of the rollback files (layout supabase)., type: path}
  verification_dir: {description: Folder of the specs., type: path, required: true}
  layout:
    description: How migration and rollback files are named.
    type: str
    choices: [supabase, updown]
    default: supabase
  force: {description: Overwrite specs that already hold checks., type: bool, default: false}
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: full
    description: The database is never changed; in check mode the spec files are not written either.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Write the specs of 004 from a dry run on dev
  pgrollout.postgresql.pg_spec:
    version: "004"
    migrations_dir: supabase/migrations
    rollbacks_dir: supabase/rollbacks
    verification_dir: verification
"""

RETURN = r"""
written: {description: "Spec files written, with their number of checks.", returned: always, type: list}
kept: {description: Spec files kept because they already hold checks (use force)., returned: always, type: list}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible_collections.pgrollout.postgresql.plugins.module_utils.migrate import MigrationError
from ansible_collections.pgrollout.postgresql.plugins.module_utils.plan import Layout, PlanError
from ansible_collections.pgrollout.postgresql.plugins.module_utils.specgen import generate, observe
from ansible_collections.pgrollout.postgresql.plugins.module_utils.sqlfile import MigrationFileError


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        CONNECTION_ARGUMENT_SPEC,
        version={"type": "str", "required": True},
        migrations_dir={"type": "path", "required": True},
        rollbacks_dir={"type": "path"},
        verification_dir={"type": "path", "required": True},
        layout={"type": "str", "choices": ["supabase", "updown"], "default": "supabase"},
        force={"type": "bool", "default": False},
    ), supports_check_mode=True)
    p = module.params
    layout = Layout(p["migrations_dir"], p["rollbacks_dir"], p["verification_dir"], p["layout"])
    try:
        with connect(p) as conn:
            if module.check_mode:
                observe(conn, layout, p["version"])
                module.exit_json(changed=True, written=[], kept=[], msg="dry run: the specs would be written")
            result = generate(conn, layout, p["version"], p["force"])
    except (PlanError, MigrationFileError, MigrationError, RuntimeError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, f"generating the specs of {p['version']}"))
    kept = [f"kept {path} (it holds checks; FORCE=1 regenerates it)" for path in result["kept"]]
    module.exit_json(changed=bool(result["written"]), **result,
                     msg="; ".join([f"wrote {w['path']} ({w['checks']} checks)" for w in result["written"]] + kept))


if __name__ == "__main__":
    main()
