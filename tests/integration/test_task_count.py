"""What a run costs in tasks (issue 22): the controller pays about the same for each task a run executes,
so the everyday runs stay within a budget - a forward run of a 3-file chain and a run with nothing pending."""
from __future__ import annotations

import os

from conftest import set_playbook
from migsets import chain

# the budgets issue 22 set: 15 tasks with nothing pending, 25 forward (include, argument checks and set_facts count)
NOTHING_PENDING, FORWARD = 15, 25


def executed(proc) -> list[str]:
    return [t["task"] for t in proc.results["tasks"] if t["status"] != "skipped"]


def test_a_rollout_and_a_run_with_nothing_pending_stay_within_their_task_budget(empty_db, tmp_path):
    book = set_playbook(empty_db, chain(tmp_path / "set", 3), tmp_path / "work")
    forward = book.run()
    assert forward.returncode == 0, forward.stdout[-3000:]
    nothing = book.run()
    assert nothing.returncode == 0, nothing.stdout[-3000:]
    records = book.evidence()
    assert [r["outcome"] for r in records] == ["succeeded", "no_change"]
    (migrated,) = book.task_results(forward, "Apply the run's files")  # the plan read once: no second parse
    assert [os.path.basename(p) for p in migrated["read_once"]] == [f"{i:03d}_chain_{i}.sql" for i in (1, 2, 3)]
    # the record's Markdown carries its timeline as a Mermaid gantt: a row per step the record timed
    markdown = (book.evidence_dir / f"{records[0]['run_id']}.md").read_text()
    gantt = markdown.split("```mermaid\n", 1)[1].split("```", 1)[0].splitlines()
    assert gantt[0] == "gantt" and [x.split()[0] for x in gantt if ":done," in x] == [
        t["step"] for t in records[0]["timings"]]
    assert {"preflight", "backup", "migrate", "verify"} <= {t["step"] for t in records[0]["timings"]}
    # the versions the version gate read once for the run, in every record of it (no second read per host)
    from pgrollout import tools

    expected = {k: v for k, v in tools.versions().items() if k != "ansible_core"}
    for record in records:
        versions = record["tool_versions"]
        assert {k: versions.get(k) for k in expected} == expected and versions["ansible_core"], versions
    print("forward", len(executed(forward)), executed(forward))
    print("nothing pending", len(executed(nothing)), executed(nothing))
    assert len(executed(nothing)) <= NOTHING_PENDING, executed(nothing)
    assert len(executed(forward)) <= FORWARD, executed(forward)


VERIFY_TASK = "Run the newest changed file's spec and the earlier files' lasting checks, then the security audit"


def test_a_run_with_nothing_pending_and_no_spec_starts_no_module_to_verify_nothing(empty_db, tmp_path):
    """The preflight's one call re-verifies an unchanged target; where no applied file has a spec it says so,
    as pg_assert did, and the verify step starts no module (issue 22: 0.6 s of a no-op's 3.8 s CPU)."""
    from migsets import MigrationSet

    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "plain rows", 'CREATE TABLE public."Plain Rows" (id int PRIMARY KEY);\n',
             'DROP TABLE public."Plain Rows";\n')
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_require_verification=False)
    forward = book.run()
    assert forward.returncode == 0, forward.stdout[-3000:]
    # the forward run verifies in pg_migrate's call, after its commit: no spec, said as pg_assert said it
    (migrated,) = book.task_results(forward, "Apply the run's files")
    specs_result = migrated["verification"]["specs_result"]
    assert (specs_result["skipped"], specs_result["msg"]) == (True, "no spec to run") and specs_result["started_at"]
    assert book.task_results(forward, VERIFY_TASK) == []
    nothing = book.run()
    assert nothing.returncode == 0, nothing.stdout[-3000:]
    assert book.task_results(nothing, VERIFY_TASK) == []
    forward_record, record = book.evidence()
    assert record["outcome"] == "no_change"
    # what the forward run's pg_assert said for no spec (skipped: no verification in the record), said by the
    # preflight without a module; the audit ran all the same
    assert record["verification"] is None and forward_record["verification"] is None
    assert record["audit"]["failed"] == 0 and record["audit"]["passed"] == forward_record["audit"]["passed"] > 0
    assert "no verification spec for the files of this run" in nothing.stdout



def test_a_no_op_whose_applied_specs_have_nothing_lasting_says_no_spec_as_before(empty_db, tmp_path):
    """Found comparing the evidence and console before and after this change on one generated set: the newest
    applied file has no spec and the earlier ones no lasting check. The no-op says what the verify step's
    pg_assert said before - no verification spec, verification null - and starts no module for it."""
    mset = chain(tmp_path / "set", 2)
    mset.add("003", "no spec", 'CREATE TABLE public."No Spec" (id int);\n', 'DROP TABLE public."No Spec";\n')
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_require_verification=False)
    assert book.run().returncode == 0
    nothing = book.run()
    assert nothing.returncode == 0, nothing.stdout[-3000:]
    assert book.task_results(nothing, VERIFY_TASK) == []
    record = book.evidence()[-1]
    assert record["outcome"] == "no_change" and record["verification"] is None
    assert "no verification spec for the files of this run" in nothing.stdout


def test_a_lasting_check_a_later_file_breaks_fails_the_verify_step_run_in_pg_migrate_and_rolls_back(empty_db,
                                                                                                  tmp_path):
    """pg_migrate verifies right after its commit, in its own module run (no pg_assert process). A failure there
    is the verify step's: the run stops on check_failed and rolls back both files, newest first."""
    from conftest import query
    from migsets import MigrationSet

    table = 'public."Lasting ""Rows"""'
    columns = "SELECT count(*)::int FROM information_schema.columns WHERE table_name = 'Lasting \"Rows\"'"
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "lasting rows", f"CREATE TABLE {table} (id int PRIMARY KEY);\n", f"DROP TABLE {table};\n",
             spec=f"checks:\n  - name: one column\n    lasting: true\n    sql: |\n      {columns}\n"
                  "    expect: {rows: [[1]]}\n")
    mset.add("002", "second column", f"ALTER TABLE {table} ADD COLUMN \"Note Text\" text;\n",
             f"ALTER TABLE {table} DROP COLUMN \"Note Text\";\n",
             spec=f"checks:\n  - name: two columns\n    sql: |\n      {columns}\n"
                  "    expect: {rows: [[2]]}\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_backup=False)
    proc = book.run()
    assert proc.returncode != 0, proc.stdout[-3000:]
    # no second module process verified it, going up or (the rollback's verify) down
    assert book.task_results(proc, VERIFY_TASK) == []
    migrated, down = book.task_results(proc, "Apply the run's files")  # up, then the rollback's down
    assert migrated["applied"] == ["001", "002"] and migrated["verification"]["failed"] is True
    (record,) = book.evidence()
    assert record["outcome"] == "failed_rolled_back" and record["failure"]["kind"] == "check_failed", record["failure"]
    failed = [r["name"] for r in record["verification"]["results"] if r["status"] != "passed"]
    assert failed == ["001_lasting rows: one column"], record["verification"]["results"]
    assert "Verification failed" in " ".join(proc.stdout.split())
    assert down["applied"] == ["002", "001"] and down["verification"]["failed"] is False
    # what the record says, in the database: both files rolled back, the table gone, the ledger empty of them
    assert query(empty_db, "SELECT to_regclass(%s)::text", (table,)) == [(None,)]
    assert query(empty_db, "SELECT count(*) FROM supabase_migrations.schema_migrations "
                           "WHERE version IN ('001', '002')") == [(0,)]


def test_the_checks_after_the_commit_run_on_a_new_connection_untouched_by_what_a_file_set_in_its_session(
        empty_db, tmp_path):
    """A plain SET in a committed file stays in its session: the checks after the commit (in pg_migrate's run,
    as in pg_assert's before) see a new session's settings, not the file's."""
    from migsets import MigrationSet

    path_check = ("checks:\n  - name: the default search_path\n    lasting: true\n"
                  "    sql: SELECT current_setting('search_path')\n    expect: {rows: [['\"$user\", public']]}\n")
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "plain rows", 'CREATE TABLE public."Plain Rows" (id int PRIMARY KEY);\n',
             'DROP TABLE public."Plain Rows";\n', spec=path_check)
    mset.add("002", "set path", 'ALTER TABLE public."Plain Rows" ADD COLUMN "Row Note" text;\n'
                                "SET search_path = pg_catalog;\n",
             'ALTER TABLE public."Plain Rows" DROP COLUMN "Row Note";\n',
             spec="checks:\n  - name: the note column\n    sql: SELECT count(*)::int FROM information_schema.columns "
                  "WHERE table_name = 'Plain Rows'\n    expect: {rows: [[2]]}\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_backup=False, pgrollout_audit_checks=[])  # and no audit at all: none after the commit
    proc = book.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    (migrated,) = book.task_results(proc, "Apply the run's files")
    assert migrated["verification"]["audit_result"]["passed"] == 0
    results = migrated["verification"]["specs_result"]["results"]
    assert [(r["name"], r["status"]) for r in results] == [("001_plain rows: the default search_path", "passed"),
                                                          ("002_set path: the note column", "passed")], results
    (record,) = book.evidence()
    assert record["outcome"] == "succeeded" and record["verification"]["passed"] == 2
