"""Pure logic of verification specs: validation and expectation matching."""
from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from ansible_collections.pgrollout.postgresql.plugins.module_utils import checks


def check(**overrides):
    return {"name": "c", "sql": "SELECT 1", "expect": {"count": 1}, **overrides}


@pytest.mark.parametrize("bad, message", [
    ([], "non-empty list"),
    ([check(colour="red")], r"check c: unknown key\(s\) \['colour'\]"),
    ([check(sql="")], "check c: 'sql' is required"),
    ([check(expect={"count": 1, "rows": []})], "exactly one of"),
    ([check(expect={"jmespath": "[?"})], "check c: invalid jmespath"),
    ([check(expect={"rows": [1, 2]})], "each a list of column values"),
    ([check(expect={"count": "4"})], "'count' is a whole number"),
    ([check(severity="info")], "severity is one of"),
    ([check(role="postgres")], "role is one of"),
    ([check(), check()], "check c: two checks share this name"),
    (["SELECT 1"], r"check #1: each check is a mapping"),
    ([check(expect={"sqlstate": "425"})], "check c: 'sqlstate' is a five-character SQLSTATE"),
    ([check(expect={"sqlstate": "42501", "count": 0})], "exactly one of rows, count, jmespath, sqlstate"),
    ([check(setup=["INSERT"])], "check c: 'setup' is SQL text"),
])
def test_bad_specs_are_refused_naming_the_check(bad, message):
    with pytest.raises(checks.SpecError, match=message):
        checks.validate(bad)


def test_validate_fills_defaults():
    (normalised,) = checks.validate([check()])
    assert normalised["severity"] == "fail" and normalised["params"] == {}


def test_rows_are_compared_in_order_unless_told_otherwise():
    rows = [["a", 1], ["b", 2]]
    assert checks.evaluate({"rows": rows}, ["n", "v"], rows)[0]
    assert not checks.evaluate({"rows": rows[::-1]}, ["n", "v"], rows)[0]
    assert checks.evaluate({"rows": rows[::-1], "ordered": False}, ["n", "v"], rows)[0]
    assert not checks.evaluate({"rows": rows[:1], "ordered": False}, ["n", "v"], rows)[0]


def test_count_and_jmespath_expectations():
    rows = [["t1", True], ["t2", False]]
    assert checks.evaluate({"count": 2}, ["t", "rls"], rows) == (True, 2, 2)
    passed, _unused, actual = checks.evaluate({"jmespath": "length([?rls]) == `2`"}, ["t", "rls"], rows)
    assert not passed and actual == [{"t": "t1", "rls": True}, {"t": "t2", "rls": False}]
    assert checks.evaluate({"jmespath": "length([?rls]) == `1`"}, ["t", "rls"], rows)[0]


def test_a_jmespath_result_must_be_exactly_true():
    assert not checks.evaluate({"jmespath": "[0].t"}, ["t"], [["x"]])[0]


def test_plain_turns_database_values_into_yaml_values():
    u = uuid.UUID(int=1)
    assert checks.plain(decimal.Decimal("4")) == 4
    assert checks.plain(decimal.Decimal("0.5")) == 0.5
    assert checks.plain(u) == str(u)
    assert checks.plain(datetime.date(2026, 1, 2)) == "2026-01-02"
    assert checks.plain(["a", decimal.Decimal("1")]) == ["a", 1]


def test_table_shows_expected_and_actual_for_failures_only():
    results = [
        {"name": "ok", "severity": "fail", "status": "passed", "expected": 1, "actual": 1},
        {"name": "bad", "severity": "fail", "status": "failed", "expected": 4, "actual": 3},
        {"name": "gap", "severity": "warn", "status": "failed", "expected": 0, "actual": 5},
        {"name": "boom", "severity": "fail", "status": "error", "error": "SQLSTATE 42P01: nope"},
    ]
    assert checks.table(results) == [
        "PASS  ok", "FAIL  bad | expected 4 | actual 3", "WARN  gap | expected 0 | actual 5",
        "ERROR boom | SQLSTATE 42P01: nope"]
    assert [r["name"] for r in checks.failures(results)] == ["bad", "boom"]
    assert [r["name"] for r in checks.failures(results, "warn")] == ["gap"]
