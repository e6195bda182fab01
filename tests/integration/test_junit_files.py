"""Every JUnit file pgrollout writes (issue 24): valid against the JUnit XML schema Jenkins and GitLab read,
with messages for people. One writer (module_utils/pgrollout/junit.py) for the evidence and the review."""
from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import xmlschema
from test_lint import lint_play

from conftest import REPO, set_playbook
from migsets import MigrationSet

SCHEMA = xmlschema.XMLSchema(str(REPO / "tests" / "schemas" / "junit.xsd"))


def valid(path: Path) -> ET.Element:
    errors = [str(e.reason) for e in SCHEMA.iter_errors(str(path))]
    assert errors == [], f"{path.name}: {errors}"
    return ET.parse(path).getroot()


def messages(suite: ET.Element) -> list[str]:
    """Each failure's, error's and skip's message and text."""
    return [f"{e.get('message') or ''}\n{e.text or ''}" for tag in ("failure", "error", "skipped")
            for e in suite.iter(tag)]


def test_the_schema_refuses_what_the_readers_refuse(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<testsuite name="x" tests="1" failures="0"><testcase name="a" classname="b"/></testsuite>')
    assert not SCHEMA.is_valid(str(bad))  # no errors count: the fault the issue saw
    bad.write_text('<testsuite name="x" tests="1" failures="1" errors="0"><testcase name="a" classname="b">'
                   "<failure/><error/></testcase></testsuite>")
    assert not SCHEMA.is_valid(str(bad))  # one outcome per case


def test_every_junit_file_of_a_rollout_a_failing_rollout_a_dry_run_and_the_review_validates(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "notes", "CREATE TABLE public.notes (id int PRIMARY KEY, body text);\n"
             "ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;\n", "DROP TABLE public.notes;\n",
             spec="checks:\n  - name: notes exists\n    sql: SELECT to_regclass('public.notes')::text\n"
                  "    expect: {rows: [[notes]]}\n")
    mset.add("002", "words", "CREATE TABLE public.words (w text);\nALTER TABLE public.words ENABLE ROW LEVEL "
             "SECURITY;\nINSERT INTO public.words VALUES ('actual <&> value');\n", "DROP TABLE public.words;\n",
             spec="checks:\n  - name: the word is right\n    sql: SELECT w FROM public.words\n"
                  "    expect: {rows: [['expected value']]}\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_backup=False)
    assert book.run_raw("rollout.yml", "--check").returncode != 0  # the dry run sees 002's check fail
    assert book.run_raw("rollout.yml").returncode != 0  # 002's check fails: rolled back
    files = sorted(book.evidence_dir.glob("*.junit.xml"))
    assert len(files) == 2, files
    suites = [valid(p) for p in files]
    said = [m for s in suites for m in messages(s)]
    # the check that stopped 002, expected and actual whole, under the file's failure
    assert any('expected [["expected value"]]' in m and 'actual [["actual <&> value"]]' in m for m in said), said
    assert not [m for m in said if m.startswith(("{'", "{\"")) or "_ansible_" in m], said
    for suite in suites:  # the counts agree with the cases
        cases = list(suite.iter("testcase"))
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(suite.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
    mset.add("003", "open", "CREATE TABLE public.open (id int);\n", "DROP TABLE public.open;\n")
    lint = lint_play(mset.migrations, mset.rollbacks, tmp_path / "lint")
    assert lint.returncode != 0
    review = valid(tmp_path / "lint" / "junit.xml")
    assert [c.get("name") for c in review.iter("testcase") if c.find("failure") is not None] == ["003_open.sql:1"]
    failure = next(review.iter("failure"))
    assert "Safer:" in (failure.text or "") and failure.get("message") and "Safer" not in failure.get("message")


@pytest.mark.parametrize("record", [
    {"kind": "rollout", "environment": "dev", "host": "h", "started_at": None},
    {"kind": "rollout", "environment": "dev", "host": "h", "started_at": "2026-12-03T10:04:22.889+00:00",
     "migrations": [{"version": "001", "name": "x", "error": {"sqlstate": "42P01", "message": "no such table"}}],
     "failure": {"task": "Apply", "msg": {"msg": "failed"}}},
])
def test_the_evidence_writer_is_valid_for_edge_records(record, tmp_path):
    from pgrollout import evidence

    path = tmp_path / "r.junit.xml"
    path.write_text(evidence.junit(record))
    suite = valid(path)
    assert not [m for m in messages(suite) if m.startswith("{")], messages(suite)
