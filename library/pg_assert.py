#!/usr/bin/python
"""Run verification checks read-only and report every result."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_assert
short_description: Verify a PostgreSQL database with read-only checks
description:
  - Runs each check's SQL and compares its rows with the expectation, exact
    rows (ordered or not), a row count, or a jmespath expression over the rows
    that must be true.
  - All checks run in one READ ONLY transaction, each in a savepoint that is
    rolled back, optionally as a given role with JWT claims (C(request.jwt.claims)).
  - Reports every check (passed, failed with expected and actual, or error)
    and fails when a check of severity C(fail) did not pass.
  - The spec is validated before any SQL runs; a bad check is named.
version_added: "0.1.0"
options:
  audit_checks:
    description:
      - A second set of checks (as O(checks)), the security audit, run after the others on the same
        connection. With it the result is split - C(specs_result) for O(specs), O(lasting_specs) and
        O(checks) (skipped where none is given) and C(audit_result) for these - each as a pg_assert
        result of its own; the module fails when either fails.
    type: list
    elements: dict
  checks:
    description:
      - The checks. Each has C(name), C(sql), C(expect) (one of C(rows), C(count),
        C(jmespath); C(ordered=false) compares rows as a set), and optionally
        C(params), C(severity) (C(fail) or C(warn)), C(role) and C(claims).
      - Given with O(specs), they run after the specs' checks.
    type: list
    elements: dict
  specs:
    description:
      - Verification spec files (C(checks:) plus optionally C(migration) and
        C(description)), each validated before any SQL runs. With more than one,
        each check's name is prefixed with its spec's file name.
    type: list
    elements: path
    default: []
  lasting_specs:
    description:
      - Spec files of which only the checks marked C(lasting=true) run (earlier files of a run,
        after its commit; README, Verification specs). Their names are prefixed like O(specs)'.
    type: list
    elements: path
    default: []
  statement_timeout:
    description: statement_timeout of the checks' transaction.
    type: str
    default: 30s
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: full
    description: Read-only, so it runs the checks in check mode too.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Verify migration 003
  pgrollout.postgresql.pg_assert:
    checks: "{{ (lookup('ansible.builtin.file', 'verification/003_bot_registration_sharing.yml') | from_yaml).checks }}"

- name: Four new tables
  pgrollout.postgresql.pg_assert:
    checks:
      - name: new tables exist
        sql: SELECT count(*) FROM pg_tables WHERE tablename IN ('bots', 'bot_api_keys')
        expect: {rows: [[2]]}
"""

RETURN = r"""
specs_result:
  description: With O(audit_checks), the result (results, summary, passed, not_passed, msg) of the other checks.
  returned: with audit_checks
  type: dict
audit_result:
  description: With O(audit_checks), the audit's result, of the same shape.
  returned: with audit_checks
  type: dict
started_at:
  description: With O(audit_checks), when the checks started (UTC, ISO 8601), the verify step's start.
  returned: with audit_checks
  type: str
results:
  description: One entry per check, with name, severity, status, expected, actual and error.
  returned: without audit_checks
  type: list
summary:
  description: One line per check (PASS, FAIL, WARN or ERROR), for people.
  returned: always
  type: list
passed: {description: Number of checks that passed., returned: always, type: int}
not_passed:
  description: Number of checks that did not pass (failed, error, or a warning).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.checks import (
    SpecError,
    report,
    run,
    spec_checks,
    validate,
    verification,
)
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect


def all_checks(specs: list[str], lasting_specs: list[str], checks: list[dict] | None) -> list[dict]:
    """The specs' checks (the lasting ones of `lasting_specs`), then the given checks."""
    return spec_checks(specs, lasting_specs) + (validate(checks) if checks else [])


def with_audit(module: AnsibleModule) -> None:
    """The specs' checks, then the audit's, on one connection: two results in one module run."""
    p = module.params
    try:
        audit = all_checks([], [], p["audit_checks"])
        with connect(p) as conn:
            outcome = verification(conn, p["specs"], p["lasting_specs"], p["checks"], audit, p["statement_timeout"])
    except (SpecError, RuntimeError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, "running the verification checks"))
    if outcome.pop("failed"):
        module.fail_json(changed=False, **outcome)
    module.exit_json(changed=False, **outcome)


def main() -> None:
    spec = dict(
        CONNECTION_ARGUMENT_SPEC,
        checks={"type": "list", "elements": "dict"},
        specs={"type": "list", "elements": "path", "default": []},
        lasting_specs={"type": "list", "elements": "path", "default": []},
        statement_timeout={"type": "str", "default": "30s"},
        audit_checks={"type": "list", "elements": "dict"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_one_of=[("checks", "specs", "lasting_specs", "audit_checks")])
    if module.params["audit_checks"] is not None:
        with_audit(module)
    try:
        checks = all_checks(module.params["specs"], module.params["lasting_specs"], module.params["checks"])
        if not checks:  # only lasting_specs, none of whose checks is lasting
            module.exit_json(changed=False, results=[], summary=[], passed=0, not_passed=0,
                             msg="no lasting check in " + ", ".join(module.params["lasting_specs"]))
        with connect(module.params) as conn:
            results = run(conn, checks, module.params["statement_timeout"])
    except (SpecError, RuntimeError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, "running the verification checks"))
    outcome = report(results)
    if outcome.pop("failed"):
        module.fail_json(changed=False, **outcome)
    module.exit_json(changed=False, **outcome)


if __name__ == "__main__":
    main()
