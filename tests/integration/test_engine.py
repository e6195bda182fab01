"""The engine on generated migration sets, against a real server: one plan, both directions."""
from __future__ import annotations

import subprocess
import threading

import pytest

from conftest import execute, query
from migsets import chain, ident, mixed, table_name
from pgrollout import connection, migrate, plan, retry, sqlfile
from sessions import Blocker


def options(**kwargs) -> migrate.Options:
    policy = retry.RetryPolicy(retries=kwargs.pop("retries", 2), delay=kwargs.pop("delay", 0.1), max_delay=0.5)
    return migrate.Options(retry=policy, **kwargs)


def layout_of(mset) -> plan.Layout:
    return plan.Layout(str(mset.migrations), str(mset.rollbacks), str(mset.verification), mset.layout)


def run(params, mset, direction="up", files=None, **kwargs):
    items = plan.build(layout_of(mset), files if files is not None else
                       (mset.paths() if direction == "up" else list(reversed(mset.paths()))), direction)
    with connection.connect(params) as conn:
        return migrate.apply_plan(conn, items, options(**kwargs))


def schema_dump(params) -> str:
    """pg_dump --schema-only of the whole database, the ledger's rows aside."""
    env = {"PGPASSWORD": params["login_password"]}
    proc = subprocess.run(["pg_dump", "--schema-only", "--no-owner", "-h", params["login_host"],
                           "-p", str(params["login_port"]), "-U", params["login_user"], params["login_db"]],
                          capture_output=True, text=True, env=env, check=True)
    # \restrict and \unrestrict carry a random key per dump
    return "\n".join(line for line in proc.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def applied(params) -> list[str]:
    if query(params, "SELECT to_regclass('supabase_migrations.schema_migrations')") == [(None,)]:
        return []
    return [v for (v,) in query(params, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1")]


def test_a_dry_run_of_ten_dependent_files_passes_and_changes_nothing(empty_db, tmp_path):
    mset = chain(tmp_path, 10)
    before = schema_dump(empty_db)
    summary = run(empty_db, mset, check_mode=True)
    results = summary["results"]
    assert [r["version"] for r in results] == [f"{i:03d}" for i in range(1, 11)]
    assert all(r["changed"] and r["dry_run"] for r in results)
    # each file's spec ran inside the dry run, against what the files before it created
    assert all(r["checks_summary"] == [f"PASS  table {i} exists"] for i, r in enumerate(results, start=1))
    # each file's own change, no more and no less (one file's catalog after is the next one's before)
    for i, result in enumerate(results, start=1):
        quoted = table_name(i).replace('"', '""')  # snapshot keys are quoted as SQL writes the name
        assert result["schema_changes"]["tables"] == {"added": [f'public."{quoted}"'], "changed": [], "dropped": []}, \
            (i, result["schema_changes"])
    assert f"public.{table_name(4)}" in {lk["relation"] for lk in results[4]["locks"]}
    assert all("lock_hold_ms" in r for r in results)
    assert schema_dump(empty_db) == before


def test_each_file_commits_on_its_own_and_a_failure_stops_the_files_after_it(empty_db, tmp_path):
    mset = chain(tmp_path, 4)
    mset.add("005", "broken", "CREATE TABLE ok_then (id int);\nSELECT 1/0;\n", "DROP TABLE ok_then;\n")
    mset.add("006", "after", "CREATE TABLE never (id int);\n", "DROP TABLE never;\n")
    with pytest.raises(migrate.MigrationError) as info:
        run(empty_db, mset)
    assert "005_broken.sql:2: statement 2 failed with SQLSTATE 22012" in str(info.value)
    results = info.value.details["results"]
    assert [r["version"] for r in results] == ["001", "002", "003", "004", "005"]
    assert results[-1]["failed"] and not results[-1]["changed"] and results[-1]["error"]["line"] == 2
    assert applied(empty_db) == ["001", "002", "003", "004"]
    assert query(empty_db, "SELECT to_regclass('ok_then'), to_regclass('never')") == [(None, None)]


def test_single_transaction_applies_all_or_nothing(empty_db, tmp_path):
    mset = chain(tmp_path, 3)
    mset.add("004", "broken", "SELECT 1/0;\n", "SELECT 1;\n")
    with pytest.raises(migrate.MigrationError):
        run(empty_db, mset, single_transaction=True)
    assert applied(empty_db) == []
    (mset.migrations / "004_broken.sql").write_text("SELECT 1;\n")
    summary = run(empty_db, mset, single_transaction=True)
    assert summary["changed"] and applied(empty_db) == ["001", "002", "003", "004"]


@pytest.mark.parametrize("layout", ["updown", "supabase"])
def test_a_mixed_set_goes_forward_back_to_its_first_version_and_forward_again_identically(empty_db, tmp_path,
                                                                                          layout):
    mset = mixed(tmp_path, layout)
    run(empty_db, mset)
    forward = schema_dump(empty_db)
    assert applied(empty_db) == ["001", "002", "003", "004", "005"]
    statements = dict(query(empty_db, "SELECT version, statements FROM supabase_migrations.schema_migrations"))
    assert statements["003"] == ["-- nothing to do: kept so versions match another environment"]
    assert statements["004"][-1] == "-- a trailing comment the Supabase CLI keeps"
    assert statements["001"] == ['CREATE TABLE "Accounts" ("Id" bigint PRIMARY KEY, "E-mail" text)']

    newest_first = list(reversed(mset.paths()))[:-1]  # back to version 001
    summary = run(empty_db, mset, "down", files=newest_first)
    assert [r["version"] for r in summary["results"]] == ["005", "004", "003", "002"]
    steps = summary["results"][3]
    assert steps["transactional"] is False and steps["direction"] == "down"
    assert applied(empty_db) == ["001"]
    history = query(empty_db, "SELECT direction, checksum FROM pgrollout.history WHERE version = '002' ORDER BY id")
    up_sum = sqlfile.load(mset.paths()[1], "002", "index_email").checksum
    assert history == [("up", up_sum), ("down", up_sum)]

    run(empty_db, mset)
    assert schema_dump(empty_db) == forward


def test_a_failed_concurrent_index_is_dropped_and_the_fixed_file_resumes(empty_db, tmp_path):
    mset = mixed(tmp_path, "supabase")
    first = mset.paths()[:1]
    run(empty_db, mset, files=first)
    execute(empty_db, 'INSERT INTO "Accounts" VALUES (1, \'a@x\'), (2, \'a@x\')')
    path = mset.add("002", "index_email", '-- pgrollout: no-transaction\n'
                    'CREATE TABLE "Side Table" (id int);\n'
                    'CREATE UNIQUE INDEX CONCURRENTLY "Accounts E-mail" ON "Accounts" ("E-mail");\n',
                    'DROP INDEX CONCURRENTLY "Accounts E-mail";\nDROP TABLE "Side Table";\n')
    with pytest.raises(migrate.MigrationError) as info:
        run(empty_db, mset, files=[str(path)])
    assert "SQLSTATE 23505" in str(info.value) and "resume at statement 2" in str(info.value)
    assert query(empty_db, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('\"Accounts E-mail\"')") \
        == [(False,)]
    # fixed: the duplicate goes, and the file is edited (statement 1 unchanged, so it is not re-run)
    execute(empty_db, 'DELETE FROM "Accounts" WHERE "Id" = 2')
    path.write_text(path.read_text() + "-- fixed after the duplicate was removed\n")
    summary = run(empty_db, mset, files=[str(path)])
    result = summary["results"][0]
    assert "resumed: 1 already done" in result["msg"]
    assert result["notes"] == ['dropped the INVALID index public.Accounts E-mail left by an earlier failed build']
    assert query(empty_db, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('\"Accounts E-mail\"')") \
        == [(True,)]
    assert applied(empty_db) == ["001", "002"]


def test_a_concurrent_build_that_times_out_says_the_invalid_index_it_left(empty_db, tmp_path):
    """A snapshot older than the build outlasts lock_timeout on every try: the build fails, and the DROP of its
    INVALID leftover before the next try waits for the same session. The error says the index is still there
    (never a bare database error, never "nothing changed"); once the session goes, the same run resumes."""
    mset = mixed(tmp_path, "supabase")
    run(empty_db, mset, files=mset.paths()[:1])
    path = mset.add("002", "index_email", '-- pgrollout: no-transaction\n'
                    'CREATE INDEX CONCURRENTLY "Accounts E-mail" ON "Accounts" ("E-mail");\n',
                    'DROP INDEX CONCURRENTLY "Accounts E-mail";\n')
    with connection.connect(empty_db) as holder:
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute('SELECT count(*) FROM "Accounts"')  # a snapshot the build waits out
        opts = options(lock_timeout="300ms", retries=1)
        with connection.connect(empty_db) as conn, pytest.raises(migrate.MigrationError) as info:
            migrate.apply_plan(conn, plan.build(layout_of(mset), [str(path)], "up"), opts)
        holder.rollback()
    # what the progress line said on the last try: the statement's second attempt of two
    assert opts.now.said() == "migrate: 002_index_email.sql, statement 1 of 1, attempt 2 of 2"
    said, details = str(info.value), info.value.details
    assert "could not drop the INVALID index public.Accounts E-mail" in said and "still on the target" in said
    assert details["partial"]["invalid_indexes"] == ["public.Accounts E-mail"], details
    assert [a["outcome"] for a in details["attempts"]] == ["lock_timeout", "lock_timeout"]
    assert query(empty_db, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('\"Accounts E-mail\"')") \
        == [(False,)]
    result = run(empty_db, mset, files=[str(path)])["results"][0]
    assert result["notes"] == ['dropped the INVALID index public.Accounts E-mail left by an earlier failed build']
    assert query(empty_db, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('\"Accounts E-mail\"')") \
        == [(True,)]


def test_the_dry_run_reports_a_non_transactional_file_and_runs_the_files_after_it(empty_db, tmp_path):
    mset = mixed(tmp_path, "updown")
    summary = run(empty_db, mset, check_mode=True)
    by_version = {r["version"]: r for r in summary["results"]}
    assert by_version["002"]["dry_runnable"] is False and "not dry-runnable" in by_version["002"]["msg"]
    assert by_version["004"]["changed"] and by_version["004"]["dry_run"]
    assert applied(empty_db) == []


def test_a_failure_after_a_file_the_dry_run_could_not_run_names_it(empty_db, tmp_path):
    mset = mixed(tmp_path, "supabase")
    mset.add("006", "uses_index", 'ALTER INDEX "Accounts E-mail" RENAME TO "Accounts Email";\n', "SELECT 1;\n")
    with pytest.raises(migrate.MigrationError) as info:
        run(empty_db, mset, check_mode=True)
    assert "may be caused by" in str(info.value) and "002_index_email.sql" in str(info.value)


def test_a_dry_run_reports_a_statement_longer_than_its_timeout_as_a_long_lock(db, tmp_path):
    mset = chain(tmp_path, 1, start=3)
    mset.add("004", "slow_rewrite", "ALTER TABLE public.kb_patterns ADD COLUMN note text;\nSELECT pg_sleep(3);\n",
             "ALTER TABLE public.kb_patterns DROP COLUMN note;\n")
    mset.add("005", "after", "CREATE TABLE after_slow (id int);\n", "DROP TABLE after_slow;\n")
    summary = run(db, mset, check_mode=True, dry_run_statement_timeout="500ms")
    slow = summary["results"][1]
    assert slow["too_slow_to_dry_run"] is True
    assert "would hold AccessExclusiveLock on public.kb_patterns for more than 500ms" in slow["msg"]
    assert summary["results"][2]["changed"]


def test_a_three_second_statement_succeeds_under_the_default_timeouts(db, tmp_path):
    # statement_timeout was silently left at lock_timeout in any file locking an existing table
    mset = chain(tmp_path, 1, start=3)
    mset.add("004", "slow", "ALTER TABLE public.kb_patterns ADD COLUMN note text;\nSELECT pg_sleep(3);\n",
             "ALTER TABLE public.kb_patterns DROP COLUMN note;\n")
    summary = run(db, mset, lock_timeout="2s", statement_timeout="5min", files=[mset.paths()[1]])
    assert summary["results"][0]["changed"] and summary["results"][0]["lock_hold_ms"] >= 3000


def test_a_reader_of_the_ledger_does_not_block_a_rollout(db, tmp_path):
    # The ledger used to be ALTERed inside every migration (ACCESS EXCLUSIVE after all other locks).
    mset = chain(tmp_path, 1, start=3)
    with connection.connect(db) as conn:
        run(db, mset)  # the tool's tables exist now
        conn.execute("SELECT * FROM supabase_migrations.schema_migrations")  # a transaction stays open
        mset.add("004", "more", "CREATE TABLE more_rows (id int);\n", "DROP TABLE more_rows;\n")
        summary = run(db, mset, files=[mset.paths()[-1]], lock_timeout="1s", retries=0)
        conn.rollback()
    assert summary["results"][0]["changed"]


def test_lock_plans_resolve_quoted_names_and_skip_what_lock_table_refuses(db, tmp_path):
    execute(db, 'CREATE TABLE "Bots" (id int); CREATE TABLE bots_lower (id int); '
                'CREATE INDEX "Some Index" ON "Bots"(id); CREATE SEQUENCE "Some Seq"; '
                'CREATE MATERIALIZED VIEW "Mat View" AS SELECT 1 AS x; CREATE TABLE "with space" (id int)')
    mset = chain(tmp_path, 0)
    mset.add("003", "quoted", 'ALTER TABLE "Bots" ADD COLUMN note text;\n'
             'ALTER INDEX "Some Index" RENAME TO "Renamed Index";\n'
             'ALTER SEQUENCE "Some Seq" RENAME TO "Renamed Seq";\n'
             'CREATE INDEX mv_x ON "Mat View"(x);\n'
             'ALTER TABLE "with space" ADD COLUMN y int;\n', "SELECT 1;\n")
    # a session reading public.bots_lower must not block a change of "Bots"
    with Blocker(db, "public.bots_lower"):
        summary = run(db, mset, lock_timeout="1s", retries=0)
    locked = {lk["relation"] for lk in summary["results"][0]["locks"]}
    assert {"public.Bots", "public.with space"} <= locked and "public.bots_lower" not in locked


def test_the_plan_is_read_whole_before_anything_runs(empty_db, tmp_path):
    mset = chain(tmp_path, 2)
    (mset.verification / "002_chain_2.yml").write_text("chekcs: []\n")
    with pytest.raises(plan.PlanError, match="unknown top-level key"):
        plan.build(layout_of(mset), mset.paths())
    (mset.verification / "002_chain_2.yml").write_text("")
    with pytest.raises(plan.PlanError, match="the spec is empty"):
        plan.build(layout_of(mset), mset.paths())
    (mset.verification / "002_chain_2.yml").write_text("checks: []\n")
    with pytest.raises(plan.PlanError, match="non-empty list of checks"):
        plan.build(layout_of(mset), mset.paths())
    (mset.rollbacks / "001_chain_1_rollback.sql").unlink()
    with pytest.raises(plan.PlanError, match="001_chain_1 has no rollback file"):
        plan.build(layout_of(mset), list(reversed(mset.paths())), "down")
    assert applied(empty_db) == []


def test_a_connection_lost_mid_run_is_a_clear_error(db, tmp_path):
    mset = chain(tmp_path, 1, start=3)
    mset.add("004", "sleepy", "CREATE TABLE sleepy (id int);\nSELECT pg_sleep(30);\n", "DROP TABLE sleepy;\n")
    errors = []

    def apply() -> None:
        try:
            run(db, mset, files=[mset.paths()[-1]])
        except Exception as exc:  # noqa: BLE001 - what the module would turn into fail_json
            errors.append(exc)

    worker = threading.Thread(target=apply)
    worker.start()
    sessions = []
    while not sessions:
        sessions = query(db, "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' "
                             "AND application_name = 'pgrollout'")
    execute(db, f"SELECT pg_terminate_backend({sessions[0][0]})")
    worker.join(60)
    assert errors and isinstance(errors[0], migrate.MigrationError)
    assert "004_sleepy.sql:2: lost the connection to the server while statement 2 ran" in str(errors[0])
    assert "SQLSTATE 57P01" in str(errors[0])
    assert query(db, "SELECT to_regclass('sleepy')") == [(None,)]


def test_quoted_names_in_chains_survive_the_ledger_and_the_history(empty_db, tmp_path):
    mset = chain(tmp_path, 2)
    run(empty_db, mset)
    assert query(empty_db, f"SELECT count(*) FROM {ident(table_name(2))}") == [(0,)]
