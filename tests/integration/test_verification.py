"""Verification as code: the 003 spec's behaviour checks, the security audit, acknowledgement."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import MIGRATION_003, REPO, ROLLBACK_003, execute, query
from pgrollout import checks, connection, migrate, sqlfile

SPEC_003 = REPO / "verification" / "003_bot_registration_sharing.yml"
SPEC_ROLLBACK = REPO / "verification" / "003_bot_registration_sharing_rollback.yml"
AUDIT = REPO / "verification" / "security_audit.yml"
PLAN_CHECKS = ["1. new tables exist", "2. RLS enabled on all 9 tables", "3. policies exist (27)", "4. indexes",
               "5. check constraints", "6. foreign keys"]


def load(path, **params):
    spec = yaml.safe_load(path.read_text())["checks"]
    return checks.validate([{**c, "params": {**c.get("params", {}), **params}} for c in spec])


def run(params, path, **spec_params):
    with connection.connect(params) as conn:
        return {r["name"]: r for r in checks.run(conn, load(path, **spec_params))}


def not_passed(results):
    return {name for name, r in results.items() if r["status"] != "passed"}


def apply(params, path=MIGRATION_003, direction="up"):
    with connection.connect(params) as conn:
        migrate.apply(conn, sqlfile.load(str(path)), direction=direction,
                      forward_checksum=sqlfile.load(str(MIGRATION_003)).checksum)


def test_the_spec_passes_after_003_and_fails_after_the_rollback_naming_the_checks(db):
    apply(db)
    forward = run(db, SPEC_003)
    assert len(forward) == 15 and not_passed(forward) == set()
    apply(db, ROLLBACK_003, direction="down")
    after_rollback = run(db, SPEC_003)
    assert set(PLAN_CHECKS) <= not_passed(after_rollback)
    assert "setup failed" in after_rollback["RLS: a user sees only their own bots and API keys"]["error"]
    rolled_back = run(db, SPEC_ROLLBACK)
    assert not_passed(rolled_back) == {"security gap: kb_* tables readable without RLS"}
    assert rolled_back["security gap: kb_* tables readable without RLS"]["severity"] == "warn"
    assert checks.failures(list(rolled_back.values())) == []


def test_the_behaviour_checks_leave_no_row_behind(db):
    apply(db)
    before = query(db, "SELECT (SELECT count(*) FROM auth.users), (SELECT count(*) FROM public.kb_patterns)")
    run(db, SPEC_003)
    assert query(db, "SELECT (SELECT count(*) FROM auth.users), (SELECT count(*) FROM public.kb_patterns)") == before
    assert query(db, "SELECT count(*) FROM public.bots") == [(0,)]


@pytest.mark.parametrize("breakage, failing", [
    ("DROP POLICY validation_runs_select_shared ON public.validation_runs",
     {"3. policies exist (27)", "RLS: a share lets exactly the grantee read the shared run"}),
    ("DROP POLICY bots_select_own ON public.bots",
     {"3. policies exist (27)", "RLS: a user sees only their own bots and API keys"}),
    ("ALTER POLICY bots_select_own ON public.bots USING (true)",
     {"RLS: a user sees only their own bots and API keys"}),
    ("ALTER POLICY validation_run_shares_manage_own ON public.validation_run_shares WITH CHECK (true)",
     {"RLS: a user cannot share someone else's run"}),
    ("ALTER POLICY kb_patterns_select_authenticated ON public.kb_patterns TO anon, authenticated",
     {"RLS: anon sees no row of the nine tables"}),
    ("ALTER POLICY validation_runs_manage_own ON public.validation_runs USING (true)",
     {"RLS: a user changes only their own bots, API keys and runs",
      "RLS: a share lets exactly the grantee read the shared run",
      "RLS: a user without a share reads no one else's run or share"}),
])
def test_a_broken_policy_fails_the_behaviour_checks_by_name(db, breakage, failing):
    apply(db)
    execute(db, breakage)
    assert not_passed(run(db, SPEC_003)) == failing


def test_an_expected_sqlstate_passes_only_when_the_statement_fails_with_it(db):
    results = run_checks(db, [
        {"name": "refused", "sql": "SELECT 1/0", "expect": {"sqlstate": "22012"}},
        {"name": "other error", "sql": "SELECT 1/0", "expect": {"sqlstate": "42501"}},
        {"name": "no error", "sql": "SELECT 1", "expect": {"sqlstate": "22012"}},
    ])
    assert [r["status"] for r in results] == ["passed", "failed", "failed"]
    assert results[1]["actual"].startswith("SQLSTATE 22012")


def run_checks(params, spec):
    with connection.connect(params) as conn:
        return checks.run(conn, checks.validate(spec))


def test_the_audit_reports_tables_without_rls_and_policies_open_to_anon(db):
    baseline = run(db, AUDIT)
    assert baseline["audit: every table in the exposed schemas has RLS enabled"]["actual"] == [
        ["public.kb_correlations"], ["public.kb_lessons_learned"], ["public.kb_macro_events"],
        ["public.kb_market_regimes"], ["public.kb_patterns"]]
    apply(db)
    assert not_passed(run(db, AUDIT)) == set()
    execute(db, "CREATE TABLE public.later (id int); CREATE TABLE public.catalog (id int); "
                "ALTER TABLE public.catalog ENABLE ROW LEVEL SECURITY; "
                "CREATE POLICY catalog_read ON public.catalog FOR SELECT USING (true)")
    later = run(db, AUDIT)
    assert later["audit: every table in the exposed schemas has RLS enabled"]["actual"] == [["public.later"]]
    assert later["audit: no permissive policy lets anon read or write"]["actual"] == [
        ["public.catalog", "catalog_read", "SELECT"]]
    assert not_passed(run(db, AUDIT, exempt=["public.later", "public.catalog"])) == set()
    assert not_passed(run(db, AUDIT, schemas=["auth"])) == {
        "audit: every table in the exposed schemas has RLS enabled"}  # auth.users here has no RLS


def test_an_invalid_spec_is_refused_before_any_sql_runs():
    # Port 9 has no server: a spec error that comes first proves no connection was made.
    args = {"login_port": 9, "checks": [{"name": "ok", "sql": "SELECT 1", "expect": {"count": 1}},
                                        {"name": "bad one", "sql": "SELECT 1", "expect": {"jmespath": "[?"}}]}
    ansible = Path(sys.executable).parent / "ansible"
    proc = subprocess.run([str(ansible), "localhost", "-m", "pg_assert", "-a", json.dumps(args),
                           "-e", f"ansible_python_interpreter={sys.executable}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                                   ANSIBLE_LOCALHOST_WARNING="false"))
    assert proc.returncode != 0
    assert "check bad one: invalid jmespath" in proc.stdout
    assert "cannot connect" not in proc.stdout


def test_the_rollout_runs_the_audit_and_warnings_need_acknowledging_where_required(playbook, db):
    execute(db, "CREATE TABLE public.legacy_report (id int)")
    playbook.set(pgrollout_require_warning_ack=True)
    refused = playbook.run()
    assert refused.returncode != 0
    warning = "audit: every table in the exposed schemas has RLS enabled"
    assert "1 warning(s) must be acknowledged" in refused.stdout and warning in refused.stdout, refused.stdout[-3000:]
    (migrated,) = playbook.task_results(refused, "Apply the run's files")  # verified right after its commit
    verify = migrated["verification"]
    assert verify["audit_result"]["results"][0]["actual"] == [["public.legacy_report"]]
    accepted = playbook.run("rollout.yml", "-e", json.dumps({"pgrollout_acknowledged_warnings": [warning]}))
    assert accepted.returncode == 0, accepted.stdout[-3000:]
    refused_record, accepted_record = playbook.evidence()
    # 003 stays applied while its warning waits for an acknowledgement; the second run changes nothing
    assert refused_record["outcome"] == "failed_not_rolled_back" and accepted_record["outcome"] == "no_change"
    assert accepted_record["acknowledged_warnings"] == [warning]
    assert accepted_record["audit"]["results"][0]["status"] == "failed"
    markdown = (playbook.evidence_dir / f"{accepted_record['run_id']}.md").read_text()
    assert f"| {warning} | failed (warn) |" in markdown and "## Acknowledged warnings" in markdown


def test_the_audit_play_reports_without_changing_anything(playbook, db):
    execute(db, "CREATE TABLE public.legacy_report (id int)")
    proc = playbook.run("audit.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    (audit,) = playbook.task_results(proc, "Run the security audit")
    assert [r["status"] for r in audit["results"]] == ["failed", "passed"]
    rls = audit["results"][0]["actual"]
    assert ["public.legacy_report"] in rls and ["public.kb_patterns"] in rls
    assert "WARN  audit: every table in the exposed schemas has RLS enabled" in proc.stdout
    assert playbook.stats(proc)["changed"] == 0
