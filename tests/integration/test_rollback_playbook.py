"""ansible-playbook rollback.yml: the script, else the restore of the pre-migration backup."""
from __future__ import annotations

import json
import shutil

from conftest import REPO, query
from pgrollout import connection, schema

GAP = "security gap: kb_* tables readable without RLS"
AUDIT_RLS = "audit: every table in the exposed schemas has RLS enabled"


def snapshot(params):
    with connection.connect(params) as conn, conn.cursor() as cur:
        return schema.snapshot(cur)


def rolled_out(playbook):
    proc = playbook.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert query(playbook.params, "SELECT to_regclass('public.bots')::text") == [("bots",)]


def rolled_out_and_back(playbook, db):
    """Roll 003 out, then back with rollback.yml; the schema and ledger must be as before."""
    before = snapshot(db)
    rolled_out(playbook)
    proc = playbook.run("rollback.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert snapshot(db) == before
    assert query(db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [("001",), ("002",)]
    return proc


def test_a_rollback_returns_the_pre_migration_state_and_reports_the_reopened_gap(playbook, db):
    proc = rolled_out_and_back(playbook, db)
    assert f"WARN  {GAP}" in proc.stdout and f"WARN  {AUDIT_RLS}" in proc.stdout
    rollout, rollback = playbook.evidence()
    assert rollback["kind"] == "rollback" and rollback["outcome"] == "succeeded"
    assert rollback["rollback"] == {"path_taken": "script", "script_failure": None}
    assert rollback["migrations"][0]["direction"] == "down" and rollback["migrations"][0]["changed"]
    assert "pre_rollback_003" in rollback["backup"]["path"]
    assert rollback["rollback_verification"]["spec"].endswith("003_bot_registration_sharing_rollback.yml")
    assert {r["name"] for r in rollback["audit"]["results"] if r["status"] != "passed"} == {AUDIT_RLS}


def broken_rollback_script(playbook, tmp_path):
    rollbacks = tmp_path / "rollbacks"
    shutil.copytree(REPO / "supabase" / "rollbacks", rollbacks)
    script = rollbacks / "003_bot_registration_sharing_rollback.sql"
    script.write_text(script.read_text() + "\nSELECT 1 / 0;\n")
    playbook.set(pgrollout_rollbacks_dir=str(rollbacks))


def test_a_broken_rollback_script_in_staging_leaves_the_migration_applied_and_says_how_to_restore(playbook, db,
                                                                                                  tmp_path):
    rolled_out(playbook)
    broken_rollback_script(playbook, tmp_path)
    playbook.set(pgrollout_auto_restore=False)  # as in staging and prod
    proc = playbook.run("rollback.yml")
    assert proc.returncode != 0
    assert "The rollback failed and nothing was restored" in proc.stdout and "division by zero" in proc.stdout
    assert "left its migration applied" in proc.stdout and "-e pgrollout_restore_archive=" in proc.stdout
    assert "pgrollout_confirm_restore=" in proc.stdout
    assert query(db, "SELECT to_regclass('public.bots')::text") == [("bots",)]
    assert query(db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1")[-1] == ("003",)
    record = playbook.evidence()[-1]
    # the failed script's transaction rolled back: the target is as before this run
    assert record["outcome"] == "failed_rolled_back" and record["rollback"]["path_taken"] is None
    assert record["restore"] is None


def test_in_dev_a_broken_rollback_script_restores_this_runs_backup_and_still_fails(playbook, db, tmp_path):
    rolled_out(playbook)
    broken_rollback_script(playbook, tmp_path)
    before = snapshot(db)
    proc = playbook.run("rollback.yml")
    assert proc.returncode != 0
    assert "pgrollout_auto_restore restored this run's backup" in proc.stdout
    assert snapshot(db) == before  # the state before this run: 003 still applied, nothing lost
    record = playbook.evidence()[-1]
    assert record["rollback"]["path_taken"] == "restore" and record["restore"]["sha256"] == record["backup"]["sha256"]
    assert record["restore"]["discard_report"]["writes_since_backup"] is False


def test_a_missing_rollback_file_or_required_spec_is_refused_before_anything_changes(playbook, db, tmp_path):
    rolled_out(playbook)
    rollbacks = tmp_path / "rollbacks"
    rollbacks.mkdir()
    playbook.set(pgrollout_rollbacks_dir=str(rollbacks))
    before = snapshot(db)
    for args in ((), ("--check",)):
        proc = playbook.run("rollback.yml", *args)
        assert proc.returncode != 0 and "003_bot_registration_sharing has no rollback file" in proc.stdout
    assert snapshot(db) == before and not (playbook.workdir / "backups" / "x").exists()
    assert len(list((playbook.workdir / "backups").glob("*pre_rollback*"))) == 0
    specs = tmp_path / "verification"
    shutil.copytree(REPO / "verification", specs)
    (specs / "003_bot_registration_sharing_rollback.yml").unlink()
    playbook.set(pgrollout_rollbacks_dir=str(REPO / "supabase" / "rollbacks"), pgrollout_verification_dir=str(specs),
                 pgrollout_require_verification=True)
    proc = playbook.run("rollback.yml")
    assert proc.returncode != 0 and "the rollback of 003_bot_registration_sharing has no verification spec" \
        in proc.stdout
    assert snapshot(db) == before


def test_production_needs_confirmation_and_the_gap_acknowledged(playbook, db):
    playbook.set(pgrollout_require_rollback_confirmation=True, pgrollout_require_warning_ack=True)
    rolled_out(playbook)
    refused = playbook.run("rollback.yml")
    assert refused.returncode != 0 and "-e pgrollout_confirm_rollback=003" in refused.stdout
    assert query(db, "SELECT to_regclass('public.bots')::text") == [("bots",)]
    confirmed = playbook.run("rollback.yml", "-e", json.dumps({
        "pgrollout_confirm_rollback": "003", "pgrollout_acknowledged_warnings": [GAP, AUDIT_RLS]}))
    assert confirmed.returncode == 0, confirmed.stdout[-3000:]
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]
    assert playbook.evidence()[-1]["acknowledged_warnings"] == [GAP, AUDIT_RLS]


def test_check_mode_dry_runs_the_rollback_and_changes_nothing(playbook, db):
    rolled_out(playbook)
    before = snapshot(db)
    proc = playbook.run("rollback.yml", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert snapshot(db) == before
    (task,) = playbook.task_results(proc, "Apply the run's files")
    (result,) = task["results"]
    assert result["dry_run"] and result["changed"] and result["direction"] == "down"
    assert {"relation": "public.bots", "mode": "AccessExclusiveLock"} in result["locks"]
    assert playbook.evidence()[-1]["outcome"] == "dry_run"
