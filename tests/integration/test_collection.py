"""The collection built from this tree, installed into an empty folder and used by FQCN from another repository."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO, query

BIN = Path(sys.executable).parent
FQCN = "pgrollout.postgresql"


def consumer_repo(root: Path, params: dict, collections: Path) -> None:
    """A minimal repository of its own: inventory with connection variables only, migrations, specs."""
    (root / "inventories" / "dev").mkdir(parents=True)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "pgrollout_db_host": params["login_host"], "pgrollout_db_port": params["login_port"],
            "pgrollout_db_name": params["login_db"], "pgrollout_db_password": params["login_password"],
            "pgrollout_db_ssl_mode": "disable"}
    inventory = root / "inventories" / "dev" / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"dev": {"hosts": {"app-db": host}}}))
    inventory.chmod(0o600)
    (root / "ansible.cfg").write_text(f"[defaults]\ncollections_path = {collections}\n")
    files = {
        "supabase/migrations/001_notes.sql": "CREATE TABLE notes (id bigint PRIMARY KEY, body text);\n"
                                             "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;\n",
        "supabase/rollbacks/001_notes_rollback.sql": "DROP TABLE notes;\n",
        "supabase/migrations/002_note_author.sql": "ALTER TABLE notes ADD COLUMN author text;\n",
        "supabase/rollbacks/002_note_author_rollback.sql": "ALTER TABLE notes DROP COLUMN author;\n",
    }
    column = "SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'notes' " \
             "AND column_name = 'author'"
    specs = {"001_notes": ("notes exists", "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'notes'", 1),
             "001_notes_rollback": ("notes gone", "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'notes'",
                                    0),
             "002_note_author": ("author column", column, 1),
             "002_note_author_rollback": ("no author column", column, 0)}
    for stem, (name, sql, n) in specs.items():
        files[f"verification/{stem}.yml"] = yaml.safe_dump({"checks": [{"name": name, "sql": sql,
                                                                        "expect": {"rows": [[n]]}}]})
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def test_the_collection_installs_and_runs_rollout_rollback_and_status_by_fqcn_from_another_repository(
        empty_db, tmp_path):
    built = subprocess.run([sys.executable, str(REPO / "scripts" / "build_collection.py"), "--output-path",
                            str(tmp_path / "dist")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    tarball = tmp_path / "dist" / f"pgrollout-postgresql-{version}.tar.gz"
    assert built.stdout.strip() == str(tarball) and tarball.exists()
    collections = tmp_path / "collections"
    installed = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--force", "-p", str(collections),
                                str(tarball)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    unpacked = collections / "ansible_collections" / "pgrollout" / "postgresql"
    assert "MIT License" in (unpacked / "LICENSE").read_text()
    # the console travels with the collection: its callback, by FQCN
    console_doc = subprocess.run([str(BIN / "ansible-doc"), "-t", "callback", f"{FQCN}.pgrollout"],
                                 env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)},
                                 capture_output=True, text=True)
    assert console_doc.returncode == 0 and "stdout" in console_doc.stdout, console_doc.stderr
    root = tmp_path / "consumer"
    consumer_repo(root, empty_db, collections)
    # nothing of this repository's configuration: no library, module_utils or roles path
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_NOCOLOR="1")

    def play(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "ansible-playbook"), f"{FQCN}.{name}", "-i", "inventories/dev", *args],
                              cwd=root, env=env, capture_output=True, text=True, timeout=600)

    doc = subprocess.run([str(BIN / "ansible-doc"), "-t", "module", f"{FQCN}.pg_migrate"], cwd=root, env=env,
                         capture_output=True, text=True)
    assert doc.returncode == 0 and "login_host" in doc.stdout, doc.stderr

    dry = play("rollout", "--check")
    assert dry.returncode == 0, dry.stdout[-3000:]
    rollout = play("rollout")
    assert rollout.returncode == 0, rollout.stdout[-3000:]
    assert query(empty_db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [
        ("001",), ("002",)]
    outcomes = sorted((root / ".ops" / "evidence" / "dev").glob("*.outcome"))
    assert [p.read_text().split()[0] for p in outcomes] == ["dry_run", "succeeded"]
    # after the commit: the newest file's spec (001's ran in its own transaction) and the two audit checks
    assert "changed=001,002 checks=3/3" in outcomes[-1].read_text()

    rollback = play("rollback")
    assert rollback.returncode == 0, rollback.stdout[-3000:]
    assert query(empty_db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'author'") == [(0,)]

    status = play("status")
    assert status.returncode == 0, status.stdout[-3000:]
    document = json.loads((root / ".ops" / "evidence" / "dev" / "status.json").read_text())
    target = document["targets"]["app-db"]
    assert [a["version"] for a in target["applied"]] == ["001"] and target["pending"] == ["002"]
    assert target["last_run"]["kind"] == "rollback" and target["last_run"]["outcome"] == "succeeded"

    # a role of the collection in the consumer's own play: only connection variables and the action group
    (root / "check.yml").write_text(yaml.safe_dump([{
        "name": "Read the state", "hosts": "all", "gather_facts": False,
        "module_defaults": {f"group/{FQCN}.database": "{{ pgrollout_connection }}"},
        "tasks": [{"name": "Preflight", "ansible.builtin.include_role": {"name": f"{FQCN}.preflight"}}]}]))
    own = subprocess.run([str(BIN / "ansible-playbook"), "check.yml", "-i", "inventories/dev"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert own.returncode == 0, own.stdout[-3000:]
    assert "pending: 002_note_author.sql" in own.stdout

    # the exit codes travel with the collection: its own wrapper on an FQCN playbook (refused: 10, then 002 applied: 0)
    wrapper = [sys.executable, str(unpacked / "scripts" / "pgrollout-run"), f"{FQCN}.rollout", "-i", "inventories/dev"]
    window = {"days": ["mon"], "start": "10:00", "end": "11:00", "timezone": "UTC"}
    refused = subprocess.run([*wrapper, "-e", json.dumps({"pgrollout_change_window": window,
                                                         "pgrollout_now": "2026-12-01T12:00:00+00:00"})],
                             cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 10 and "  refused rollout dev/app-db" in refused.stdout, refused.stdout[-3000:]
    again = subprocess.run(wrapper, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "  succeeded rollout dev/app-db" in again.stdout, again.stdout[-3000:]
    assert " changed=002 " in again.stdout and query(
        empty_db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'author'") == [(1,)]
