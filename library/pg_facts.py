#!/usr/bin/python
"""Read-only facts about a PostgreSQL target."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_facts
short_description: Read-only facts about a PostgreSQL database before a rollout
description:
  - Connects, and reports the server version, whether it is a replica, the
    applied migrations (Supabase ledger plus pgrollout checksums), the pending,
    drifted and missing migration files, row-level security per table,
    sessions that have been in a transaction for long, the sessions holding
    locks on the tables the pending migrations will lock, and whether a
    transaction-mode pooler sits in front of the server.
  - Runs in one READ ONLY transaction; never changes anything.
version_added: "0.1.0"
options:
  migrations_dir:
    description: Folder of the migration files on the managed host.
    type: path
  allow_out_of_order:
    description: Versions a pending file may apply in although newer ones are applied (out_of_order_allowed).
    type: list
    elements: str
    default: []
  require_spec:
    description: A file of the plan without a verification spec is a plan error.
    type: bool
    default: false
  require_rollback:
    description:
      - A pending file without a rollback file is a plan error. Without it such files are
        listed in C(migrations.pending_without_rollback) (a warning).
    type: bool
    default: false
  target_version:
    description:
      - Only the pending files up to and including this version are pending; the others are
        listed in C(migrations.beyond_target). A version that no file and no ledger row has
        fails the module.
    type: str
  rollback:
    description:
      - Also choose what a rollback would roll back, newest first - C(to) (every
        applied migration newer than it) or C(version) (which must be the newest
        applied); neither means the newest applied one.
    type: dict
  rehearse:
    description:
      - Also choose what a rehearsal rehearses - C(version), else every pending file (up to
        O(target_version)), else the newest file - with the baseline before it and what those
        files lack (C(rehearsal_plan), or C(rehearsal_error) saying why not).
    type: dict
  rls_schemas:
    description: Schemas whose tables' row-level security state is reported.
    type: list
    elements: str
    default: [public]
  long_running:
    description: Report other sessions whose transaction or query is older than this interval.
    type: str
    default: 5 minutes
  accept_drift:
    description: Versions whose edited applied file is accepted; listed under drift_accepted, not drifted.
    type: list
    elements: str
    default: []
  checks_if_current:
    description:
      - Checks (as O(pgrollout.postgresql.pg_assert#module:checks)) to run, read-only and on the same
        connection, when no file is pending or accepted as edited - the state such a run ends in. A run with nothing to
        apply gets its security audit here instead of from one more module call. Result in C(audit).
      - Then, on that unchanged target, the applied files' specs as the verify step runs them after a
        commit - the newest applied file's spec whole, the earlier ones' C(lasting) checks - result in
        C(verify), the specs in C(verify_specs).
    type: list
    elements: dict
    default: []
  settings:
    description:
      - The run's settings that need a range (C(pgrollout_*_timeout) durations, C(pgrollout_lease_ttl),
        C(pgrollout_lock_retries), C(pgrollout_backup_keep)), keyed by variable name and checked before
        connecting; a bad one fails the module naming the variable.
    type: dict
    default: {}
  statement_timeout:
    description: statement_timeout of those checks.
    type: str
    default: 30s
  accept_schema_drift_reason:
    description:
      - With C(schema_drift) found, record the live catalog as the recorded state, with this reason
        (the one write this module makes; not in check mode). Empty - record nothing.
    type: str
    default: ""
  review:
    description:
      - With pending files, review them in this call (pgrollout_lint's review - squawk and pgrollout's rules,
        forward and rollback files, annotated with the target's table sizes) and return it as C(lint).
        Keys - exposed_schemas, acknowledged, big_table_rows, big_table_bytes, squawk_config.
    type: dict
  record_first_snapshot:
    description:
      - With no catalog snapshot recorded yet (an adopted database, an older pgrollout) and no run holding
        the lease, record the live catalog now, so drift is checked from the next run on (C(schema_drift)
        says so in C(recorded_now) and C(msg)). Not in check mode.
    type: bool
    default: false
  max_file_mb:
    description:
      - A pending (or, rolling back, rollback) file bigger than this many MB is refused in C(plan_error)
        before it is read; 0 for no limit.
    type: int
    default: 0
  backup:
    description:
      - The run takes a pg_dump backup. For a role that is not a superuser, C(privileges_missing)
        then also lists every table and schema pg_dump could not read.
    type: bool
    default: false
extends_documentation_fragment: [pgrollout.postgresql.pgrollout, pgrollout.postgresql.pgrollout.layout]
attributes:
  check_mode:
    support: full
    description: Read-only, so it runs the same in check mode.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Read the target's state
  pgrollout.postgresql.pg_facts:
    login_host: 127.0.0.1
    login_password: "{{ vault_db_password }}"
    migrations_dir: supabase/migrations
  register: preflight_facts
"""

RETURN = r"""
record:
  description: What a run's record keeps of the facts (server version, database, applied, pending, long sessions).
  returned: success
  type: dict
facts:
  description: What the module found.
  returned: success
  type: dict
  contains:
    server_version: {description: Server version string., type: str}
    server_major: {description: Major version., type: int}
    in_recovery: {description: True on a read replica (nothing can be applied)., type: bool}
    migrations:
      description:
        - applied, pending (file names), pending_paths, pending_versions, drifted,
          drift_accepted, out_of_order, missing_files, newest_applied, target_version,
          beyond_target, pending_without_rollback, layout, and files (each with its
          rollback file and specs, and whether they exist), in the order they run;
          pending_files (the entries of files that are pending), checksums (each
          file's path to its checksum, what the migrate step may run) and parsed (each
          pending file to its parse, for pg_migrate's C(parsed)).
      type: dict
    rollback_plan:
      description: With O(rollback), the migrations to roll back, newest first (as in files).
      type: list
    rollback_error:
      description: With O(rollback), why nothing can be rolled back as asked (a missing or invalid file or spec).
      type: str
    rehearsal_plan:
      description:
        - With O(rehearse) - files, versions, baseline (the files before them), missing_specs,
          missing_rollbacks (each naming the command that creates it), missing_rollback_specs.
      type: dict
    rehearsal_error:
      description: With O(rehearse), why nothing can be rehearsed as asked.
      type: str
    plan_error:
      description: Why the pending files cannot run as they are (a file or spec that is missing or invalid).
      type: str
    audit:
      description: With O(checks_if_current) and nothing to run, the checks' results as pg_assert returns them.
      type: dict
    verify:
      description:
        - With O(checks_if_current) and nothing to run, the applied specs' checks (see C(verify_specs)),
          as pg_assert returns them; skipped (C(no spec to run)) where no applied file has a spec.
      type: dict
    lease: {description: "The run lease held on the database (pg_lease), or null.", type: dict}
    schema_drift:
      description:
        - The live catalog against the snapshot the last run that changed the target recorded
          (pgrollout.catalog_snapshots) - recorded (false when none is yet), run_id and at of that
          snapshot, changes (one per object, kind, object, before, after, message), accepted (the
          reason, when O(accept_schema_drift_reason) recorded the live state), recorded_now (the digest,
          when O(record_first_snapshot) recorded the first one) and msg.
      type: dict
    unfinished_runs:
      description:
        - Runs since the last one that released its lease which changed the target but never released
          theirs (killed, or still running) - run_id, started_at, ended, changes (version and direction
          from pgrollout.history) and a message. What they applied has no completed record.
      type: list
    rls: {description: Table name to row-level security on/off., type: dict}
    long_running_sessions: {description: Other sessions in long transactions., type: list}
    locks:
      description:
        - tables, the existing tables the pending migrations will lock (with the mode);
          holders, other sessions holding any lock on them (pid, application_name,
          state, query_start, transaction_seconds, locks).
      type: dict
    privileges_missing:
      description:
        - "For a role that is not a superuser, each privilege the run needs that it lacks, as
          C(role X cannot ...: GRANT ...) - pgrollout's own schemas, the pending files' existing
          tables (owner, REFERENCES, DML rights), schemas objects are created in, extensions that need
          a superuser, the roles of behaviour checks and, with O(backup), what pg_dump reads. Empty
          when nothing is missing; not returned for a superuser."
      type: list
    extensions_unavailable:
      description:
        - Each C(CREATE EXTENSION) of the plan (pending files, or the rollback files) that the target's server
          cannot provide (neither installed nor in pg_available_extensions) - file, line, extension and msg
          (what the target needs). Empty when every extension is available.
      type: list
    lint:
      description:
        - With O(review) and pending files, the review - findings, blocking (errors neither ignored nor
          acknowledged), summary - as pgrollout_lint returns it.
      type: dict
    extension_stubs:
      description:
        - pgrollout's extension stubs (supabase/stubs, opt-in on local clusters) installed on the target or
          created by the plan - extension, installed, msg. A stub sends nothing; every run names it.
      type: list
    pooler:
      description:
        - suspected, true when a transaction- or statement-mode pooler (PgBouncer,
          Supavisor) serves the connection, with the reason. Advisory locks and
          session settings do not work through one.
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.checks import (
    NO_SPEC,
    SpecError,
    after_commit,
    report,
    run,
    spec_checks,
    validate,
)
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible_collections.pgrollout.postgresql.plugins.module_utils.facts import (
    accept_drift,
    for_record,
    gather,
    pooler,
    record_first_snapshot,
)
from ansible_collections.pgrollout.postgresql.plugins.module_utils.plan import LAYOUT_ARGUMENT_SPEC, Layout, PlanError
from ansible_collections.pgrollout.postgresql.plugins.module_utils.sqlfile import MigrationFileError
from ansible_collections.pgrollout.postgresql.plugins.module_utils.timeouts import TimeoutSettingError, check_settings


def main() -> None:
    spec = dict(
        CONNECTION_ARGUMENT_SPEC,
        migrations_dir={"type": "path"},
        **LAYOUT_ARGUMENT_SPEC,
        rollback={"type": "dict"},
        rehearse={"type": "dict"},
        require_spec={"type": "bool", "default": False},
        require_rollback={"type": "bool", "default": False},
        target_version={"type": "str"},
        allow_out_of_order={"type": "list", "elements": "str", "default": []},
        rls_schemas={"type": "list", "elements": "str", "default": ["public"]},
        long_running={"type": "str", "default": "5 minutes"},
        accept_drift={"type": "list", "elements": "str", "default": []},
        checks_if_current={"type": "list", "elements": "dict", "default": []},
        statement_timeout={"type": "str", "default": "30s"},
        settings={"type": "dict", "default": {}},
        backup={"type": "bool", "default": False},
        max_file_mb={"type": "int", "default": 0},
        accept_schema_drift_reason={"type": "str", "default": ""},
        record_first_snapshot={"type": "bool", "default": False},
        review={"type": "dict"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    layout = Layout(p["migrations_dir"], p["rollbacks_dir"], p["verification_dir"], p["layout"]) \
        if p["migrations_dir"] else None
    try:
        check_settings(p["settings"])
    except TimeoutSettingError as exc:
        module.fail_json(msg=f"refused before anything ran: {exc}")
    try:
        with connect(p) as conn:
            facts = gather(conn, layout, p["rls_schemas"], p["long_running"], p["accept_drift"], p["rollback"],
                           p["require_spec"], p["allow_out_of_order"], p["target_version"], p["require_rollback"],
                           p["rehearse"], p["backup"], p["checks_if_current"], p["max_file_mb"], p["review"])
            if facts.get("privileges_missing"):  # preflight refuses: nothing more is read
                module.exit_json(changed=False, facts=facts, record=for_record(facts))
            drift = facts.get("schema_drift") or {}
            if drift.get("changes") and p["accept_schema_drift_reason"].strip() and not module.check_mode:
                accept_drift(conn, p["accept_schema_drift_reason"], drift)
            if drift.get("recorded") is False and p["record_first_snapshot"] and not module.check_mode:
                record_first_snapshot(conn, drift, facts.get("lease"))
            if p["checks_if_current"] and layout and not facts["migrations"]["pending_paths"] \
                    and not facts["migrations"]["drift_accepted"]:
                facts["audit"] = report(run(conn, validate(p["checks_if_current"]), p["statement_timeout"]))
                # the state as the applied specs describe it: the newest one whole, the others' lasting checks
                facts["verify_specs"] = after_commit([{"changed": True, "spec": a.get("spec")}
                                                      for a in facts["migrations"]["applied_details"] if a.get("file")])
                found = spec_checks(facts["verify_specs"]["specs"], facts["verify_specs"]["lasting_specs"])
                # nothing to check (no spec, no lasting check): what the verify step's pg_assert said for that
                facts["verify"] = report(run(conn, found, p["statement_timeout"])) if found else dict(NO_SPEC)
        facts["pooler"] = pooler(p)
    except (RuntimeError, MigrationFileError, SpecError, PlanError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, "reading the target's state"))
    module.exit_json(changed=bool((facts.get("schema_drift") or {}).get("accepted")), facts=facts,
                     record=for_record(facts))


if __name__ == "__main__":
    main()
