"""Verification checks against a real server: read-only, isolated, every result reported."""
from __future__ import annotations

from conftest import query
from pgrollout import checks, connection

ALICE = "00000000-0000-4000-8000-00000000a11c"


def run(params, spec):
    with connection.connect(params) as conn:
        return {r["name"]: r for r in checks.run(conn, checks.validate(spec))}


def test_every_check_is_reported_and_an_error_does_not_stop_the_others(db):
    results = run(db, [
        {"name": "kb tables", "sql": "SELECT tablename FROM pg_tables WHERE tablename LIKE 'kb_%' "
                                     "ORDER BY 1", "expect": {"count": 4}},
        {"name": "broken", "sql": "SELECT * FROM no_such_table", "expect": {"count": 0}},
        {"name": "rls off", "sql": "SELECT tablename, rowsecurity FROM pg_tables WHERE tablename LIKE 'kb_%'",
         "expect": {"jmespath": "length([?rowsecurity == `false`]) == `5`"}},
    ])
    assert results["kb tables"]["status"] == "failed"
    assert (results["kb tables"]["expected"], results["kb tables"]["actual"]) == (4, 5)
    assert results["broken"]["status"] == "error" and "42P01" in results["broken"]["error"]
    assert results["rls off"]["status"] == "passed"


def test_checks_cannot_change_the_database(db):
    results = run(db, [{"name": "write", "sql": "DELETE FROM kb_patterns RETURNING id", "expect": {"count": 0}}])
    assert results["write"]["status"] == "error" and "25006" in results["write"]["error"]
    assert query(db, "SELECT count(*) FROM kb_patterns")[0][0] == 3


def test_checks_run_as_a_role_with_claims_and_params(db):
    spec = [
        {"name": "uid", "sql": "SELECT auth.uid()::text, current_user", "role": "authenticated",
         "claims": {"sub": ALICE, "role": "authenticated"}, "expect": {"rows": [[ALICE, "authenticated"]]}},
        {"name": "back to postgres", "sql": "SELECT current_user, auth.uid()",
         "expect": {"rows": [["postgres", None]]}},
        {"name": "params", "sql": "SELECT count(*) FROM kb_patterns WHERE pattern_type = %(t)s",
         "params": {"t": "reversal"}, "expect": {"rows": [[2]]}},
    ]
    assert {n: r["status"] for n, r in run(db, spec).items()} == {
        "uid": "passed", "back to postgres": "passed", "params": "passed"}
