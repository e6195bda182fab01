#!/usr/bin/python
"""Apply one migration file in one transaction, with its ledger entry."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_migrate
short_description: Apply a PostgreSQL migration (or its rollback) in one transaction
description:
  - Splits the file with the PostgreSQL parser (pglast), runs every statement in
    one transaction under lock_timeout and statement_timeout, and records it in
    C(supabase_migrations.schema_migrations) (as the Supabase CLI does) and in
    pgrollout's checksum record, in that same transaction. A failure anywhere
    rolls everything back and the error names the file, statement, line and SQLSTATE.
  - An already applied file with the same checksum reports C(changed=false);
    an applied file whose checksum changed fails with both checksums.
  - "Statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY,
    VACUUM, ...) are refused before anything runs, unless the file's first line
    is C(-- pgrollout: no-transaction); such a file runs statement by statement
    with the same timeouts, recording each, and a failed run resumes after the
    last statement that succeeded. It cannot be dry-run."
  - Takes a transaction-level advisory lock, so two pgrollout runs never apply
    to one database at once; the second fails naming the holder.
version_added: "0.1.0"
options:
  path:
    description: Migration file C(NNN_name.sql) on the managed host (a rollback file for O(direction=down)).
    type: path
    required: true
  direction:
    description: C(up) applies a forward file; C(down) applies a rollback file and removes the ledger entry.
    type: str
    choices: [up, down]
    default: up
  forward_path:
    description: With O(direction=down), the forward file whose checksum the history records.
    type: path
  lock_timeout:
    description:
      - Longest time the migration may wait for its locks. Every lock it needs
        on existing tables (found by parsing the file) is taken up front in one
        statement bounded by this, so queries queued behind the migration wait
        at most about this long per attempt.
    type: str
    default: 5s
  retries:
    description: Attempts after the first when the locks could not be taken in time (SQLSTATE 55P03).
    type: int
    default: 5
  retry_delay:
    description: Seconds before the first retry; doubles per attempt (half of it random jitter).
    type: float
    default: 1.0
  retry_max_delay:
    description: Upper bound of the delay between attempts, in seconds.
    type: float
    default: 30.0
  lock_wait:
    description: Seconds to wait for another pgrollout run on the same database to finish before failing.
    type: float
    default: 0
  accept_drift:
    description:
      - Versions whose applied file may differ from the applied record, each with
        the reason. The edit is accepted (recorded in pgrollout.history with the
        reason), not re-applied.
    type: dict
    default: {}
  statement_timeout:
    description: PostgreSQL statement_timeout for each statement.
    type: str
    default: 5min
  run_id:
    description: Identifier of this rollout, stored with the ledger entry.
    type: str
  checks:
    description:
      - Verification checks (the format of M(pg_assert)) run inside the
        migration's transaction before it commits. A failing check of
        severity C(fail) rolls the migration back. In check mode they run in
        the dry run, against the migrated schema.
    type: list
    elements: dict
extends_documentation_fragment: [pgrollout]
attributes:
  check_mode:
    support: full
    description:
      - A real dry run. Executes the migration in a transaction, collects the
        locks and schema change, then rolls back.
  diff_mode:
    support: full
    description: Shows the schema objects the migration adds, changes or drops.
author: pgrollout developers
"""

EXAMPLES = r"""
- name: Apply migration 003
  pg_migrate:
    path: supabase/migrations/003_bot_registration_sharing.sql
    login_password: "{{ vault_db_password }}"
    lock_timeout: 2s

- name: Roll migration 003 back
  pg_migrate:
    path: supabase/rollbacks/003_bot_registration_sharing_rollback.sql
    forward_path: supabase/migrations/003_bot_registration_sharing.sql
    direction: down
"""

RETURN = r"""
version: {description: Migration version from the file name., returned: always, type: str, sample: "003"}
name: {description: Migration name from the file name., returned: always, type: str}
checksum: {description: SHA-256 of the file with line endings normalised., returned: always, type: str}
statements: {description: Number of statements executed (0 when nothing to do)., returned: always, type: int}
duration_ms: {description: Time spent executing the statements., returned: changed, type: int}
locks:
  description: Relation locks the migration held at its end (relation and mode).
  returned: changed
  type: list
schema_changes:
  description:
    - Per kind (tables, columns, policies, indexes, constraints, functions,
      schemas) the objects added, dropped and changed.
  returned: changed
  type: dict
dry_run: {description: True when the transaction was rolled back (check mode)., returned: always, type: bool}
attempts:
  description:
    - Each attempt, with outcome (done or lock_timeout), elapsed_ms, and for a
      lock timeout the blocking sessions (pid, application_name, state,
      query_start, transaction_seconds, locks) and retry_in_ms.
  returned: always
  type: list
transactional:
  description: "False for a file marked C(-- pgrollout: no-transaction), applied statement by statement."
  returned: when false
  type: bool
checks_summary:
  description: With O(checks), one line per check run inside the transaction.
  returned: when checks were given
  type: list
error:
  description: On failure, file, line, statement_number, statement, sqlstate and error.
  returned: failed
  type: dict
direction: {description: up or down., returned: always, type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgrollout.checks import SpecError, validate
from ansible.module_utils.pgrollout.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible.module_utils.pgrollout.migrate import MigrationError, Options, apply
from ansible.module_utils.pgrollout.retry import RetryPolicy
from ansible.module_utils.pgrollout.sqlfile import MigrationFileError, load


def main() -> None:
    spec = dict(
        CONNECTION_ARGUMENT_SPEC,
        path={"type": "path", "required": True},
        direction={"type": "str", "choices": ["up", "down"], "default": "up"},
        forward_path={"type": "path"},
        lock_timeout={"type": "str", "default": "5s"},
        retries={"type": "int", "default": 5},
        retry_delay={"type": "float", "default": 1.0},
        retry_max_delay={"type": "float", "default": 30.0},
        lock_wait={"type": "float", "default": 0},
        accept_drift={"type": "dict", "default": {}},
        statement_timeout={"type": "str", "default": "5min"},
        run_id={"type": "str"},
        checks={"type": "list", "elements": "dict"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        migration = load(p["path"])
        forward = load(p["forward_path"]).checksum if p["forward_path"] else None
        options = Options(
            lock_timeout=p["lock_timeout"], statement_timeout=p["statement_timeout"],
            retry=RetryPolicy(retries=p["retries"], delay=p["retry_delay"], max_delay=p["retry_max_delay"]),
            lock_wait=p["lock_wait"], check_mode=module.check_mode, run_id=p["run_id"],
            accept_drift={str(k): str(v) for k, v in p["accept_drift"].items()},
            checks=validate(p["checks"]) if p["checks"] else None)
        with connect(p) as conn:
            result = apply(conn, migration, options, direction=p["direction"], forward_checksum=forward)
    except MigrationError as exc:
        module.fail_json(msg=str(exc), error=exc.details, attempts=exc.details.get("attempts", []),
                         version=migration.version, name=migration.name, path=migration.path,
                         checksum=migration.checksum, direction=p["direction"], dry_run=module.check_mode)
    except (RuntimeError, MigrationFileError, SpecError) as exc:
        module.fail_json(msg=str(exc))
    diff = result.pop("diff", None)
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
