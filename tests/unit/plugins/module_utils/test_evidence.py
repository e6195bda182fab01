"""Pure logic of evidence records."""
from __future__ import annotations

from ansible_collections.pgrollout.postgresql.plugins.module_utils import evidence


def test_redact_removes_secrets_and_url_passwords():
    text = "pw=s3cret! url=postgresql://app:hunter2@db:5432/x other=s3cret!x"
    out = evidence.redact(text, ["s3cret!", ""])
    assert "s3cret!" not in out and "hunter2" not in out
    assert "postgresql://app:********@db" in out


def test_record_keeps_only_audit_fields_and_never_invocations():
    steps = {
        "preflight": {"facts": {"server_version": "15.18", "database": "d",
                                "migrations": {"applied": ["001"], "pending": ["003_x.sql"]}}},
        "migrate": {"results": [
            {"version": "003", "name": "x", "changed": True, "msg": "applied",
             "invocation": {"module_args": {"login_password": "pw"}}},
            {"skipped": True},
        ]},
        "verify": {"passed": 1, "failed": 0, "results": [
            {"name": "c", "severity": "fail", "status": "passed", "expected": 1, "actual": 1}]},
    }
    record = evidence.build_record(run_id="r", kind="rollout", environment="dev", host="h",
                                   started_at="t", dry_run=False, steps=steps, failure=None,
                                   context={"operator": "me"})
    assert record["schema_version"] == 1 and record["outcome"] == "succeeded"
    assert record["migrations"] == [{"version": "003", "name": "x", "changed": True, "msg": "applied",
                                     "verified": False}]
    assert record["unverified"] == ["003"]
    assert "invocation" not in str(record)
    assert record["backup"] is None and record["verification"]["passed"] == 1
    assert "| c | passed |" in evidence.markdown(record)


APPLIED = {"migrate": {"results": [{"version": "003", "name": "x", "changed": True}]}}


def test_outcome():
    marks = {"start": "2026-12-01T10:00:00Z", "preflight": "2026-12-01T10:00:01Z"}
    later = {**marks, "migrate": "2026-12-01T10:00:05Z"}
    assert evidence.outcome(None, dry_run=True) == "dry_run"
    assert evidence.outcome({"task": "t"}, dry_run=True) == "refused"
    assert evidence.outcome(None, dry_run=False) == "no_change"
    assert evidence.outcome(None, False, APPLIED) == "succeeded"
    assert evidence.outcome(None, False, {}, kind="rehearsal") == "succeeded"
    assert evidence.outcome({"task": "Check the change window"}, False, {}, marks) == "refused"
    # failed while migrating, nothing left applied (the file's transaction rolled back)
    assert evidence.outcome({"task": "Apply"}, False, {}, later) == "failed_rolled_back"
    assert evidence.outcome({"task": "Verify"}, False, {**APPLIED, "rollback_path": "script"}, later) \
        == "failed_rolled_back"
    assert evidence.outcome({"task": "Verify"}, False, APPLIED, later) == "failed_not_rolled_back"
    # a rollback run's own changes are not undone by its rollback path
    assert evidence.outcome({"task": "Verify"}, False, {**APPLIED, "rollback_path": "script"}, later,
                            kind="rollback") == "failed_not_rolled_back"


def test_signature_verifies_only_the_record_it_was_made_for():
    record = {"run_id": "r", "outcome": "succeeded", "migrations": [{"version": "003", "changed": True}]}
    signed = evidence.sign(record, "k3y")
    assert evidence.verified(signed, "k3y") and not evidence.verified(signed, "other")
    forged = {**signed, "outcome": "succeeded", "migrations": [{"version": "004", "changed": True}]}
    assert not evidence.verified(forged, "k3y") and not evidence.verified(record, "k3y")


def test_junit_has_a_case_per_migration_and_per_check_and_the_summary_line_leads_with_the_outcome():
    import xml.etree.ElementTree as ET

    record = evidence.build_record(
        run_id="r1", kind="rollout", environment="dev", host="h", started_at="t", dry_run=False, failure=None,
        context={}, steps={**APPLIED, "verify": {"passed": 1, "not_passed": 1, "results": [
            {"name": "a", "spec": "v/003_x.yml", "severity": "fail", "status": "passed"},
            {"name": "b", "spec": "v/003_x.yml", "severity": "warn", "status": "failed"}]},
            "verify_audit": {"passed": 1, "results": [{"name": "audit: rls", "severity": "warn",
                                                       "status": "passed"}]}})
    suite = ET.fromstring(evidence.junit(record))
    names = [c.get("name") for c in suite.iter("testcase")]
    assert names == ["003_x", "a", "b", "audit: rls"] and suite.get("tests") == "4"
    assert suite.get("failures") == "0" and suite.get("skipped") == "1"
    line = evidence.summary_line(record, "/e/r1.json")
    assert line == "succeeded rollout dev/h run=r1 changed=003 checks=2/3 evidence=/e/r1.json"
    record["migrations"][0]["lock_hold_ms"] = 42
    assert " checks=2/3 longest_lock_hold=42ms evidence=" in evidence.summary_line(record, "/e/r1.json")


def test_step_timings_run_from_each_mark_to_the_next_and_the_last_to_the_finish():
    import datetime

    finished = datetime.datetime(2026, 12, 1, 10, 0, 10, tzinfo=datetime.UTC)
    marks = {"migrate": "2026-12-01T10:00:04.500000Z", "preflight": "2026-12-01T10:00:00.000000Z",
             "backup": "2026-12-01T10:00:01.250000Z"}
    assert [(t["step"], t["seconds"]) for t in evidence.timings(marks, finished)] == [
        ("preflight", 1.25), ("backup", 3.25), ("migrate", 5.5)]
    assert evidence.timings({}, finished) == []


def test_a_version_applied_and_rolled_back_in_one_run_is_listed_once_in_changed():
    steps = {"migrate": {"results": [{"version": "003", "changed": True}, {"version": "004", "changed": True}]},
             "rollback": {"results": [{"version": "004", "changed": True}, {"version": "003", "changed": True}]}}
    assert evidence.changed_here(steps, "rollout") == ["003", "004"]


def test_the_summary_line_counts_the_checks_of_dry_runs_and_rehearsals():
    dry = {"outcome": "dry_run", "kind": "rollout", "environment": "dev", "host": "h", "run_id": "r",
           "dry_run": True, "migrations": [{"checks_summary": ["PASS  a", "PASS  b"]}, {"checks_summary": ["PASS  c"]}],
           "dry_run_after_commit": {"checks_summary": ["PASS  c", "FAIL  d | expected 1 | actual 2"]}}
    assert "checks=4/5" in evidence.summary_line(dry, "x.json")
    rehearsal = {"outcome": "succeeded", "kind": "rehearsal", "environment": "dev", "host": "h", "run_id": "r",
                 "dry_run": False, "rehearsal": [{"step": "apply", "summary": ["PASS  a"]},
                                                 {"step": "verify", "summary": ["PASS  a", "PASS  audit"]}]}
    assert "checks=3/3" in evidence.summary_line(rehearsal, "x.json")


def test_status_shows_the_last_run_of_that_database_not_of_another_one_under_the_same_host(tmp_path):
    import json

    from ansible_collections.pgrollout.postgresql.plugins.module_utils import status

    for name, database, finished in (("1", "app", "2026-12-01T10:00:00"), ("2", "other", "2026-12-01T11:00:00")):
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "run_id": name, "host": "db-1", "kind": "rollout", "outcome": "succeeded", "finished_at": finished,
            "target": {"database": database}}))
    entry = status.target_status({"database": "app", "migrations": {}}, "db-1", str(tmp_path))
    assert entry["last_run"]["run_id"] == "1"
    assert status.target_status({"database": "other", "migrations": {}}, "db-1", str(tmp_path))["last_run"][
        "run_id"] == "2"


def _failed(steps: dict, failure: dict, marks: dict | None = None, kind: str = "rollout") -> dict:
    marks = marks or {"start": "2026-12-01T10:00:00Z", "migrate": "2026-12-01T10:00:05Z"}
    return evidence.build_record(run_id="r", kind=kind, environment="dev", host="h", started_at="t",
                                 dry_run=False, steps=steps, failure=failure, context={}, marks=marks)


def test_the_failure_note_says_what_the_record_shows_and_nothing_else():
    verify = {"task": "Verify", "msg": "check failed.", "kind": "check_failed", "keep_applied": False}
    # rolled back by script: the database is as before
    note = evidence.failure_note(_failed({**APPLIED, "rollback_path": "script"}, verify))
    assert note == "Rolled back automatically (script); the database is at its state before this run."
    # applied and kept because pgrollout_auto_rollback is off, or because the stop keeps it (a watch breach)
    assert evidence.failure_note(_failed(APPLIED, verify), auto_rollback=False) == \
        "This run applied 003 and did NOT roll back (pgrollout_auto_rollback is off)."
    kept = evidence.failure_note(_failed(APPLIED, {**verify, "kind": "watch_breach", "keep_applied": True}))
    assert kept.startswith("This run applied 003 and did NOT roll back: this stop keeps") and "watch_breach" in kept
    assert "Nothing" not in kept
    # the failed file's transaction undid it: nothing changed, and only then is it said
    assert evidence.failure_note(_failed({"migrate": {"results": [{"version": "003", "changed": False}]}},
                                         verify)) == "Nothing was changed."
    # a partially applied file comes first, and what was applied before it is named
    partial = {"migrate": {"results": [{"version": "001", "changed": True}, {"version": "002", "changed": False}],
                           "partial": {"version": "002", "msg": "002.sql is PARTIALLY APPLIED: ..."}}}
    note = evidence.failure_note(_failed(partial, verify))
    assert note.startswith("002.sql is PARTIALLY APPLIED") and "kept, not rolled back under it: 001." in note
    assert "Nothing" not in note
    # the message a failed run ends with: step, message (one full stop), note, record
    end = evidence.end_message(_failed(APPLIED, verify), "/e/r.json", auto_rollback=False)
    assert end == ("Rollout failed at 'Verify': check failed. This run applied 003 and did NOT roll back "
                   "(pgrollout_auto_rollback is off). Evidence: /e/r.json")
    # other kinds say their own state in their messages
    assert evidence.failure_note(_failed(APPLIED, verify, kind="rollback")) == ""


def test_the_webhook_line_marks_the_outcome_and_names_the_path_a_rollback_took():
    ok = evidence.build_record(run_id="r1", kind="rollout", environment="dev", host="h", started_at="t",
                               dry_run=False, steps=APPLIED, failure=None, context={})
    assert evidence.notify_text(ok) == ":white_check_mark: pgrollout dev/h: rollout succeeded (r1)"
    failed = _failed({**APPLIED, "rollback_path": "script"}, {"task": "Verify", "msg": "x"})
    assert evidence.notify_text(failed) == \
        ":x: pgrollout dev/h: rollout failed_rolled_back at Verify, rolled back by script (r)"
