"""The migration review: squawk for real, offline with no database, and in a rollout's preflight."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import REPO, query
from migsets import MigrationSet
from pgrollout import lint, sqlfile


def test_squawk_flags_lock_risks_knowing_which_files_run_in_a_transaction(tmp_path):
    risky = tmp_path / "004_risky.sql"
    risky.write_text("CREATE INDEX kb_patterns_name ON public.kb_patterns (name);\n"
                     "ALTER TABLE public.kb_patterns ADD COLUMN uid uuid NOT NULL DEFAULT gen_random_uuid();\n")
    clean = tmp_path / "005_clean.sql"
    clean.write_text("-- pgrollout: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS kb_patterns_type "
                     "ON public.kb_patterns (pattern_type);\n")
    report = lint.lint([(sqlfile.load(str(risky)), "up"), (sqlfile.load(str(clean)), "up")], ["public"])
    rules = {(os.path.basename(f["file"]), f["rule"]) for f in report["findings"] if f["source"] == "squawk"}
    assert ("004_risky.sql", "require-concurrent-index-creation") in rules
    assert ("004_risky.sql", "adding-field-with-default") in rules
    assert not [r for r in rules if r[0] == "005_clean.sql"]
    assert all(f["line"] >= 1 and f["why"] and f["how"] for f in report["findings"])


def lint_play(migrations: Path, rollbacks: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    extra = {"pgrollout_migrations_dir": str(migrations), "pgrollout_rollbacks_dir": str(rollbacks),
             "pgrollout_lint_dir": str(out), "pgrollout_acknowledged_lint": [],
             "pgrollout_lint_all": True}
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "lint.yml", "-e", json.dumps(extra)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_the_offline_lint_needs_no_database_and_fails_the_pipeline_on_an_error(tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "clean", "CREATE TABLE public.a (id bigint PRIMARY KEY);\n"
             "ALTER TABLE public.a ENABLE ROW LEVEL SECURITY;\n", "DROP TABLE public.a;\n")
    ok = lint_play(mset.migrations, mset.rollbacks, tmp_path / "out")
    assert ok.returncode == 0, ok.stdout[-2000:]
    mset.add("002", "unsafe", "CREATE TABLE public.b (id bigint PRIMARY KEY);\n", "DROP TABLE public.b;\n")
    failed = lint_play(mset.migrations, mset.rollbacks, tmp_path / "out")
    assert failed.returncode != 0 and "rls-not-enabled:002_unsafe.sql" in failed.stdout
    suite = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    assert suite.get("failures") == "1" and suite.get("errors") == "0"
    assert [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None] == ["002_unsafe.sql:1"]
    assert json.loads((tmp_path / "out" / "lint.json").read_text())["blocking"][0]["rule"] == "rls-not-enabled"


def test_where_warnings_need_acknowledging_a_lint_error_stops_the_rollout_until_acknowledged(playbook, db, tmp_path):
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for name in os.listdir(REPO / "supabase" / "migrations"):
        (migrations / name).write_text((REPO / "supabase" / "migrations" / name).read_text())
    (migrations / "004_drop_lessons.sql").write_text("DROP TABLE public.kb_lessons_learned;\n")
    playbook.set(pgrollout_migrations_dir=str(migrations), pgrollout_require_warning_ack=True,
                 pgrollout_require_verification=False, pgrollout_acknowledged_warnings=[])
    refused = playbook.run()
    assert refused.returncode != 0
    assert "drop-on-forward-path:004_drop_lessons.sql" in " ".join(refused.stdout.split())
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]  # nothing changed, 003 neither
    assert not (playbook.workdir / "backups").exists()
    record = playbook.evidence()[-1]
    assert record["lint"]["blocking"][0]["rule"] == "drop-on-forward-path"



def test_on_a_big_table_the_dry_run_reports_size_and_lock_hold_and_prod_refuses_until_acknowledged(playbook, db,
                                                                                                  tmp_path):
    from conftest import execute
    execute(db, "INSERT INTO public.kb_patterns (name, pattern_type) "
                "SELECT 'p' || g, 'x' FROM generate_series(1, 1000500) g; ANALYZE public.kb_patterns")
    migrations, specs = tmp_path / "migrations", tmp_path / "verification"
    for folder, source in ((migrations, "supabase/migrations"), (specs, "verification")):
        folder.mkdir()
        for name in os.listdir(REPO / source):
            (folder / name).write_text((REPO / source / name).read_text())
    (migrations / "004_index_names.sql").write_text("CREATE INDEX kb_patterns_name ON public.kb_patterns (name);\n")
    playbook.set(pgrollout_migrations_dir=str(migrations), pgrollout_verification_dir=str(specs),
                 pgrollout_backup=False)
    dry = playbook.run("rollout.yml", "--check")
    assert dry.returncode == 0, dry.stdout[-3000:]
    said = " ".join(dry.stdout.split())
    assert "holds ShareLock on public.kb_patterns (1.0 M rows (estimated), " in said and " MB) for " in said
    assert "require-concurrent-index-creation" in said and "on public.kb_patterns (1.0 M rows" in said
    playbook.set(pgrollout_require_warning_ack=True)  # as in staging and prod
    refused = playbook.run()
    assert refused.returncode != 0
    assert "require-concurrent-index-creation:004_index_names.sql" in " ".join(refused.stdout.split())
    assert query(db, "SELECT to_regclass('public.kb_patterns_name')") == [(None,)]
    acknowledged = playbook.run("rollout.yml", "-e", json.dumps({
        "pgrollout_acknowledged_lint": ["require-concurrent-index-creation:004_index_names.sql"]}))
    assert acknowledged.returncode == 0, acknowledged.stdout[-3000:]
    assert query(db, "SELECT to_regclass('public.kb_patterns_name')::text") == [("kb_patterns_name",)]
    record = playbook.evidence()[-1]
    assert [f for f in record["lint"]["findings"] if f.get("acknowledged")]


def test_a_squawk_toml_exclusion_takes_effect_with_pgrollouts_own(tmp_path):
    risky = tmp_path / "004_risky.sql"
    risky.write_text("CREATE INDEX kb_patterns_name ON public.kb_patterns (name);\n")
    files = [(sqlfile.load(str(risky)), "up")]
    rules = {f["rule"] for f in lint.lint(files, ["public"])["findings"]}
    assert "require-concurrent-index-creation" in rules
    config = tmp_path / ".squawk.toml"
    config.write_text('excluded_rules = ["require-concurrent-index-creation"]\n')
    report = lint.lint(files, ["public"], squawk_config=str(config))
    rules = {f["rule"] for f in report["findings"]}
    assert "require-concurrent-index-creation" not in rules
    assert not {"require-lock-timeout", "prefer-robust-stmts"} & rules  # pgrollout's exclusions still hold


def test_one_finding_per_problem_and_advice_that_reads_whole(tmp_path):
    policy = tmp_path / "004_policy.sql"
    policy.write_text("CREATE TABLE public.notes (id bigint PRIMARY KEY, owner uuid);\n"
                      "ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;\n"
                      "CREATE POLICY notes_own ON public.notes FOR UPDATE TO authenticated\n"
                      "  USING (owner = auth.uid()) WITH CHECK (owner = auth.uid());\n")
    report = lint.lint([(sqlfile.load(str(policy)), "up")], ["public"], pg_version="15.8")
    keys = [(f["rule"], f["line"], f["why"]) for f in report["findings"]]
    assert len(keys) == len(set(keys)), keys
    assert [k for k in keys if k[0] == "auth-function-not-wrapped"], keys
    assert all(".. Safer" not in line and "Safer: " in line for line in report["summary"]), report["summary"]


def test_a_finding_about_a_new_table_is_not_put_on_the_big_table_it_references(db, tmp_path):
    """A new table referencing auth.users: its own findings stay warnings with no size; the foreign key's
    finding is about auth.users and is raised when auth.users is big (every table with a row is, here)."""
    from pgrollout import connection

    path = tmp_path / "004_notes.sql"
    path.write_text("-- notes of users\n\nCREATE TABLE public.notes (id int PRIMARY KEY,\n"
                    "  author uuid REFERENCES auth.users (id));\nALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;\n")
    files = [(sqlfile.load(str(path)), "up")]
    report = lint.lint(files, ["public"])
    assert query(db, "SELECT count(*) > 0 FROM auth.users") == [(True,)]
    with connection.connect(db) as conn, conn.cursor() as cur:
        lint.annotate(report, files, cur, big_rows=0, big_bytes=2**40)
    by_rule = {f["rule"]: f for f in report["findings"]}
    assert by_rule["foreign-key-to-auth-users"]["line"] == 3  # the CREATE, not the comment above it
    assert "auth.users" in by_rule["foreign-key-to-auth-users"]["tables"]
    assert by_rule["foreign-key-to-auth-users"]["severity"] == "error"
    own = [f for f in report["findings"] if f["rule"] not in lint.REFERENCE_RULES]
    assert own and all("tables" not in f and f["severity"] == "warn" for f in own), own


def test_lint_yml_with_a_project_inventory_reviews_that_projects_pending_files_with_its_settings(empty_db, tmp_path):
    """The project layout (inventories/<env>/ beside supabase/): its files, its group_vars, its target's pending."""
    project = tmp_path / "project"
    for folder in ("supabase/migrations", "supabase/rollbacks", "verification", "inventories/dev/group_vars"):
        (project / folder).mkdir(parents=True)
    (project / "supabase/migrations/001_app.sql").write_text(
        "CREATE SCHEMA app;\nCREATE TABLE app.a (id bigint PRIMARY KEY);\n"
        "ALTER TABLE app.a ENABLE ROW LEVEL SECURITY;\n")
    (project / "supabase/migrations/002_more.sql").write_text(
        "-- a table the project's API exposes, without row-level security\n\n"
        "CREATE TABLE app.b (id bigint PRIMARY KEY);\n")
    # the project's settings: it exposes schema app (pgrollout's own default exposes public)
    (project / "inventories/dev/group_vars/dev.yml").write_text(json.dumps({
        "pgrollout_exposed_schemas": ["app"], "pgrollout_require_verification": False,
        "pgrollout_require_rollback": False, "pgrollout_backup": False, "pgrollout_watch_minutes": 0,
        "pgrollout_promotion_allow_dirty": True}))
    (project / "inventories/dev/hosts.yml").write_text(json.dumps({"dev": {"hosts": {"app-dev": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "pgrollout_db_host": empty_db["login_host"], "pgrollout_db_port": empty_db["login_port"],
        "pgrollout_db_name": empty_db["login_db"], "pgrollout_db_password": empty_db["login_password"],
        "pgrollout_db_ssl_mode": "disable"}}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")

    def play(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), name, "-i",
                               str(project / "inventories/dev"), *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)

    applied = play("rollout.yml", "-e", "pgrollout_target_version=001")
    assert applied.returncode == 0, applied.stdout[-3000:]
    assert query(empty_db, "SELECT version FROM supabase_migrations.schema_migrations") == [("001",)]
    review = play("lint.yml")
    text = " ".join(review.stdout.split())
    assert review.returncode != 0, text[-3000:]  # the project's exposed schema makes 002's table an error
    assert "the files pending on app-dev: 002_more.sql" in text, text[-3000:]
    report = json.loads((project / ".ops/lint/lint.json").read_text())  # under the project's root, not pgrollout's
    assert [os.path.basename(p) for p in report["files"]] == ["002_more.sql"]
    assert {os.path.basename(f["file"]) for f in report["findings"]} == {"002_more.sql"}
    (blocking,) = report["blocking"]
    assert (blocking["rule"], blocking["line"]) == ("rls-not-enabled", 3)  # the statement's line, not the comment's
    everything = play("lint.yml", "-e", "pgrollout_lint_all=true")
    assert "every file (pgrollout_lint_all)" in " ".join(everything.stdout.split())
    assert {os.path.basename(p) for p in json.loads((project / ".ops/lint/lint.json").read_text())["files"]} == \
        {"001_app.sql", "002_more.sql"}
