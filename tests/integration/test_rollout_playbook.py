"""ansible-playbook rollout.yml against a real database, as the dev environment."""
from __future__ import annotations

import shutil

import yaml

from conftest import MIGRATION_003, REPO, query
from pgrollout import connection, schema

VERIFY_TASK = "Run the newest changed file's spec and the earlier files' lasting checks, then the security audit"
SPEC_003 = yaml.safe_load((REPO / "verification" / "003_bot_registration_sharing.yml").read_text())
LASTING_CHECKS = sum(1 for c in SPEC_003["checks"] if c.get("lasting"))
SPEC_CHECKS = len(yaml.safe_load((REPO / "verification" / "003_bot_registration_sharing.yml").read_text())["checks"])


def snapshot(params):
    with connection.connect(params) as conn, conn.cursor() as cur:
        return schema.snapshot(cur)


def test_rollout_applies_verifies_records_and_a_second_run_changes_nothing(playbook, db):
    first = playbook.run()
    assert first.returncode == 0, first.stdout[-3000:]
    assert playbook.stats(first)["changed"] >= 2  # backup and migration
    # the verify step's checks ran in pg_migrate's call, right after its commit: no pg_assert process
    assert playbook.task_results(first, VERIFY_TASK) == []
    (migrated,) = playbook.task_results(first, "Apply the run's files")
    verify = migrated["verification"]
    assert [r["status"] for r in verify["specs_result"]["results"]] == ["passed"] * SPEC_CHECKS
    assert verify["audit_result"]["failed"] is False and not verify["failed"]
    (record,) = playbook.evidence()
    assert record["outcome"] == "succeeded" and record["environment"] == "dev"
    assert [m["version"] for m in record["migrations"]] == ["003"]
    assert record["migrations"][0]["checksum"] and record["migrations"][0]["locks"]
    assert len(record["backup"]["sha256"]) == 64
    assert record["verification"]["passed"] == SPEC_CHECKS and record["audit"]["failed"] == 0
    assert record["target"]["applied_before"] == ["001", "002"]
    assert query(db, "SELECT count(*) FROM supabase_migrations.schema_migrations")[0][0] == 3

    second = playbook.run()
    assert second.returncode == 0, second.stdout[-3000:]
    assert playbook.stats(second)["changed"] == 0
    # nothing changed: no spec to run again, the audit still runs (in the preflight's call)
    assert playbook.task_results(second, VERIFY_TASK) == []
    (facts,) = playbook.task_results(second, "Read the target's state")
    assert facts["facts"]["audit"]["not_passed"] == 0 and facts["facts"]["audit"]["passed"] == 2
    assert [r["outcome"] for r in playbook.evidence()] == ["succeeded", "no_change"]
    assert playbook.evidence()[-1]["audit"]["passed"] == 2


def test_check_mode_dry_run_changes_nothing_and_records_a_dry_run(playbook, db):
    before = snapshot(db)
    proc = playbook.run("rollout.yml", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert snapshot(db) == before
    (task,) = playbook.task_results(proc, "Apply the run's files")
    (item,) = task["results"]
    assert item["dry_run"] and item["changed"] and item["lock_hold_ms"] >= 0
    assert item["checks_summary"][0].startswith("PASS")
    (diff,) = task["diff"]
    assert {"relation": "public.kb_patterns", "mode": "AccessExclusiveLock"} in item["locks"]
    assert "table public.kb_patterns: rls off" in diff["before"]
    assert "table public.kb_patterns: rls on" in diff["after"]
    assert "policy public.bots.bots_select_own" in diff["after"]
    assert not (playbook.workdir / "backups").exists()
    (record,) = playbook.evidence()
    assert record["outcome"] == "dry_run" and record["dry_run"]


def broken_004(playbook, tmp_path):
    """Migrations 001-003 plus a 004 whose last statement fails, with a spec for 004."""
    migrations, specs = tmp_path / "migrations", tmp_path / "verification"
    shutil.copytree(REPO / "supabase" / "migrations", migrations)
    shutil.copytree(REPO / "verification", specs)
    (migrations / "004_broken.sql").write_text(
        "CREATE TABLE public.t4 (id int);\nALTER TABLE public.t4\n  ADD COLUMN y nosuchtype;\n")
    (specs / "004_broken.yml").write_text(yaml.safe_dump(
        {"checks": [{"name": "t4 exists", "sql": "SELECT to_regclass('public.t4')::text",
                     "expect": {"rows": [["t4"]]}}]}))
    playbook.set(pgrollout_migrations_dir=str(migrations), pgrollout_verification_dir=str(specs))
    return migrations


def test_a_failing_migration_rolls_back_what_the_run_applied_and_is_recorded(playbook, db, tmp_path):
    before = snapshot(db)
    migrations = broken_004(playbook, tmp_path)
    proc = playbook.run()
    assert proc.returncode != 0
    assert "Rolled back automatically (script); the database is at its state before this run" in proc.stdout
    assert snapshot(db) == before  # 003, applied by this run, was rolled back
    assert query(db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [("001",), ("002",)]
    assert query(db, "SELECT to_regclass('public.t4')") == [(None,)]
    (record,) = playbook.evidence()
    assert record["outcome"] == "failed_rolled_back"
    assert record["failure"]["task"] == "Apply the run's files"
    failed = [m for m in record["migrations"] if m.get("error")]
    assert failed and failed[0]["error"]["line"] == 3 and failed[0]["error"]["sqlstate"] == "42704"
    assert f"{migrations}/004_broken.sql:3:" in failed[0]["msg"]
    assert [(m["version"], m["direction"]) for m in record["migrations"] if m.get("changed")] == [
        ("003", "up"), ("003", "down")]
    assert record["rollback"]["path_taken"] == "script"
    assert [t["step"] for t in record["timings"]] == ["start", "preflight", "backup", "migrate", "rollback",
                                                      "rollback_verify"]
    assert record["migrations"][0]["lock_hold_ms"] >= 0


def test_without_automatic_rollback_the_applied_migrations_stay_and_the_play_says_so(playbook, db, tmp_path):
    broken_004(playbook, tmp_path)
    playbook.set(pgrollout_auto_rollback=False)
    proc = playbook.run()
    assert proc.returncode != 0 and "This run applied 003 and did NOT roll back" in proc.stdout
    assert query(db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [
        ("001",), ("002",), ("003",)]


def test_a_failed_migration_stops_the_files_after_it(playbook, db, tmp_path):
    migrations = broken_004(playbook, tmp_path)
    (migrations / "005_after.sql").write_text("CREATE TABLE public.t5 (id int);\n")
    (tmp_path / "verification" / "005_after.yml").write_text(
        "checks:\n  - {name: t5, sql: SELECT to_regclass('public.t5'), expect: {count: 1}}\n")
    proc = playbook.run()
    assert proc.returncode != 0
    assert query(db, "SELECT to_regclass('public.t5')") == [(None,)]
    assert [m["version"] for m in playbook.evidence()[0]["migrations"] if m.get("direction") == "up"] == [
        "003", "004"]


def test_the_password_never_reaches_output_or_evidence(playbook, db):
    password = db["login_password"]
    proc = playbook.run("rollout.yml", "-vvv")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert password not in proc.stdout and password not in proc.stderr
    files = list(playbook.evidence_dir.iterdir()) + list((playbook.workdir / "backups").glob("*.json"))
    assert any(f.suffix == ".md" for f in files) and any(f.name.endswith(".manifest.json") for f in files)
    for path in files:
        assert password not in path.read_text(), path


def test_a_migration_without_a_verification_spec_is_refused_before_any_change(playbook, db, tmp_path):
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "supabase" / "migrations", migrations)
    (migrations / "004_unverified.sql").write_text("CREATE TABLE public.t4 (id int);\n")
    playbook.set(pgrollout_migrations_dir=str(migrations), pgrollout_require_verification=True)
    before = snapshot(db)
    proc = playbook.run()
    assert proc.returncode != 0
    assert "004_unverified has no verification spec" in proc.stdout and "Write it" in proc.stdout
    assert snapshot(db) == before
    assert MIGRATION_003.exists()


def test_where_verification_is_not_required_an_unverified_migration_is_audited_and_recorded(playbook, db, tmp_path):
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "supabase" / "migrations", migrations)
    (migrations / "004_unverified.sql").write_text("CREATE TABLE public.t4 (id int);\n"
                                                   "ALTER TABLE public.t4 ENABLE ROW LEVEL SECURITY;\n")
    playbook.set(pgrollout_migrations_dir=str(migrations))  # dev: pgrollout_require_verification is false
    proc = playbook.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    (record,) = playbook.evidence()
    # 003's spec ran in full in its transaction; after the commit its lasting checks only, as 004
    # (the newest) has no spec
    assert record["unverified"] == ["004"] and record["verification"]["passed"] == LASTING_CHECKS
    assert len(record["migrations"][0]["checks_summary"]) >= SPEC_CHECKS
    assert record["audit"]["failed"] == 0
