"""Verification checks: validate a spec, run every check read-only, report each result.

A check is SQL plus one expectation:
  rows:     the exact rows, as lists of column values (ordered unless `ordered: false`)
  count:    the number of rows
  jmespath: an expression over the rows (a list of objects keyed by column name)
            that must evaluate to true
  sqlstate: the SQL must fail with this SQLSTATE (e.g. 42501: RLS refused a write)
Each check runs in its own savepoint that is always rolled back, inside one
transaction that is rolled back too, so a check can neither change the
database nor leak its role or settings into the next one. The transaction is
READ ONLY unless a check has `setup`: SQL run as the connecting user before the
role switch, to create the rows a behaviour check needs (rolled back with it).

When specs run (README, "Verification specs"): a spec states what is true
right after its file. It runs inside that file's transaction, before commit,
in the run and in the dry run alike: that is the authoritative check. After
the commit only what must be true of the final state runs again: the spec of
the newest file the run changed, the checks of earlier specs marked
`lasting: true`, and the security audit. A later file, in the same run or a
later one, may change what an earlier spec checked without failing anything.
"""
from __future__ import annotations

import datetime
import decimal
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection

CHECK_KEYS = {"name", "sql", "params", "expect", "severity", "role", "claims", "description", "setup", "lasting",
              "catalog"}
EXPECT_KEYS = {"rows", "count", "jmespath", "sqlstate", "ordered"}
EXPECT_KINDS = ("rows", "count", "jmespath", "sqlstate")
SEVERITIES = ("fail", "warn")
ROLES = ("anon", "authenticated", "service_role")


class SpecError(Exception):
    """A verification spec that cannot run; nothing was executed."""


def _check_error(index: int, check: Any, problem: str) -> SpecError:
    label = check.get("name") if isinstance(check, dict) and check.get("name") else f"#{index}"
    return SpecError(f"check {label}: {problem}")


def validate(checks: Any) -> list[dict[str, Any]]:
    """Normalised checks, or SpecError naming the first bad check and what to fix."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    if not isinstance(checks, list) or not checks:
        raise SpecError("a verification spec needs a non-empty list of checks")
    names: set[str] = set()
    result = []
    for index, check in enumerate(checks, start=1):
        if not isinstance(check, dict):
            raise _check_error(index, check, "each check is a mapping with name, sql and expect")
        unknown = set(check) - CHECK_KEYS
        if unknown:
            raise _check_error(index, check, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(CHECK_KEYS)}")
        if check.get("catalog") is not None:
            check = _catalog_check(index, check)
        for key in ("name", "sql", "expect"):
            if not check.get(key):
                raise _check_error(index, check, f"'{key}' is required")
        if check["name"] in names:
            raise _check_error(index, check, "two checks share this name")
        names.add(check["name"])
        expect = check["expect"]
        if not isinstance(expect, dict) or set(expect) - EXPECT_KEYS:
            raise _check_error(index, check, f"'expect' takes only {sorted(EXPECT_KEYS)}")
        kinds = [k for k in EXPECT_KINDS if k in expect]
        if len(kinds) != 1:
            raise _check_error(index, check, f"'expect' needs exactly one of {', '.join(EXPECT_KINDS)}")
        if "sqlstate" in expect and not re.fullmatch(r"[0-9A-Z]{5}", str(expect["sqlstate"])):
            raise _check_error(index, check, "'sqlstate' is a five-character SQLSTATE such as 42501")
        if check.get("setup") is not None and not isinstance(check["setup"], str):
            raise _check_error(index, check, "'setup' is SQL text")
        if "jmespath" in expect:
            try:
                jmespath.compile(expect["jmespath"])
            except JMESPathError as exc:
                raise _check_error(index, check, f"invalid jmespath {expect['jmespath']!r}: {exc}") from exc
        if "rows" in expect and not (isinstance(expect["rows"], list)
                                     and all(isinstance(r, list) for r in expect["rows"])):
            raise _check_error(index, check, "'rows' is a list of rows, each a list of column values")
        if "count" in expect and (isinstance(expect["count"], bool) or not isinstance(expect["count"], int)):
            raise _check_error(index, check, "'count' is a whole number")
        severity = check.get("severity", "fail")
        if severity not in SEVERITIES:
            raise _check_error(index, check, f"severity is one of {SEVERITIES}")
        if not isinstance(check.get("lasting", False), bool):
            raise _check_error(index, check, "'lasting' is true or false")
        if check.get("role") is not None and check["role"] not in ROLES:
            raise _check_error(index, check, f"role is one of {ROLES}")
        result.append({**check, "severity": severity, "params": check.get("params") or {}})
    return result


def _catalog_check(index: int, check: dict[str, Any]) -> dict[str, Any]:
    """`catalog: {kind, object}`: the object's definition as the catalog snapshot (schema.py) reads it."""
    from . import schema

    spec = check["catalog"]
    if not isinstance(spec, dict) or set(spec) != {"kind", "object"} or spec["kind"] not in schema.KINDS:
        raise _check_error(index, check, f"'catalog' is {{kind, object}} with kind one of {', '.join(schema.KINDS)}")
    if check.get("sql") or check.get("params"):
        raise _check_error(index, check, "a 'catalog' check has no 'sql' or 'params' of its own")
    return {**check, "sql": schema.object_sql(spec["kind"]), "params": {"object": str(spec["object"])}}


SPEC_KEYS = {"migration", "description", "checks"}


def load_spec(path: str) -> list[dict[str, Any]]:
    """The validated checks of a spec file, or SpecError saying what to fix; nothing runs before."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the verification spec: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if document is None:
        raise SpecError(f"{path}: the spec is empty; it needs 'checks:' with at least one check")
    if not isinstance(document, dict):
        raise SpecError(f"{path}: a spec is a mapping with 'checks:' (and optionally migration, description)")
    unknown = set(document) - SPEC_KEYS
    if unknown:
        raise SpecError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
    try:
        return validate(document.get("checks"))
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from exc


def spec_checks(specs: list[str], lasting_specs: list[str] = ()) -> list[dict[str, Any]]:
    """Every check of `specs` and the `lasting: true` checks of `lasting_specs`, each tagged with its spec.

    With more than one spec in all, each name is prefixed with its spec's file name."""
    import os

    prefixed = len(specs) + len(lasting_specs) > 1
    result = []
    for path, lasting_only in [(p, True) for p in lasting_specs] + [(p, False) for p in specs]:
        prefix = os.path.basename(path).rsplit(".", 1)[0] + ": " if prefixed else ""
        result += [{**c, "name": prefix + c["name"], "spec": path} for c in load_spec(path)
                   if not lasting_only or c.get("lasting")]
    return result


def after_commit(results: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Which specs run again after the commit of a run whose per-file `results` are given (see the docstring)."""
    changed = [r for r in results if r.get("changed") and not r.get("failed") and not r.get("drift_accepted")
               and r.get("dry_runnable", True)]
    if not changed:
        return {"specs": [], "lasting_specs": []}
    return {"specs": [changed[-1]["spec"]] if changed[-1].get("spec") else [],
            "lasting_specs": [r["spec"] for r in changed[:-1] if r.get("spec")]}


def plain(value: Any) -> Any:
    """A column value as YAML/JSON would write it, so expectations can be plain data."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (uuid.UUID, datetime.date, datetime.datetime, datetime.time)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return str(value)


def _row_key(row: Any) -> str:
    """Rows compared regardless of order sort by their JSON text (values of any type)."""
    return json.dumps(row, default=str)


def evaluate(expect: dict[str, Any], columns: list[str], rows: list[list[Any]]) -> tuple[bool, Any, Any]:
    """(passed, expected, actual) for one check's rows."""
    import jmespath

    if "sqlstate" in expect:
        return False, f"SQLSTATE {expect['sqlstate']}", rows
    if "count" in expect:
        return len(rows) == expect["count"], expect["count"], len(rows)
    if "rows" in expect:
        wanted, got = expect["rows"], rows
        if not expect.get("ordered", True):
            wanted, got = sorted(wanted, key=_row_key), sorted(got, key=_row_key)
        return got == wanted, expect["rows"], rows
    objects = [dict(zip(columns, r, strict=True)) for r in rows]
    value = jmespath.search(expect["jmespath"], objects)
    return value is True, f"{expect['jmespath']} is true", objects if value is not True else value


class SetupFailed(Exception):
    """A check's setup SQL failed: the check is reported as an error."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _run_one(conn: Connection, check: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    outcome: dict[str, Any] = {"name": check["name"], "severity": check["severity"],
                               **({"spec": check["spec"]} if check.get("spec") else {})}
    wanted_state = check["expect"].get("sqlstate")
    try:
        with conn.transaction() as savepoint, conn.cursor() as cur:
            if check.get("setup"):
                try:
                    cur.execute(check["setup"], prepare=False)
                except psycopg.Error as exc:
                    raise SetupFailed(exc) from exc
            if check.get("claims") is not None:
                cur.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(check["claims"]),))
            if check.get("role"):
                cur.execute(psycopg.sql.SQL("SET LOCAL ROLE {}").format(psycopg.sql.Identifier(check["role"])))
            try:
                cur.execute(check["sql"], check["params"] or None, prepare=False)
            except psycopg.Error as exc:
                if wanted_state is None:
                    raise
                passed = exc.sqlstate == str(wanted_state)
                outcome.update(status="passed" if passed else "failed", expected=f"SQLSTATE {wanted_state}",
                               actual=f"SQLSTATE {exc.sqlstate}: {str(exc).strip()}")
                raise psycopg.Rollback(savepoint) from None
            columns = [c.name for c in cur.description or []]
            rows = [[plain(v) for v in row] for row in cur.fetchall()] if cur.description else []
            try:
                passed, expected, actual = evaluate(check["expect"], columns, rows)
            except Exception as exc:  # a jmespath expression that fails on these rows
                passed, expected, actual = False, check["expect"], f"cannot evaluate: {exc}"
            outcome.update(status="passed" if passed else "failed", expected=expected, actual=actual)
            raise psycopg.Rollback(savepoint)
    except SetupFailed as exc:
        outcome.update(status="error", expected=None, actual=None,
                       error=f"setup failed: SQLSTATE {exc.error.sqlstate}: {str(exc.error).strip()}")
    except psycopg.Error as exc:
        outcome.update(status="error", expected=None, actual=None,
                       error=f"SQLSTATE {exc.sqlstate}: {str(exc).strip()}")
    return outcome


def run(conn: Connection, checks: list[dict[str, Any]], statement_timeout: str = "30s") -> list[dict[str, Any]]:
    """Run validated checks in one transaction that is rolled back at the end.

    READ ONLY unless a check has setup SQL to run.
    """
    import psycopg

    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # Inside a migration's transaction (before commit, or a dry run): each
        # check's savepoint is rolled back, so nothing it does survives.
        return [_run_one(conn, check) for check in checks]
    results: list[dict[str, Any]] = []
    with conn.transaction() as outer:
        with conn.cursor() as cur:
            if not any(check.get("setup") for check in checks):
                cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("SELECT set_config('statement_timeout', %s, true)", (statement_timeout,))
        results = [_run_one(conn, check) for check in checks]
        raise psycopg.Rollback(outer)
    return results


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What pg_assert returns for a list of results: counts, summary lines, msg, failed."""
    failed = failures(results)
    not_passed = sum(r["status"] != "passed" for r in results)
    if failed:
        msg = f"{len(failed)} of {len(results)} checks failed: {', '.join(r['name'] for r in failed)}"
    else:
        msg = f"all {len(results)} checks passed" if not not_passed else f"{not_passed} warning(s)"
    return {"results": results, "summary": table(results), "passed": len(results) - not_passed,
            "not_passed": not_passed, "msg": msg, "failed": bool(failed)}


# pg_assert's result for no spec at all (specs_report); pg_facts says the same where an unchanged target has
# nothing to check, so a run with nothing pending starts no module to verify nothing
NO_SPEC: dict[str, Any] = {"skipped": True, "msg": "no spec to run"}


def specs_report(conn: Connection, specs: list[str], lasting_specs: list[str], checks: list[dict[str, Any]] | None,
                 statement_timeout: str) -> dict[str, Any]:
    """What pg_assert returns for the specs (the lasting checks of `lasting_specs`) and the given checks.

    No spec and no check at all is a skipped result (NO_SPEC) without a query."""
    if not (specs or lasting_specs or checks):
        return dict(NO_SPEC)
    found = spec_checks(specs, lasting_specs) + (validate(checks) if checks else [])
    if not found:
        return {**report([]), "msg": "no lasting check in " + ", ".join(lasting_specs)}
    return report(run(conn, found, statement_timeout))


def verification(conn: Connection, specs: list[str], lasting_specs: list[str], checks: list[dict[str, Any]] | None,
                 audit: list[dict[str, Any]], statement_timeout: str) -> dict[str, Any]:
    """The verify step's two results on one connection: the specs' (specs_report), then the audit's.

    pg_assert returns this; pg_migrate returns it as `verification` where it verifies right after its commit."""
    import datetime

    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    specs_result = specs_report(conn, specs, lasting_specs, checks, statement_timeout)
    audit_result = report(run(conn, audit, statement_timeout))
    failed = [r["msg"] for r in (specs_result, audit_result) if r.get("failed")]
    return {"specs_result": specs_result, "audit_result": audit_result, "failed": bool(failed), "started_at": started,
            "msg": "; ".join(failed) or f"{specs_result['msg']}; audit: {audit_result['msg']}"}


def failures(results: list[dict[str, Any]], severity: str = "fail") -> list[dict[str, Any]]:
    return [r for r in results if r["status"] != "passed" and r["severity"] == severity]


def table(results: list[dict[str, Any]]) -> list[str]:
    """Lines of a compact table: result, check, and expected vs actual where it failed, whole (a difference
    past a cut is a difference nobody sees)."""
    lines = []
    for r in results:
        mark = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}[r["status"]]
        if r["status"] != "passed" and r["severity"] == "warn":
            mark = "WARN"
        line = f"{mark:5} {r['name']}"
        if r["status"] == "failed":
            expected, actual = (json.dumps(r[k], default=str) for k in ("expected", "actual"))
            line += f" | expected {expected} | actual {actual}"
        elif r["status"] == "error":
            line += f" | {r['error']}"
        lines.append(line)
    return lines
