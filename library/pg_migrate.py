#!/usr/bin/python
"""Apply one migration file in one transaction, with its ledger entry."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_migrate
short_description: Apply a run's migrations (or roll them back), each file in its own transaction
description:
  - Applies the ordered O(files) of a run on one connection, stopping at the
    first failure, with one result per file. Each transactional file runs in a
    transaction of its own (or, with O(single_transaction), all in one) under
    lock_timeout and statement_timeout, takes every lock it needs on existing
    tables up front, retries on lock timeouts (SQLSTATE 55P03) with backoff, and
    records itself in C(supabase_migrations.schema_migrations) (as the Supabase
    CLI does) and in pgrollout's checksum record in that same transaction.
  - The verification spec of each file that has one (C(verification/NNN_name.yml),
    or C(NNN_name_rollback.yml) going down) runs inside the file's transaction
    before it commits; a failing check rolls that file back. O(final_checks) (the
    security audit) run in the last file's transaction.
  - With O(run_id) and O(require_lease), every transaction checks that this run
    holds the run lease (M(pgrollout.postgresql.pg_lease)); and no transaction commits once the
    ansible-playbook that started the module is gone.
  - "Non-transactional files (a leading comment line C(-- pgrollout: no-transaction),
    C(-- morph:nontransactional), C(-- atlas:txmode none) or dbmate's
    C(transaction:false)) run statement by statement in either direction, each
    step recorded, and resume after the last step that succeeded."
  - An already applied file with the same checksum reports C(changed=false);
    an applied file whose checksum changed fails with both checksums.
version_added: "0.1.0"
options:
  files:
    description:
      - Forward migration files of the run, in the order to run them. With
        O(direction=down), newest first - each one's rollback file runs (found by
        the O(layout)'s naming).
    type: list
    elements: path
  path:
    description:
      - One file to apply as it is (a forward file, or a rollback file with
        O(direction=down) and O(forward_path)), without layout or spec lookup.
        Mutually exclusive with O(files).
    type: path
  forward_path:
    description: With O(path) and O(direction=down), the forward file whose checksum the history records.
    type: path
  direction:
    description: C(up) applies forward files; C(down) applies rollback files and removes the ledger entries.
    type: str
    choices: [up, down]
    default: up
  migrations_dir:
    description: Folder of the migration files (required with O(files)).
    type: path
  require_spec:
    description: Refuse, before anything runs, a file of the run that has no verification spec.
    type: bool
    default: false
  final_checks:
    description: Checks (the format of M(pgrollout.postgresql.pg_assert)) run inside the last file's transaction.
    type: list
    elements: dict
    aliases: [checks]
  verify_after_commit:
    description:
      - After the commit, on a new connection in the same module run, the checks the verify step
        runs (C(after_commit)'s specs, then O(final_checks) again, the audit at the state the run ends in), as
        M(pgrollout.postgresql.pg_assert) with O(pgrollout.postgresql.pg_assert#module:audit_checks) runs
        them. Their result is C(verification) (C(specs_result) with the checks' C(started_at)); a failed
        check does not fail this module (the files are committed), the verify step decides.
      - Not in check mode (the dry run verifies inside its transaction).
    type: bool
    default: false
  verify_statement_timeout:
    description: With O(verify_after_commit), the statement timeout of each check.
    type: str
    default: 30s
  single_transaction:
    description: All files in one transaction (refused with a non-transactional file).
    type: bool
    default: false
  lock_timeout:
    description:
      - Longest time the migration may wait for its locks; 0 (no limit) is refused.
        Every lock a file needs on existing tables is taken up front in one
        statement bounded by this, so queries queued behind it wait at most
        about this long per attempt.
    type: str
    default: 5s
  statement_timeout:
    description: PostgreSQL statement_timeout for each statement; 0 (no limit) is refused.
    type: str
    default: 5min
  dry_run_statement_timeout:
    description:
      - statement_timeout in check mode. A dry run holds real locks on the target, so
        a statement that would run longer is cancelled and reported as holding
        its locks for more than this.
    type: str
    default: 10s
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
    description: Seconds to wait for another pgrollout session's commit on the same database.
    type: float
    default: 0
  accept_drift:
    description:
      - Versions whose applied file may differ from the applied record, each with
        the reason. The edit is accepted (recorded in pgrollout.history with the
        reason), not re-applied.
    type: dict
    default: {}
  approved_checksums:
    description:
      - Path of a forward file to its sha256 as the preflight (and the promotion gate) approved it. A file
        whose content differs now is refused before anything is applied.
    type: dict
    default: {}
  parsed:
    description:
      - Path of a forward file to its parse as the preflight made it (pg_facts C(migrations.parsed)). The
        file is built from it instead of parsed again, where it is the exact text that parse was made from
        (else it is parsed as any file). The result's RV(read_once) lists those files.
    type: dict
    default: {}
  run_id:
    description: Identifier of this run, stored with the ledger entries.
    type: str
  require_lease:
    description: Check in every transaction that O(run_id) holds the run lease.
    type: bool
    default: false
  lease_ttl:
    description: Seconds of the lease's TTL; the lease is renewed every quarter of it while the module runs.
    type: int
    default: 600
  progress_seconds:
    description:
      - Run with C(async) and C(poll), a progress line this often - the file and statement running (the
        attempt after lock timeouts), a CREATE INDEX's phase and share done, and the sessions holding a lock
        the statement waits for - read from a second connection. Not under async, nothing is read.
    type: float
    default: 10.0
extends_documentation_fragment: [pgrollout.postgresql.pgrollout, pgrollout.postgresql.pgrollout.layout,
                                 pgrollout.postgresql.pgrollout.controller]
attributes:
  check_mode:
    support: full
    description:
      - A real dry run of the whole plan. Executes every transactional file in ONE
        transaction, a savepoint each (a file sees what the files before it
        created), runs the specs, reports locks, lock hold time and schema change
        per file, then rolls back. Non-transactional files are reported as not
        dry-runnable and the files after them still run.
  diff_mode:
    support: full
    description: Shows the schema objects each file adds, changes or drops (check mode).
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Apply the pending migrations of the run
  pgrollout.postgresql.pg_migrate:
    files: "{{ preflight_result.facts.migrations.pending_paths }}"
    migrations_dir: supabase/migrations
    rollbacks_dir: supabase/rollbacks
    verification_dir: verification
    login_password: "{{ vault_db_password }}"
    lock_timeout: 2s
    run_id: "{{ pgrollout_run_id }}"
    require_lease: true

- name: Roll back everything newer than 002, newest first
  pgrollout.postgresql.pg_migrate:
    files: [supabase/migrations/004_notes.sql, supabase/migrations/003_bot_registration_sharing.sql]
    direction: down
    migrations_dir: supabase/migrations
    rollbacks_dir: supabase/rollbacks
    verification_dir: verification
"""

RETURN = r"""
report:
  description: What each file did as the console shows it - its line, locks, lock hold, retries, checks.
  returned: always
  type: list
  elements: str
results:
  description:
    - One entry per file, in order - version, name, path, direction, checksum,
      changed, statements, duration_ms, lock_hold_ms (how long its locks were held,
      until its commit), locks (relation and mode), attempts (each with outcome,
      elapsed_ms and, on a lock timeout, the blocking sessions), checks_summary,
      spec, transactional, dry_runnable, too_slow_to_dry_run, schema_changes
      (check mode), msg.
  returned: always
  type: list
  elements: dict
schema_changes:
  description: Per kind (tables, columns, policies, ...) the objects the run added, dropped and changed.
  returned: when something changed
  type: dict
msg:
  description: What each file did, joined.
  returned: always
  type: str
read_once:
  description: The files built from the preflight's parse (O(parsed)) instead of parsed again.
  returned: success
  type: list
  elements: str
applied:
  description: Versions this run changed (applied, or rolled back going down), in order.
  returned: always
  type: list
  elements: str
after_commit:
  description:
    - What the verify step runs again after the commit - C(specs) (the newest changed file's
      spec) and C(lasting_specs) (earlier changed files' specs, their C(lasting) checks only).
      In check mode the dry run ran them at the state its plan ends in - C(checks) and
      C(checks_summary) hold those results.
  returned: success
  type: dict
verification:
  description:
    - With O(verify_after_commit), what the verify step records - C(specs_result) and C(audit_result)
      (the shape of M(pgrollout.postgresql.pg_assert)'s), C(failed), C(msg) and C(started_at).
  returned: success with verify_after_commit, not in check mode
  type: dict
xids:
  description: The transaction ids of the files this run committed (an automatic restore discards only their rows).
  returned: always
  type: list
  elements: str
partial:
  description:
    - On failure, what the failed file left on the target (a non-transactional file's applied
      statements, schema changes, INVALID indexes, how to resume), compared before and after;
      null when the comparison shows nothing was left.
  returned: failed
  type: dict
failed_file:
  description: On failure, the file that failed, with file, line, statement_number, sqlstate and error.
  returned: failed
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.applying import ApplyWatch, reading_said
from ansible_collections.pgrollout.postgresql.plugins.module_utils.checks import SpecError, validate, verification
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible_collections.pgrollout.postgresql.plugins.module_utils.controller import ControllerWatch
from ansible_collections.pgrollout.postgresql.plugins.module_utils.lease import heartbeat
from ansible_collections.pgrollout.postgresql.plugins.module_utils.migrate import (
    Item,
    MigrationError,
    Options,
    apply_plan,
)
from ansible_collections.pgrollout.postgresql.plugins.module_utils.plan import (
    LAYOUT_ARGUMENT_SPEC,
    Layout,
    PlanError,
    build,
    refuse_changed,
)
from ansible_collections.pgrollout.postgresql.plugins.module_utils.progress import Progress
from ansible_collections.pgrollout.postgresql.plugins.module_utils.retry import RetryPolicy
from ansible_collections.pgrollout.postgresql.plugins.module_utils.sqlfile import MigrationFileError, load
from ansible_collections.pgrollout.postgresql.plugins.module_utils.timeouts import TimeoutSettingError, check

ARGUMENT_SPEC = dict(
    CONNECTION_ARGUMENT_SPEC,
    files={"type": "list", "elements": "path"},
    path={"type": "path"},
    forward_path={"type": "path"},
    direction={"type": "str", "choices": ["up", "down"], "default": "up"},
    migrations_dir={"type": "path"},
    **LAYOUT_ARGUMENT_SPEC,
    require_spec={"type": "bool", "default": False},
    final_checks={"type": "list", "elements": "dict", "aliases": ["checks"]},
    single_transaction={"type": "bool", "default": False},
    lock_timeout={"type": "str", "default": "5s"},
    statement_timeout={"type": "str", "default": "5min"},
    dry_run_statement_timeout={"type": "str", "default": "10s"},
    retries={"type": "int", "default": 5},
    retry_delay={"type": "float", "default": 1.0},
    retry_max_delay={"type": "float", "default": 30.0},
    lock_wait={"type": "float", "default": 0},
    accept_drift={"type": "dict", "default": {}},
    approved_checksums={"type": "dict", "default": {}},
    run_id={"type": "str"},
    require_lease={"type": "bool", "default": False},
    lease_ttl={"type": "int", "default": 600},
    parsed={"type": "dict", "default": {}},
    progress_seconds={"type": "float", "default": 10.0},
    controller_pid={"type": "int"},
    verify_after_commit={"type": "bool", "default": False},
    verify_statement_timeout={"type": "str", "default": "30s"},
)


def items(p: dict) -> list[Item]:
    """The plan, fully read and checked before connecting."""
    if p["path"]:
        file = load(p["path"])
        forward = load(p["forward_path"]).checksum if p["forward_path"] else None
        return [Item(file=file, direction=p["direction"], forward_checksum=forward,
                     checks=validate(p["final_checks"]) if p["final_checks"] else None)]
    layout = Layout(p["migrations_dir"], p["rollbacks_dir"], p["verification_dir"], p["layout"])
    return build(layout, p["files"], p["direction"], p["require_spec"], p["final_checks"],
                 parsed={str(k): str(v) for k, v in p["parsed"].items()})


def verified(p: dict, after_commit: dict, audit: list[dict]) -> dict:
    """The verify step's checks right after the commit, in this module run (one interpreter less per run).

    A new connection, as pg_assert's was: nothing a file set in its session (a role, a search_path) reaches them."""
    try:
        with Progress(lambda: "verifying the committed files", p["progress_seconds"]), connect(p) as conn:
            done = verification(conn, after_commit["specs"], after_commit["lasting_specs"], None, audit,
                                p["verify_statement_timeout"])
    except (SpecError, RuntimeError) as exc:
        return not_verified(str(exc))
    except Exception as exc:  # noqa: BLE001 - the files are committed: the verify step says what failed
        return not_verified(modules.describe(exc, "running the verification checks"))
    # the verify step takes specs_result as its own result: its start is the step's start in the run record
    done["specs_result"]["started_at"] = done["started_at"]
    return done


def not_verified(msg: str) -> dict:
    """Checks that could not run failed, the specs' and the audit's alike (the verify step stops on either)."""
    failed = {"failed": True, "msg": msg}
    return {"specs_result": dict(failed), "audit_result": dict(failed), **failed}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[("files", "path")], required_one_of=[("files", "path")],
                           required_by={"files": "migrations_dir"})
    p = module.params
    watch = ControllerWatch(p["controller_pid"])
    try:
        check(lock_timeout=p["lock_timeout"], statement_timeout=p["statement_timeout"],
              dry_run_statement_timeout=p["dry_run_statement_timeout"],
              verify_statement_timeout=p["verify_statement_timeout"])
        audit = validate(p["final_checks"]) if p["verify_after_commit"] and p["final_checks"] else []
        with Progress(lambda: reading_said(p["files"] or [p["path"]], p["parsed"]), p["progress_seconds"]):
            plan = items(p)  # a big file takes seconds to parse: said at the polls, as the apply is
        refuse_changed(plan, {str(k): str(v) for k, v in p["approved_checksums"].items()})
    except (TimeoutSettingError, MigrationFileError, SpecError, PlanError) as exc:
        module.fail_json(msg=str(exc), results=[], applied=[], report=[])
    options = Options(
        lock_timeout=p["lock_timeout"], statement_timeout=p["statement_timeout"],
        retry=RetryPolicy(retries=p["retries"], delay=p["retry_delay"], max_delay=p["retry_max_delay"]),
        lock_wait=p["lock_wait"], check_mode=module.check_mode, run_id=p["run_id"],
        accept_drift={str(k): str(v) for k, v in p["accept_drift"].items()},
        single_transaction=p["single_transaction"], dry_run_statement_timeout=p["dry_run_statement_timeout"],
        require_lease=p["require_lease"] and not module.check_mode, controller=watch)
    try:
        progress = ApplyWatch(p, options.now)
        with connect(p) as conn, heartbeat(p, p["run_id"] if options.require_lease else None, p["lease_ttl"] / 4), \
                Progress(progress.line, p["progress_seconds"]):
            summary = apply_plan(conn, plan, options)
        progress.close()
    except MigrationError as exc:
        results = [modules.public(r) for r in exc.details.pop("results", [])]
        module.fail_json(msg=str(exc), results=results, failed_file=modules.public(exc.details),
                         report=modules.file_report(results, module.check_mode),
                         partial=exc.details.get("partial"), xids=[r["xid"] for r in results if r.get("xid")],
                         attempts=exc.details.get("attempts", []), applied=modules.changed_versions(results),
                         changed=any(r.get("changed") and not r.get("dry_run") for r in results))
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, "applying the migrations"), results=[], applied=[])
    results = [modules.public(r) for r in summary["results"]]
    result = {"changed": summary["changed"], "results": results, "applied": modules.changed_versions(results),
              "after_commit": summary["after_commit"], "xids": [r["xid"] for r in results if r.get("xid")],
              "msg": "; ".join(r["msg"] for r in results) or "no file to run",
              "read_once": [i.file.path for i in plan if i.file.from_plan],
              "report": modules.file_report(results, module.check_mode)}
    if summary.get("schema_changes") is not None:
        result["schema_changes"] = summary["schema_changes"]
    if p["verify_after_commit"] and not module.check_mode:
        result["verification"] = verified(p, summary["after_commit"], audit)
    diffs = [r.pop("diff") for r in summary["results"] if r.get("diff")]
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
