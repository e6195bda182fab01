"""Migration 003 and its rollback against a real PostgreSQL server."""
from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest
import yaml

from conftest import MIGRATION_003, REPO, ROLLBACK_003, query
from pgrollout import checks, connection, migrate, schema, sqlfile
from plan import verification_queries

SPEC_003 = REPO / "verification" / "003_bot_registration_sharing.yml"
SPEC_ROLLBACK = REPO / "verification" / "003_bot_registration_sharing_rollback.yml"
KB = ["kb_correlations", "kb_lessons_learned", "kb_macro_events", "kb_market_regimes", "kb_patterns"]
NEW = ["bot_api_keys", "bots", "validation_run_shares", "validation_runs"]


def apply(params, path=MIGRATION_003, checks=None, **kwargs):
    with connection.connect(params) as conn:
        return migrate.apply(conn, sqlfile.load(str(path)), migrate.Options(**kwargs), checks=checks)


def rollback(params):
    with connection.connect(params) as conn:
        return migrate.apply(conn, sqlfile.load(str(ROLLBACK_003)), direction="down",
                             forward_checksum=sqlfile.load(str(MIGRATION_003)).checksum)


def spec(path):
    return checks.validate(yaml.safe_load(path.read_text())["checks"])


def run_spec(params, path):
    with connection.connect(params) as conn:
        return {r["name"]: r for r in checks.run(conn, spec(path))}


def snapshot(params):
    with connection.connect(params) as conn, conn.cursor() as cur:
        return schema.snapshot(cur)


def schema_dump(params) -> str:
    """pg_dump --schema-only of everything but the ledger, as text (without the per-dump random
    \\restrict key that pg_dump 15.14+ writes)."""
    with connection.client_environment(params) as env:
        out = subprocess.run(["pg_dump", "--schema-only", "--exclude-schema=supabase_migrations",
                              "--exclude-schema=pgrollout"], env=env, capture_output=True,
                             text=True, check=True).stdout
    return "\n".join(ln for ln in out.splitlines() if not ln.startswith(("\\restrict", "\\unrestrict")))


def test_spec_holds_the_plans_six_queries_verbatim():
    plan = verification_queries()
    assert len(plan) == 6
    spec_sql = [c["sql"].strip() for c in yaml.safe_load(SPEC_003.read_text())["checks"]]
    assert spec_sql[:6] == plan


def test_plan_queries_return_the_plans_expected_results(db):
    apply(db)
    tables, rls, policies, indexes, check_constraints, fks = (query(db, q) for q in verification_queries())
    assert [t for (t,) in tables] == sorted(NEW)
    assert len(rls) == 9 and all(on for _, on in rls)
    per_table = {}
    for table, _, _ in policies:
        per_table[table] = per_table.get(table, 0) + 1
    assert per_table == {"bots": 2, "bot_api_keys": 1, "validation_runs": 2, "validation_run_shares": 2,
                         **{t: 4 for t in KB}}
    assert len(policies) == 27
    assert {t for t, _ in indexes} == set(NEW)
    assert {str(t) for _, t in check_constraints} == {"bots", "validation_runs", "validation_run_shares"}
    assert {str(t) for _, t, _ in fks} == {"bot_api_keys", "validation_runs", "validation_run_shares"}
    results = run_spec(db, SPEC_003)
    assert len(results) > 6 and [r["status"] for r in results.values()] == ["passed"] * len(results)


def test_spec_fails_before_003_naming_each_check(db):
    results = run_spec(db, SPEC_003)
    assert [r["status"] for r in list(results.values())[:6]] == ["failed"] * 6
    assert {n for n, r in results.items() if r["status"] == "passed"} == set()
    assert results["1. new tables exist"]["actual"] == []
    assert "relation \"public.bots\" does not exist" in results["RLS: anon sees no row of the nine tables"]["error"]


def test_apply_records_the_ledger_like_the_supabase_cli_and_is_idempotent(db):
    first = apply(db, run_id="r1")
    assert first["changed"] and first["statements"] > 40
    rows = query(db, "SELECT version, name, array_length(statements, 1) FROM "
                     "supabase_migrations.schema_migrations ORDER BY version")
    assert rows == [("001", "initial_schema", 4), ("002", "knowledge_base", 10),
                    ("003", "bot_registration_sharing", first["statements"])]
    (checksum,) = query(db, "SELECT checksum FROM pgrollout.migrations WHERE version = '003'")[0]
    assert checksum == sqlfile.load(str(MIGRATION_003)).checksum
    second = apply(db)
    assert not second["changed"] and "already applied" in second["msg"]


def test_rollback_restores_the_exact_pre_003_schema(db):
    before = schema_dump(db)
    apply(db)
    assert schema_dump(db) != before
    result = rollback(db)
    assert result["changed"]
    assert schema_dump(db) == before
    assert query(db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [
        ("001",), ("002",)]
    assert query(db, "SELECT direction FROM pgrollout.history WHERE version = '003' ORDER BY id") == [
        ("up",), ("down",)]
    results = run_spec(db, SPEC_ROLLBACK)
    assert results["rollback 2. new tables dropped"]["status"] == "passed"
    assert results["rollback 3. kb_* RLS back to the pre-003 state (off)"]["status"] == "passed"
    gap = results["security gap: kb_* tables readable without RLS"]
    assert gap["status"] == "failed" and gap["severity"] == "warn" and gap["actual"] == 5
    assert checks.failures(list(results.values())) == []


def test_rollback_and_reapply_rehearsal(db):
    apply(db)
    rollback(db)
    assert not rollback(db)["changed"]
    apply(db)
    assert all(r["status"] == "passed" for r in run_spec(db, SPEC_003).values())


def test_error_in_last_statement_leaves_nothing_applied_and_names_file_and_line(db, tmp_path):
    broken = tmp_path / "004_broken.sql"
    text = MIGRATION_003.read_text() + "\nCREATE TABLE public.oops (\n  id int,\n  x nosuchtype\n);\n"
    broken.write_text(text)
    line = text.count("\n", 0, text.index("x nosuchtype")) + 1
    before = snapshot(db)
    with pytest.raises(migrate.MigrationError) as info:
        apply(db, broken)
    message = str(info.value)
    assert f"{broken}:{line}:" in message and "SQLSTATE 42704" in message and "nosuchtype" in message
    assert info.value.details["statement_number"] == len(sqlfile.load(str(broken)).statements)
    assert snapshot(db) == before
    assert query(db, "SELECT count(*) FROM supabase_migrations.schema_migrations WHERE version = '004'") == [(0,)]


def test_check_mode_runs_the_migration_and_leaves_the_schema_unchanged(db):
    before, dump_before = snapshot(db), schema_dump(db)
    result = apply(db, check_mode=True, checks=spec(SPEC_003))
    assert result["changed"] and result["dry_run"]
    locks = {lk["relation"]: lk["mode"] for lk in result["locks"]}
    for table in KB + NEW:
        assert locks[f"public.{table}"] == "AccessExclusiveLock"
    assert locks["auth.users"] == "ShareRowExclusiveLock"
    assert "public.bots.bots_select_own" in result["schema_changes"]["policies"]["added"]
    assert [line.split()[0] for line in result["checks_summary"]] == ["PASS"] * len(spec(SPEC_003))
    assert snapshot(db) == before and schema_dump(db) == dump_before
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]


def test_failing_in_transaction_check_rolls_the_migration_back(db):
    failing = checks.validate([{"name": "impossible", "sql": "SELECT 1", "expect": {"count": 2}}])
    with pytest.raises(migrate.MigrationError, match="impossible"):
        apply(db, checks=failing)
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]


def test_an_edited_applied_file_is_refused_with_both_checksums(db, tmp_path):
    apply(db)
    edited = tmp_path / MIGRATION_003.name
    edited.write_text(MIGRATION_003.read_text().replace("BETWEEN 1 AND 100", "BETWEEN 1 AND 200"))
    with pytest.raises(migrate.MigrationError, match="must not be edited") as info:
        apply(db, edited)
    assert info.value.details["applied_checksum"] != info.value.details["file_checksum"]
    crlf = tmp_path / "crlf" / MIGRATION_003.name
    crlf.parent.mkdir()
    crlf.write_bytes(MIGRATION_003.read_bytes().replace(b"\n", b"\r\n"))
    assert not apply(db, crlf)["changed"]


def test_non_transactional_statement_is_refused_before_anything_runs(db, tmp_path):
    path = tmp_path / "004_index.sql"
    path.write_text("CREATE TABLE public.t4 (x int);\nCREATE INDEX CONCURRENTLY t4_x ON public.t4 (x);\n")
    with pytest.raises(migrate.MigrationError, match=r"004_index.sql:2: statement 2 \(IndexStmt\) cannot run"):
        apply(db, path)
    assert query(db, "SELECT to_regclass('public.t4')") == [(None,)]


def test_a_second_concurrent_rollout_is_refused_naming_the_holder(db):
    holder_ready, release = threading.Event(), threading.Event()

    def hold_lock():
        with connection.connect(db) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrate.ledger.ADVISORY_LOCK_KEY,))
            holder_ready.set()
            release.wait(30)

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert holder_ready.wait(10)
        with pytest.raises(migrate.MigrationError,
                           match=r"another pgrollout session is committing .*application 'pgrollout'"):
            apply(db)
    finally:
        release.set()
        thread.join()
    assert apply(db)["changed"]


def test_rls_after_003_anon_sees_nothing_and_shares_do_not_recurse(db):
    apply(db)
    alice, bob = "00000000-0000-4000-8000-00000000a11c", "00000000-0000-4000-8000-000000000b0b"
    with connection.connect(db) as conn:
        bot = conn.execute("INSERT INTO bots (owner_id, name) VALUES (%s, 'b') RETURNING id", (alice,)).fetchone()[0]
        run = conn.execute("INSERT INTO validation_runs (bot_id, owner_id) VALUES (%s, %s) RETURNING id",
                           (bot, alice)).fetchone()[0]
        conn.execute("INSERT INTO validation_run_shares (run_id, shared_with) VALUES (%s, %s)", (run, bob))
        conn.execute("SET LOCAL ROLE anon")
        for table in KB + NEW:
            assert conn.execute(f"SELECT count(*) FROM public.{table}").fetchone() == (0,)
        conn.execute("RESET ROLE")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (f'{{"sub": "{bob}"}}',))
        conn.execute("SET LOCAL ROLE authenticated")
        assert conn.execute("SELECT id FROM validation_runs").fetchall() == [(run,)]
        assert conn.execute("SELECT count(*) FROM bots").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM kb_patterns").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO kb_patterns (name, pattern_type, created_by) VALUES ('x', 'y', %s)", (alice,))
        conn.rollback()


def test_api_keys_must_be_stored_as_hashes(db):
    apply(db)
    alice = "00000000-0000-4000-8000-00000000a11c"
    with connection.connect(db) as conn:
        bot = conn.execute("INSERT INTO bots (owner_id, name) VALUES (%s, 'b') RETURNING id", (alice,)).fetchone()[0]
        with pytest.raises(psycopg.errors.CheckViolation, match="bot_api_keys_key_hash_is_sha256"):
            conn.execute("INSERT INTO bot_api_keys (bot_id, key_prefix, key_hash) VALUES (%s, 'pk_1', 'sk_live_plain')",
                         (bot,))
        conn.rollback()


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql not installed")
def test_plan_block_pasted_into_psql_prints_the_expected_counts(db, tmp_path):
    from plan import verification_block

    apply(db)
    script = tmp_path / "plan.sql"
    script.write_text(verification_block())
    with connection.client_environment(db) as env:
        out = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", str(script)], env=env,
                             capture_output=True, text=True, check=True).stdout
    counts = [int(n) for n in __import__("re").findall(r"^\((\d+) rows?\)$", out, flags=8)]
    assert counts == [4, 9, 27, 11, 6, 5]
    assert " | f\n" not in out  # no table with rowsecurity false
    assert Path(script).read_text().count("SELECT") == 6
