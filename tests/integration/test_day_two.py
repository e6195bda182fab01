"""Day two: status, the next migration scaffolded with generated specs, adopting an existing database."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import jsonschema
import yaml

from conftest import REPO, execute, query, set_playbook
from migsets import MigrationSet
from pgrollout import connection, plan, specgen
from pgrollout.checks import load_spec
from pgrollout.checks import run as run_checks


def repo_copy(playbook, tmp_path) -> MigrationSet:
    """The repository's migrations, rollbacks and specs in folders of the test's own."""
    mset = MigrationSet(tmp_path / "set")
    for source, target in (("supabase/migrations", mset.migrations), ("supabase/rollbacks", mset.rollbacks),
                           ("verification", mset.verification)):
        shutil.copytree(REPO / source, target, dirs_exist_ok=True)
    playbook.set(**{k: v for k, v in mset.host_vars().items() if k != "pgrollout_migration_layout"})
    return mset


def scaffold(mset: MigrationSet, name: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "new_migration.py"), name,
                           "--migrations-dir", str(mset.migrations), "--rollbacks-dir", str(mset.rollbacks),
                           "--verification-dir", str(mset.verification)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def status_of(playbook, *args):
    proc = playbook.run("status.yml", *args)
    document = json.loads((playbook.evidence_dir / "status.json").read_text())
    return proc, document


def test_status_reports_applied_pending_drifted_and_missing_and_its_json_follows_the_schema(playbook, db, tmp_path):
    mset = repo_copy(playbook, tmp_path)
    assert playbook.run().returncode == 0
    (mset.migrations / "002_knowledge_base.sql").write_text(
        (mset.migrations / "002_knowledge_base.sql").read_text() + "-- edited after it was applied\n")
    mset.add("004", "pending_one", "CREATE TABLE public.p4 (id int);\n", "DROP TABLE public.p4;\n")
    (mset.migrations / "001_initial_schema.sql").unlink()
    proc, document = status_of(playbook)
    assert proc.returncode == 0, proc.stdout[-3000:]
    jsonschema.validate(document, json.loads((REPO / "docs" / "status.schema.json").read_text()))
    target = document["targets"]["test-target"]
    assert target["pending"] == ["004"] and target["missing_files"] == ["001"]
    assert target["drifted"] == ["002_knowledge_base.sql"]
    by_version = {a["version"]: a for a in target["applied"]}
    assert by_version["002"]["checksum_matches"] is False and by_version["003"]["checksum_matches"] is True
    assert by_version["003"]["verified"] and by_version["003"]["applied_by"] == "postgres"
    assert target["last_run"]["outcome"] == "succeeded" and target["lease"] is None
    said = " ".join(proc.stdout.split())
    assert "pending: 004" in said and "CHECKSUM DIFFERS" in said
    gate = playbook.run("status.yml", "-e", "pgrollout_status_fail_on_pending=true")
    assert gate.returncode != 0 and "has pending migrations: 004" in " ".join(gate.stdout.split())


def test_a_scaffolded_migration_with_generated_specs_rolls_out_rehearses_and_rolls_back(playbook, db, tmp_path):
    mset = repo_copy(playbook, tmp_path)
    assert playbook.run().returncode == 0  # 003 applied
    said = scaffold(mset, "add_bot_notes")
    assert "004_add_bot_notes.sql" in said
    up = mset.migrations / "004_add_bot_notes.sql"
    assert up.read_text().startswith("-- 004_add_bot_notes: add bot notes")
    # the empty spec skeleton is refused before anything runs
    refused = playbook.run()
    assert refused.returncode != 0 and "non-empty list of checks" in refused.stdout
    up.write_text(up.read_text() + "CREATE TABLE public.\"Bot Notes\" (id bigint PRIMARY KEY, "
                  "bot_id uuid NOT NULL REFERENCES public.bots(id) ON DELETE CASCADE, body text NOT NULL);\n"
                  "ALTER TABLE public.\"Bot Notes\" ENABLE ROW LEVEL SECURITY;\n"
                  "CREATE POLICY \"notes of my bots\" ON public.\"Bot Notes\" FOR SELECT TO authenticated\n"
                  "  USING (bot_id IN (SELECT id FROM public.bots WHERE owner_id = (select auth.uid())));\n"
                  "CREATE INDEX bot_notes_bot ON public.\"Bot Notes\" (bot_id);\n"
                  "ALTER TABLE public.bots ADD COLUMN note_count int NOT NULL DEFAULT 0;\n")
    down = mset.rollbacks / "004_add_bot_notes_rollback.sql"
    down.write_text(down.read_text() + "ALTER TABLE public.bots DROP COLUMN note_count;\n"
                    "DROP TABLE public.\"Bot Notes\";\n")
    proc = playbook.run("spec.yml", "-e", "pgrollout_spec_version=004")
    assert proc.returncode == 0, proc.stdout[-3000:]
    spec = load_spec(str(mset.verification / "004_add_bot_notes.yml"))
    names = {c["name"]: c for c in spec}
    leaves = "as 004_add_bot_notes leaves it"
    assert names[f'table public."Bot Notes" {leaves}']["expect"] == {"rows": [["rls on"]]}
    assert names[f'policy public."Bot Notes"."notes of my bots" {leaves}']["expect"]["rows"][0][0].startswith(
        "permissive select to authenticated using ((bot_id IN")
    assert names[f"column public.bots.note_count {leaves}"]["expect"] == {"rows": [["integer not null default 0"]]}
    keys = [c["expect"]["rows"][0][0] for n, c in names.items()
            if n.startswith('constraint public."Bot Notes".') and "rows" in c["expect"]]
    assert any(k.startswith("FOREIGN KEY (bot_id)") and k.endswith("ON DELETE CASCADE") for k in keys), keys
    layout = plan.Layout(str(mset.migrations), str(mset.rollbacks), str(mset.verification))
    # the generated checks fail on the unmigrated database...
    with connection.connect(db) as conn:
        results = run_checks(conn, spec)
    assert all(r["status"] != "passed" for r in results)
    # ...and are not overwritten once they hold checks
    again = playbook.run("spec.yml", "-e", "pgrollout_spec_version=004")
    assert again.returncode == 0 and "kept" in again.stdout
    with connection.connect(db) as conn:
        assert specgen.generate(conn, layout, "004", force=False)["kept"]

    rollout = playbook.run("rollout.yml", "-e", "pgrollout_require_verification=true")
    assert rollout.returncode == 0, rollout.stdout[-3000:]
    record = playbook.evidence()[-1]
    assert record["unverified"] == [] and record["verification"]["passed"] == len(spec)
    assert playbook.run("rehearse.yml").returncode == 0
    back = playbook.run("rollback.yml", "-e", "pgrollout_require_verification=true")
    assert back.returncode == 0, back.stdout[-3000:]
    assert query(db, "SELECT to_regclass('public.\"Bot Notes\"')") == [(None,)]
    rolled = playbook.evidence()[-1]["rollback_verification"]
    assert rolled["failed"] == 0 and rolled["passed"] == len(load_spec(str(mset.verification /
                                                                           "004_add_bot_notes_rollback.yml")))


def test_baseline_and_repair_record_what_they_did_and_the_next_rollout_applies_only_the_rest(playbook, empty_db,
                                                                                          tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "one", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n")
    mset.add("002", "two", "CREATE TABLE two (id int);\n", "DROP TABLE two;\n")
    mset.add("003", "three", "CREATE TABLE three (id int);\n", "DROP TABLE three;\n")
    execute(empty_db, "CREATE TABLE one (id int); CREATE TABLE two (id int)")  # built before pgrollout
    book = set_playbook(empty_db, mset, tmp_path / "work")
    refused = book.run("baseline.yml", "-e", "pgrollout_baseline_version=002")
    assert refused.returncode != 0 and "needs a reason" in " ".join(refused.stdout.split())
    proc = book.run("baseline.yml", "-e", "pgrollout_baseline_version=002",
                    "-e", json.dumps({"pgrollout_baseline_reason": "built by hand before pgrollout"}))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert query(empty_db, "SELECT version, direction, note FROM pgrollout.history ORDER BY id") == [
        ("001", "baseline", "built by hand before pgrollout"), ("002", "baseline", "built by hand before pgrollout")]
    assert book.evidence()[-1]["ledger"]["recorded"] == ["001", "002"]
    rollout = book.run()
    assert rollout.returncode == 0, rollout.stdout[-3000:]
    assert [m["version"] for m in book.evidence()[-1]["migrations"] if m["changed"]] == ["003"]
    # an incident: 003's table was dropped by hand; the record is repaired, no SQL runs
    execute(empty_db, "DROP TABLE three")
    repaired = book.run("repair.yml", "-e", json.dumps({"pgrollout_repair_version": "003",
                                                       "pgrollout_repair_mark": "reverted",
                                                       "pgrollout_repair_reason": "dropped by hand in INC-1"}))
    assert repaired.returncode == 0, repaired.stdout[-3000:]
    assert query(empty_db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [
        ("001",), ("002",)]
    assert book.run().returncode == 0 and query(empty_db, "SELECT to_regclass('three')::text") == [("three",)]


def test_other_tools_ledgers_are_read_and_a_dirty_one_stops_the_run(playbook, empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set", "updown")
    mset.add("1", "one", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n")
    mset.add("2", "two", "CREATE TABLE two (id int);\n", "DROP TABLE two;\n")
    execute(empty_db, "CREATE TABLE one (id int); "
                      "CREATE TABLE public.schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL); "
                      "INSERT INTO public.schema_migrations VALUES (1, true)")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    proc = book.run()
    assert proc.returncode != 0 and "marks version 1 dirty" in " ".join(proc.stdout.split())
    assert query(empty_db, "SELECT to_regclass('two')") == [(None,)]
    execute(empty_db, "UPDATE public.schema_migrations SET dirty = false")
    proc = book.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [m["version"] for m in book.evidence()[-1]["migrations"] if m["changed"]] == ["2"]


def test_the_rehearsal_has_supabases_extensions_schema(playbook, db, tmp_path):
    mset = repo_copy(playbook, tmp_path)
    check = "checks:\n  - {name: key length, sql: SELECT length(k) FROM public.keys, expect: {rows: [[16]]}}\n"
    mset.add("004", "uses_pgcrypto", "CREATE TABLE public.keys (k bytea DEFAULT extensions.gen_random_bytes(16));\n"
             "ALTER TABLE public.keys ENABLE ROW LEVEL SECURITY;\nINSERT INTO public.keys DEFAULT VALUES;\n",
             "DROP TABLE public.keys;\n", spec=check,
             rollback_spec="checks:\n  - {name: gone, sql: SELECT to_regclass('public.keys'), "
                           "expect: {rows: [[null]]}}\n")
    proc = playbook.run("rehearse.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [s["ok"] for s in playbook.evidence()[-1]["rehearsal"]] == [True] * 7
    assert yaml.safe_load(check)


def test_a_file_out_of_order_applies_only_when_allowed_with_a_reason_and_flyways_ledger_counts(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("010", "ten", "CREATE TABLE ten (id int);\n", "DROP TABLE ten;\n")
    mset.add("020", "twenty", "CREATE TABLE twenty (id int);\n", "DROP TABLE twenty;\n")
    execute(empty_db, "CREATE TABLE ten (id int); CREATE TABLE flyway_schema_history (version text, "
                      "description text, success boolean); "
                      "INSERT INTO flyway_schema_history VALUES ('10', 'ten', true)")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    first = book.run()
    assert first.returncode == 0, first.stdout[-3000:]
    assert [m["version"] for m in book.evidence()[-1]["migrations"] if m["changed"]] == ["020"]  # 10: Flyway's
    mset.add("015", "fifteen", "CREATE TABLE fifteen (id int);\n", "DROP TABLE fifteen;\n")
    refused = book.run()
    assert refused.returncode != 0 and "would apply out of order" in " ".join(refused.stdout.split())
    allowed = book.run("rollout.yml", "-e",
                       json.dumps({"pgrollout_allow_out_of_order": {"015": "hotfix merged late"}}))
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    record = book.evidence()[-1]
    assert record["allowed_out_of_order"] == {"015": "hotfix merged late"}
    assert query(empty_db, "SELECT to_regclass('fifteen')::text") == [("fifteen",)]
