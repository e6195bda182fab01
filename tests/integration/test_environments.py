"""dev -> staging -> prod: the rehearsal, the gates, automatic rollback, batches, notifications, vaults."""
from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from conftest import REPO, Playbook, execute, query
from pgrollout import connection, schema

IN_WINDOW = "2026-12-01T10:30:00Z"   # a Tuesday
OUT_OF_WINDOW = "2026-12-05T10:30:00Z"  # a Saturday


def snapshot(params):
    with connection.connect(params) as conn, conn.cursor() as cur:
        return schema.snapshot(cur)


def new_db(cluster) -> dict:
    name = "t_" + uuid.uuid4().hex[:12]
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE baseline_template")
    return cluster.params(name)


def bots(params) -> list:
    return query(params, "SELECT to_regclass('public.bots')::text")


@pytest.fixture
def envs(cluster, tmp_path):
    """Three databases standing in for dev, staging and prod, sharing one evidence root."""
    made = {env: Playbook(new_db(cluster), tmp_path, group=env) for env in ("dev", "staging", "prod")}
    inventories = tmp_path / "inventories"
    for env, book in made.items():
        (inventories / env).mkdir(parents=True)
        (inventories / env / "hosts.yml").write_text(json.dumps({env: {"hosts": book.hosts}}))
        book.set(pgrollout_inventories_dir=str(inventories), pgrollout_now=IN_WINDOW)
    yield made
    with connection.connect(cluster.params(), autocommit=True) as conn:
        for book in made.values():
            conn.execute(f"DROP DATABASE IF EXISTS {book.params['login_db']} WITH (FORCE)")


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc


def test_the_rehearsal_play_runs_every_step_on_a_scratch_database(playbook, db):
    before = snapshot(db)
    proc = ok(playbook.run("rehearse.yml"))
    (record,) = playbook.evidence()
    assert record["kind"] == "rehearsal" and record["outcome"] == "succeeded"
    assert [(s["step"], s["ok"]) for s in record["rehearsal"]] == [
        ("fresh baseline", True), ("apply", True), ("verify", True), ("rollback", True),
        ("verify rolled back", True), ("re-apply", True), ("final verification", True)]
    assert [(m["version"], m["direction"]) for m in record["migrations"]] == [
        ("003", "up"), ("003", "down"), ("003", "up")]
    assert snapshot(db) == before  # the target's own database was never touched
    assert query(db, "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgrollout_rehearsal_%'") == [(0,)]
    assert "| final verification | ok |" in (playbook.evidence_dir / f"{record['run_id']}.md").read_text()
    assert "WARN  security gap: kb_* tables readable without RLS" in proc.stdout


def test_a_full_promotion_dev_staging_prod(envs):
    staging_hosts = json.loads((envs["staging"].inventory / "hosts.yml").read_text())
    assert staging_hosts["staging"]["hosts"]  # staging has a target: prod needs its evidence too
    ok(envs["dev"].run())
    ok(envs["dev"].run("rehearse.yml"))
    ok(envs["staging"].run())
    refused = envs["prod"].run()  # staging has a target but has not rehearsed yet
    assert refused.returncode != 0 and "was not rehearsed in staging" in refused.stdout
    assert "in dev" not in refused.stdout
    ok(envs["staging"].run("rehearse.yml"))
    ok(envs["prod"].run())
    for env in ("dev", "staging", "prod"):
        assert bots(envs[env].params) == [("bots",)]
    record = envs["prod"].evidence()[-1]
    assert record["outcome"] == "succeeded" and record["gates"]["refusals"] == []
    assert record["gates"]["window"]["judged_at"] == "Tue 10:30 UTC"
    assert [o["gate"] for o in record["overrides"]] == ["clock"]  # the tests' fixed time is recorded


def test_prod_refuses_without_dev_evidence_naming_what_is_missing(envs):
    envs["staging"].set()
    (envs["prod"].inventory.parent / "inventories" / "staging" / "hosts.yml").write_text(
        json.dumps({"staging": {"hosts": {}}}))  # no staging target: dev evidence is enough
    before = snapshot(envs["prod"].params)
    proc = envs["prod"].run()
    assert proc.returncode != 0
    assert "003_bot_registration_sharing" in proc.stdout and "was not rolled out and verified in dev" in proc.stdout
    assert "was not rehearsed in dev" in proc.stdout and "in staging" not in proc.stdout
    assert snapshot(envs["prod"].params) == before
    assert envs["prod"].evidence()[-1]["backup"] is None  # refused before the backup
    ok(envs["dev"].run())
    ok(envs["dev"].run("rehearse.yml"))
    ok(envs["prod"].run())


def test_prod_refuses_outside_the_window_unless_overridden_with_a_reason(envs):
    envs["prod"].set(pgrollout_now=OUT_OF_WINDOW, pgrollout_promotion_environments=[])
    before = snapshot(envs["prod"].params)
    proc = envs["prod"].run()
    assert proc.returncode != 0 and "outside the change window (mon,tue,wed,thu,fri 10:00-12:00 UTC; " \
                                     "it is Sat 10:30 UTC)" in proc.stdout
    assert snapshot(envs["prod"].params) == before
    dry = ok(envs["prod"].run("rollout.yml", "--check"))  # check mode is always allowed
    assert "outside the change window" in dry.stdout and snapshot(envs["prod"].params) == before
    ok(envs["prod"].run("rollout.yml", "-e", json.dumps({
        "pgrollout_window_override": True, "pgrollout_window_override_reason": "INC-42: fix the RLS gap now"})))
    record = envs["prod"].evidence()[-1]
    window = [o for o in record["overrides"] if o["gate"] == "change_window"]
    assert window and window[0]["reason"] == "INC-42: fix the RLS gap now"
    assert "change_window: INC-42" in (envs["prod"].evidence_dir / f"{record['run_id']}.md").read_text()


def inject_verification_failure(book, tmp_path):
    specs = tmp_path / "verification-injected"
    shutil.copytree(REPO / "verification", specs)
    spec = specs / "003_bot_registration_sharing.yml"
    # inside the migration's transaction its ledger row was written at now(); after the commit, now()
    # is later: the check passes before the commit and fails after it
    spec.write_text(spec.read_text() + "\n  - name: injected failure\n"
                    "    sql: SELECT 1 FROM pgrollout.migrations WHERE version = '003' AND applied_at = now()\n"
                    "    expect: {count: 1}\n")
    book.set(pgrollout_verification_dir=str(specs), pgrollout_promotion_environments=[])


def test_a_verification_failure_in_prod_with_a_broken_rollback_never_restores_by_itself(envs, tmp_path):
    prod = envs["prod"]
    inject_verification_failure(prod, tmp_path)
    rollbacks = tmp_path / "rollbacks"  # and the rollback script fails too
    shutil.copytree(REPO / "supabase" / "rollbacks", rollbacks)
    script = rollbacks / "003_bot_registration_sharing_rollback.sql"
    script.write_text(script.read_text() + "\nSELECT 1 / 0;\n")
    prod.set(pgrollout_rollbacks_dir=str(rollbacks))
    proc = prod.run()
    assert proc.returncode != 0
    assert "The rollback failed and nothing was restored" in proc.stdout
    assert "-e pgrollout_restore_archive=" in proc.stdout  # how to restore, if the operator decides to
    assert bots(prod.params) == [("bots",)]  # 003 stays applied: a restore is a human decision in prod
    record = prod.evidence()[-1]
    assert record["outcome"] == "failed_not_rolled_back" and record["rollback"]["path_taken"] is None
    assert "division by zero" in record["rollback"]["script_failure"]
    assert record["restore"] is None
    assert {r["name"]: r["status"] for r in record["verification"]["results"]}["injected failure"] == "failed"


def test_check_mode_leaves_every_schema_unchanged(envs):
    before = {env: snapshot(book.params) for env, book in envs.items()}
    for book in envs.values():
        proc = ok(book.run("rollout.yml", "--check", "--diff"))
        locks = [x for x in proc.stdout.splitlines() if x.strip().startswith("locks: AccessExclusiveLock on ")]
        assert locks and "public.kb_patterns" in locks[0], proc.stdout[-3000:]
        assert book.evidence()[-1]["outcome"] == "dry_run"
    assert {env: snapshot(book.params) for env, book in envs.items()} == before


def test_targets_roll_out_in_batches_and_a_failure_stops_the_batches_after_it(cluster, tmp_path):
    first, broken, third = new_db(cluster), new_db(cluster), new_db(cluster)
    execute(broken, "CREATE TABLE public.bots (id int)")  # 003 fails here: relation exists
    book = Playbook(first, tmp_path, host="db-1")
    book.add_host("db-2", broken)
    book.add_host("db-3", third)
    proc = book.run("rollout.yml", "-e", "pgrollout_serial=1")
    assert proc.returncode != 0
    assert bots(first) == [("bots",)] and bots(third) == [(None,)]
    rolled = {t["host"] for t in proc.results["tasks"] if t["task"].endswith("Read the target's state")}
    assert rolled == {"db-1", "db-2"}  # db-3's batch never started
    assert [r["host"] for r in book.evidence()] == ["db-1", "db-2"]


class Hook(http.server.BaseHTTPRequestHandler):
    posts: list = []

    def do_POST(self) -> None:  # noqa: N802
        Hook.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_webhook_hears_of_success_and_failure_and_its_url_stays_secret(playbook, tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hooks/T000/SECRET-TOKEN"
    Hook.posts = []
    try:
        playbook.set(pgrollout_notify_webhook_url=url)
        success = ok(playbook.run("rollout.yml", "-vvv"))
        inject_verification_failure(playbook, tmp_path)
        playbook.run("rollback.yml")
        failure = playbook.run()
    finally:
        server.shutdown()
    assert failure.returncode != 0
    texts = [p["text"] for p in Hook.posts]
    assert len(texts) == 3 and texts[0].startswith(":white_check_mark: pgrollout dev/test-target: rollout succeeded")
    assert texts[1].startswith(":white_check_mark: pgrollout dev/test-target: rollback succeeded by script")
    assert texts[2].startswith(":x: pgrollout dev/test-target: rollout failed_rolled_back at Stop when a check failed")
    assert "rolled back by script" in texts[2]
    for proc in (success, failure):
        assert "SECRET-TOKEN" not in proc.stdout + proc.stderr
    for path in playbook.evidence_dir.iterdir():
        assert "SECRET-TOKEN" not in path.read_text()


def test_the_prod_inventory_reads_its_password_from_the_example_vault():
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", "inventories/prod",
                           "--vault-password-file", "examples/vault-password.example", "--host", "prod-main"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    host = json.loads(proc.stdout)
    assert host["pgrollout_db_host"] == "db.your-project-ref.supabase.co" and host["pgrollout_db_port"] == 5432
    assert host["vault_pgrollout_db_password"] == "example-only-not-a-real-password"
    vault = (REPO / "inventories" / "prod" / "host_vars" / "prod-main" / "vault.yml").read_text()
    assert vault.startswith("$ANSIBLE_VAULT;1.1;AES256") and "example-only" not in vault
