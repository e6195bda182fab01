"""AWX's way of running a job: ansible-runner with a private data dir (the inventory and the extra vars in it,
the project beside them), the collection by FQCN. Each outcome - succeeded, refused, rolled back, failed -
through runner's status and rc, its job events (the outcome published with set_stats, as an AWX workflow's
next node reads it) and its artifacts, with no secret anywhere in them."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import ansible_runner
import pytest
import yaml

from build_collection import install_collection
from conftest import query

BIN = Path(sys.executable).parent
FQCN = "pgrollout.postgresql"
WINDOW_CLOSED = {"pgrollout_change_window": {"days": ["mon"], "start": "10:00", "end": "11:00", "timezone": "UTC"},
                 "pgrollout_now": "2026-12-01T12:00:00+00:00"}


@pytest.fixture(scope="module")
def collections(tmp_path_factory) -> Path:
    """The collection built from this tree and installed where AWX's execution environment keeps it."""
    return install_collection(tmp_path_factory.mktemp("ee"))


def private_data_dir(root: Path, params: dict, collections: Path) -> Path:
    """AWX's layout: project/ (the git checkout: playbooks and migrations, no inventory), inventory/hosts,
    env/ (environment and, per job, extravars with the credential)."""
    project = root / "project"
    files = {
        "rollout.yml": yaml.safe_dump([{"name": "Roll out", "ansible.builtin.import_playbook": f"{FQCN}.rollout"}]),
        "lint.yml": yaml.safe_dump([{"name": "Review", "ansible.builtin.import_playbook": f"{FQCN}.lint"}]),
        "supabase/migrations/001_notes.sql": "CREATE TABLE notes (id bigint PRIMARY KEY, body text);\n"
                                             "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;\n",
        "supabase/rollbacks/001_notes_rollback.sql": "DROP TABLE notes;\n",
        "supabase/migrations/002_note_author.sql": "ALTER TABLE notes ADD COLUMN author nosuchtype;\n",
        "supabase/rollbacks/002_note_author_rollback.sql": "ALTER TABLE notes DROP COLUMN author;\n",
    }
    tables = "SELECT count(*)::int FROM pg_tables WHERE tablename = '{}'"
    column = "SELECT count(*)::int FROM information_schema.columns WHERE column_name = 'author'"
    specs = {"001_notes": (tables.format("notes"), 1), "001_notes_rollback": (tables.format("notes"), 0),
             "002_note_author": (column, 1), "002_note_author_rollback": (column, 0),
             "003_t3": (tables.format("t3"), 1), "003_t3_rollback": (tables.format("t3"), 0)}
    for stem, (sql, n) in specs.items():
        files[f"verification/{stem}.yml"] = yaml.safe_dump({"checks": [{"name": stem, "sql": sql,
                                                                        "expect": {"rows": [[n]]}}]})
    for path, text in files.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "pgrollout_db_host": params["login_host"], "pgrollout_db_port": params["login_port"],
            "pgrollout_db_name": params["login_db"], "pgrollout_db_ssl_mode": "disable"}
    (root / "inventory").mkdir()
    (root / "inventory" / "hosts").write_text(yaml.safe_dump({"dev": {"hosts": {"app-db": host}}}))
    (root / "env").mkdir()
    # the execution environment's collections and its ansible-playbook (this virtualenv's)
    (root / "env" / "envvars").write_text(yaml.safe_dump({"ANSIBLE_COLLECTIONS_PATH": str(collections),
                                                          "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}))
    return root


def job(root: Path, playbook: str, password: str, **extravars) -> tuple[ansible_runner.Runner, dict]:
    # the credential as AWX injects a vaulted one: an extra variable of this job only (runner keeps what it
    # wrote into env/extravars and merges the next job's into it; AWX writes each job's data dir afresh)
    (root / "env" / "extravars").unlink(missing_ok=True)
    runner = ansible_runner.run(private_data_dir=str(root), playbook=playbook, quiet=True,
                                extravars={"pgrollout_db_password": password, **extravars})
    stats = next(e for e in runner.events if e["event"] == "playbook_on_stats")
    return runner, stats["event_data"].get("artifact_data", {}).get("pgrollout_outcomes", {}).get("app-db", {})


def secrets_in(folder: Path, secret: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_rollout_refused_rolled_back_and_failed_through_ansible_runner(empty_db, tmp_path, collections):
    root = private_data_dir(tmp_path / "job", empty_db, collections)
    project, password = root / "project", empty_db["login_password"]
    env = root / "env" / "extravars"

    runner, outcome = job(root, "rollout.yml", password, **WINDOW_CLOSED)
    assert (runner.status, runner.rc, outcome.get("outcome")) == ("failed", 2, "refused"), runner.stdout.read()
    assert query(empty_db, "SELECT to_regclass('public.notes')") == [(None,)]

    # 001 applies, 002 fails in its transaction: the run rolls 001 back with its rollback file
    runner, outcome = job(root, "rollout.yml", password)
    assert (runner.status, outcome.get("outcome")) == ("failed", "failed_rolled_back"), runner.stdout.read()
    assert query(empty_db, "SELECT to_regclass('public.notes')") == [(None,)]

    (project / "supabase/migrations/002_note_author.sql").write_text("ALTER TABLE notes ADD COLUMN author text;\n")
    runner, outcome = job(root, "rollout.yml", password)
    assert (runner.status, runner.rc, outcome.get("outcome")) == ("successful", 0, "succeeded"), \
        runner.stdout.read()
    assert outcome["changed"] == ["001", "002"]
    assert query(empty_db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [
        ("001",), ("002",)]
    # the project's root is the job's project folder, not the private data dir's inventory/
    assert sorted(p.read_text().split()[0] for p in (project / ".ops" / "evidence" / "dev").glob("*.outcome")) \
        == ["failed_rolled_back", "refused", "succeeded"]

    # applied and verified, then held for a warning nobody acknowledged: kept, and said so
    (project / "supabase/migrations/003_t3.sql").write_text("CREATE TABLE public.t3 (id int);\n")
    (project / "supabase/rollbacks/003_t3_rollback.sql").write_text("DROP TABLE public.t3;\n")
    runner, outcome = job(root, "rollout.yml", password, pgrollout_require_warning_ack=True,
                          pgrollout_acknowledged_lint=["rls-not-enabled:003_t3.sql"])
    assert (runner.status, outcome.get("outcome")) == ("failed", "failed_not_rolled_back"), runner.stdout.read()
    assert query(empty_db, "SELECT to_regclass('public.t3')::text") == [("t3",)]

    # the review from the collection with AWX's inventory (no inventory_dir to lean on)
    runner, _ = job(root, "lint.yml", password)
    assert runner.status == "successful", runner.stdout.read()

    # job events and artifacts carry the run, never the credential
    assert password in env.read_text()  # the input AWX wrote, outside artifacts/
    assert secrets_in(root / "artifacts", password) == []
    assert secrets_in(project / ".ops", password) == []
    assert password not in json.dumps(list(runner.events))
    assert os.listdir(root / "artifacts")
