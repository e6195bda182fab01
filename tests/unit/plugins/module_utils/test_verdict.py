"""The preflight's verdict (verdict.py): refusals in order under their old task names, warnings, state."""
from __future__ import annotations

from ansible_collections.pgrollout.postgresql.plugins.module_utils import verdict

DRIFT = {"recorded": True, "run_id": "r1", "at": "2026-12-01T00:00:00Z",
         "changes": [{"message": "policy public.t.p: was using (x), is now using (true)"}]}


def args(facts: dict, **kw) -> dict:
    return {"facts": facts, "target": "h1", "schema_drift": "refuse", "accept_drift_reason": "", "rolling_back": False,
            **kw}


def test_the_first_refusal_stops_and_names_its_check():
    facts = {"in_recovery": True, "pooler": {"suspected": True, "reason": "port 6543"},
             "migrations": {"out_of_order": ["002"], "newest_applied": "003"}}
    result = verdict.verdict(args(facts))
    assert result["failed"] and result["refused_by"] == "Refuse a transaction-mode connection pooler"
    assert [r["check"] for r in result["refusals"]] == [
        "Refuse a transaction-mode connection pooler", "Refuse a read replica",
        "Refuse pending migrations older than the newest applied one, unless allowed with a reason"]
    assert result["failure_kind"] == "refused" and "h1 is reached through" in result["msg"]


def test_schema_drift_refuses_unless_warned_or_acknowledged():
    assert verdict.verdict(args({"schema_drift": DRIFT}))["refused_by"] == "Refuse schema drift nobody acknowledged"
    warned = verdict.verdict(args({"schema_drift": DRIFT}, schema_drift="warn"))
    assert not warned.get("failed") and warned["lines"][:2] == ["WARNING: schema drift", DRIFT["changes"][0]["message"]]
    acknowledged = verdict.verdict(args({"schema_drift": DRIFT}, accept_drift_reason="INC-1"))
    assert "acknowledged: INC-1; a real run records the live catalog" in acknowledged["lines"][0]


def test_nothing_to_refuse_shows_the_state_and_the_rollback_warning_only_going_forward():
    facts = {"server_version": "15.8", "database": "app",
             "migrations": {"applied": ["001"], "pending": ["002_x.sql"], "rollback_warning": "WARNING: no rollback"}}
    lines = verdict.verdict(args(facts))["lines"]
    # the header names where: environment and target, then the server
    assert lines[0] == "WARNING: no rollback" and "h1: PostgreSQL 15.8, database app" in lines
    assert "dev/h1: PostgreSQL 15.8, database app" in verdict.verdict({**args(facts), "environment": "dev"})["lines"]
    assert "pending: 002_x.sql" in lines and "target version: every pending file" in lines
    assert "WARNING: no rollback" not in verdict.verdict(args(facts, rolling_back=True))["lines"]


def test_long_steps_follow_the_database_size_and_the_pending_files_size():
    from ansible_collections.pgrollout.postgresql.plugins.module_utils.verdict import long_steps

    small = {"database_size_bytes": 10, "migrations": {"pending_bytes": 10}}
    assert long_steps(small, 100, 100) == {"backup": False, "migrate": False}
    assert long_steps({**small, "database_size_bytes": 100}, 100, 100) == {"backup": True, "migrate": True}
    big_files = {**small, "migrations": {"pending_bytes": 100}}
    assert long_steps(big_files, 100, 100) == {"backup": False, "migrate": True}
    assert long_steps({}, 100, 100) == {"backup": False, "migrate": False}
