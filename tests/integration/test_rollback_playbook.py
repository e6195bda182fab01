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
    assert rollback["verification"]["spec"].endswith("003_bot_registration_sharing_rollback.yml")
    assert {r["name"] for r in rollback["audit"]["results"] if r["status"] != "passed"} == {AUDIT_RLS}


def test_a_failing_rollback_script_ends_in_the_restore_of_the_pre_migration_backup(playbook, db, tmp_path):
    rollbacks = tmp_path / "rollbacks"
    shutil.copytree(REPO / "supabase" / "rollbacks", rollbacks)
    script = rollbacks / "003_bot_registration_sharing_rollback.sql"
    script.write_text(script.read_text() + "\nSELECT 1 / 0;\n")
    playbook.set(pgrollout_rollbacks_dir=str(rollbacks))
    rolled_out_and_back(playbook, db)
    rollout, rollback = playbook.evidence()
    assert rollback["rollback"]["path_taken"] == "restore"
    assert "division by zero" in rollback["rollback"]["script_failure"]
    assert rollback["restore"]["sha256"] == rollout["backup"]["sha256"]
    assert 'DROP TABLE IF EXISTS "public"."bots" CASCADE;' in rollback["restore"]["drop_first"]
    assert rollback["verification"]["failed"] == 1  # the gap, a warning


def test_without_a_backup_a_failed_rollback_script_fails_the_play_and_changes_nothing(playbook, db, tmp_path):
    rolled_out(playbook)
    for path in playbook.evidence_dir.iterdir():
        path.unlink()  # the rollout's record, and with it the backup's path, is gone
    rollbacks = tmp_path / "rollbacks"
    rollbacks.mkdir()
    playbook.set(pgrollout_rollbacks_dir=str(rollbacks))  # and no rollback script
    before = snapshot(db)
    proc = playbook.run("rollback.yml")
    assert proc.returncode != 0 and "no pre-migration backup is known" in proc.stdout
    assert snapshot(db) == before
    (record,) = playbook.evidence()
    assert record["outcome"] == "failed" and "No rollback script" in record["rollback"]["script_failure"]


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
    (result,) = playbook.task_results(proc, "Apply the rollback script")
    assert result["dry_run"] and result["changed"]
    assert {"relation": "public.bots", "mode": "AccessExclusiveLock"} in result["locks"]
    assert playbook.evidence()[-1]["outcome"] == "dry_run"
