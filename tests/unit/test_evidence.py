"""Pure logic of evidence records."""
from __future__ import annotations

from pgrollout import evidence


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


def test_outcome():
    assert evidence.outcome({"task": "t"}, dry_run=True) == "failed"
    assert evidence.outcome(None, dry_run=True) == "dry_run"
    assert evidence.outcome(None, dry_run=False) == "succeeded"


def test_step_timings_run_from_each_mark_to_the_next_and_the_last_to_the_finish():
    import datetime

    finished = datetime.datetime(2026, 12, 1, 10, 0, 10, tzinfo=datetime.UTC)
    marks = {"migrate": "2026-12-01T10:00:04.500000Z", "preflight": "2026-12-01T10:00:00.000000Z",
             "backup": "2026-12-01T10:00:01.250000Z"}
    assert [(t["step"], t["seconds"]) for t in evidence.timings(marks, finished)] == [
        ("preflight", 1.25), ("backup", 3.25), ("migrate", 5.5)]
    assert evidence.timings({}, finished) == []
