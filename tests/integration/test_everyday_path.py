"""The everyday path of a team: a batch of migrations promoted dev -> staging, a dry run that predicts
the run, rolling out to a version, rehearsing a batch, rollback files expected (issue 18)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import REPO, Playbook, query
from pgrollout import connection

IN_WINDOW = "2026-12-01T10:30:00Z"  # a Tuesday

# 004: a new index and a new column on bots, after 003 created it; 003's own spec checks bots' exact
# index list and columns, which 004 changes.
MIGRATION_004 = """\
ALTER TABLE public.bots ADD COLUMN notes text;
CREATE INDEX bots_created_at_idx ON public.bots (created_at);
"""
ROLLBACK_004 = """\
DROP INDEX public.bots_created_at_idx;
ALTER TABLE public.bots DROP COLUMN notes;
"""
SPEC_004 = """\
checks:
  - name: bots has notes and its created_at index
    sql: |
      SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'bots_created_at_idx'),
             (SELECT count(*) FROM information_schema.columns
               WHERE table_schema = 'public' AND table_name = 'bots' AND column_name = 'notes')
    expect: {rows: [[1, 1]]}
"""
ROLLBACK_SPEC_004 = """\
checks:
  - name: the notes column is gone
    sql: SELECT count(*) FROM information_schema.columns WHERE table_name = 'bots' AND column_name = 'notes'
    expect: {rows: [[0]]}
"""


def new_db(cluster) -> dict:
    name = "t_" + uuid.uuid4().hex[:12]
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE baseline_template")
    return cluster.params(name)


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc


def ledger(params) -> list[str]:
    return [v for (v,) in query(params, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1")]


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of this repository's migrations, rollbacks and specs (001-003), to add 004 to."""
    root = tmp_path / "project"
    for folder in ("supabase/migrations", "supabase/rollbacks", "verification"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def add_004(project: Path, rollback: bool = True, spec: bool = True) -> None:
    (project / "supabase/migrations/004_bot_notes.sql").write_text(MIGRATION_004)
    if rollback:
        (project / "supabase/rollbacks/004_bot_notes_rollback.sql").write_text(ROLLBACK_004)
    if spec:
        (project / "verification/004_bot_notes.yml").write_text(SPEC_004)
        (project / "verification/004_bot_notes_rollback.yml").write_text(ROLLBACK_SPEC_004)


@pytest.fixture
def team(cluster, tmp_path, project):
    """dev and staging databases at 001-002, sharing one evidence root, rolling out `project`'s files."""
    made = {env: Playbook(new_db(cluster), tmp_path, group=env) for env in ("dev", "staging")}
    inventories = tmp_path / "inventories"
    for env, book in made.items():
        (inventories / env).mkdir(parents=True)
        (inventories / env / "hosts.yml").write_text(json.dumps({env: {"hosts": book.hosts}}))
        book.set(pgrollout_inventories_dir=str(inventories), pgrollout_now=IN_WINDOW,
                 pgrollout_migrations_dir=str(project / "supabase/migrations"),
                 pgrollout_rollbacks_dir=str(project / "supabase/rollbacks"),
                 pgrollout_verification_dir=str(project / "verification"),
                 # this checkout may hold uncommitted work; the dirty-evidence rule has a test of its own
                 pgrollout_promotion_allow_dirty=True)
    yield made
    with connection.connect(cluster.params(), autocommit=True) as conn:
        for book in made.values():
            conn.execute(f"DROP DATABASE IF EXISTS {book.params['login_db']} WITH (FORCE)")


def test_a_batch_of_two_migrations_is_promoted_to_staging_as_its_dry_run_predicted(team, project):
    dev, staging = team["dev"], team["staging"]
    ok(dev.run("rehearse.yml"))  # 003 pending in dev
    ok(dev.run())
    add_004(project)
    rehearsal = ok(dev.run("rehearse.yml"))  # 004 pending in dev: rehearsed on 001-003
    assert "apply: applied 004_bot_notes" in rehearsal.stdout
    ok(dev.run())
    assert ledger(dev.params) == ["001", "002", "003", "004"]

    ok(staging.run("rollout.yml", "--check"))
    (dry_record,) = [r for r in staging.evidence() if r["dry_run"]]
    assert dry_record["outcome"] == "dry_run"
    assert [m["version"] for m in dry_record["migrations"]] == ["003", "004"]
    # what the run verifies after its commit: 004's spec and 003's lasting checks, run by the dry run
    after = dry_record["dry_run_after_commit"]
    assert [Path(p).name for p in after["specs"]] == ["004_bot_notes.yml"]
    assert [Path(p).name for p in after["lasting_specs"]] == ["003_bot_registration_sharing.yml"]
    assert after["checks_summary"] and all(line.startswith("PASS") for line in after["checks_summary"])
    summary_line = (staging.evidence_dir / f"{dry_record['run_id']}-dryrun.outcome").read_text()
    in_transaction = sum(len(m.get("checks_summary") or []) for m in dry_record["migrations"])
    counted = in_transaction + len(after["checks_summary"])
    assert in_transaction > 10 and f"checks={counted}/{counted}" in summary_line, summary_line
    assert ledger(staging.params) == ["001", "002"]  # the dry run changed nothing

    run = ok(staging.run())
    record = [r for r in staging.evidence() if not r["dry_run"]][-1]
    assert record["outcome"] == "succeeded", run.stdout[-3000:]
    assert record["changed"] == ["003", "004"]
    assert ledger(staging.params) == ["001", "002", "003", "004"]
    assert query(staging.params, "SELECT count(*) FROM pg_indexes WHERE indexname = 'bots_created_at_idx'") == [(1,)]
    assert record["backup"]["path"] and "at_002_before_003" in Path(record["backup"]["path"]).name


def test_a_rollout_to_a_version_applies_the_pending_files_up_to_it_and_no_further(team, project):
    add_004(project)
    dev, staging = team["dev"], team["staging"]
    dry = ok(dev.run("rollout.yml", "--check", "-e", "pgrollout_target_version=003"))
    (dry_record,) = dev.evidence()
    assert [m["version"] for m in dry_record["migrations"]] == ["003"]
    assert dry_record["target"]["target_version"] == "003"
    assert dry_record["target"]["not_run_beyond_target"] == ["004_bot_notes.sql"]
    assert "target version 003: not run now: 004_bot_notes.sql" in dry.stdout
    ok(dev.run("rollout.yml", "-e", "pgrollout_target_version=003"))
    assert ledger(dev.params) == ["001", "002", "003"]
    record = dev.evidence()[-1]
    assert record["changed"] == ["003"] and "at_002_before_003" in Path(record["backup"]["path"]).name
    # 3 and 003 are the same version; a version no file has is refused before anything changes
    again = ok(dev.run("rollout.yml", "-e", "pgrollout_target_version=3"))
    assert dev.evidence()[-1]["outcome"] == "no_change", again.stdout[-2000:]
    refused = dev.run("rollout.yml", "-e", "pgrollout_target_version=099")
    assert refused.returncode != 0 and "pgrollout_target_version 099: no migration file" in refused.stdout
    assert ledger(dev.params) == ["001", "002", "003"]
    # staging, fresh: with dev's evidence of 003 only, -e pgrollout_target_version=003 promotes 003 alone
    ok(dev.run("rehearse.yml", "-e", "pgrollout_target_version=003"))
    ok(staging.run("rollout.yml", "-e", "pgrollout_target_version=003"))
    assert ledger(staging.params) == ["001", "002", "003"]


def test_staging_refuses_a_file_without_a_rollback_file_and_dev_warns(team, project):
    add_004(project, rollback=False)
    dev, staging = team["dev"], team["staging"]
    ok(dev.run("rollout.yml", "-e", "pgrollout_target_version=003"))
    warned = ok(dev.run())
    assert "WARNING: no rollback file for 004_bot_notes.sql" in warned.stdout
    assert ledger(dev.params)[-1] == "004"
    refused = staging.run("rollout.yml", "-e", "pgrollout_promotion_environments=[]")
    assert refused.returncode != 0
    assert "004_bot_notes has no rollback file" in refused.stdout and "pgrollout_require_rollback" in refused.stdout
    record = staging.evidence()[-1]
    assert record["outcome"] == "refused" and record["changed"] == [] and not record["backup"]
    assert ledger(staging.params) == ["001", "002"]


def test_a_rehearsal_refuses_a_file_without_spec_or_rollback_before_building_anything(team, project, cluster):
    add_004(project, rollback=False, spec=False)
    staging = team["staging"]
    staging.set(pgrollout_rehearse_allowed=True)
    refused = staging.run("rehearse.yml")
    assert refused.returncode != 0
    assert "004_bot_notes.sql has no verification spec" in refused.stdout and "make spec VERSION=004" in refused.stdout
    assert "004_bot_notes.sql has no rollback file" in refused.stdout and "make new-migration" in refused.stdout
    assert "lookup('ansible.builtin.file'" not in refused.stdout
    assert "Create the scratch database" not in refused.stdout
    assert query(cluster.params(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgrollout_rehearsal_%'") \
        == [(0,)]
    # dev allows unverified files and files without rollback: the steps say what was skipped
    dev = team["dev"]
    proc = ok(dev.run("rehearse.yml"))
    record = dev.evidence()[-1]
    steps = {s["step"]: s for s in record["rehearsal"]}
    assert steps["apply"]["ok"] and "004_bot_notes" in steps["apply"]["msg"]
    assert "skipped: 004_bot_notes.sql has no rollback file" in steps["rollback"]["msg"]
    assert "skipped" in steps["re-apply"]["msg"] and "skipped" in proc.stdout


def test_the_supabase_layout_orders_mixed_length_versions_as_the_supabase_cli(empty_db, tmp_path, cluster):
    """Each file needs the one the CLI runs before it; pgrollout must run them in the same order."""
    names = [("20240101120000", "a"), ("20240410", "b"), ("20240410120000", "c"), ("20240501093000", "d")]
    project = tmp_path / "mixed"
    (project / "supabase" / "migrations").mkdir(parents=True)
    order = sorted(names, key=lambda n: n[0].encode())  # versions as text, as `supabase db push` 3.1 runs them
    for i, (version, name) in enumerate(order):
        body = (f"CREATE TABLE step_{name} (id int PRIMARY KEY"
                + (f", prev int REFERENCES step_{order[i - 1][1]}(id)" if i else "") + ");\n")
        (project / "supabase" / "migrations" / f"{version}_{name}.sql").write_text(body)
    workdir = tmp_path / "wd"
    workdir.mkdir()
    book = Playbook(empty_db, workdir)
    book.set(pgrollout_migrations_dir=str(project / "supabase" / "migrations"),
             pgrollout_rollbacks_dir=str(project / "supabase" / "rollbacks"),
             pgrollout_verification_dir=str(project / "verification"), pgrollout_exposed_schemas=["nothing_exposed"],
             pgrollout_require_rollback=False)
    ok(book.run())
    ours = [v for (v,) in query(empty_db, "SELECT version FROM pgrollout.history WHERE direction = 'up' ORDER BY id")]
    assert ours == [v for v, _ in order] == ["20240101120000", "20240410", "20240410120000", "20240501093000"]
    cli = shutil.which("supabase") or next(iter(sorted(Path(REPO).glob(".local/node/node_modules/.bin/supabase"))),
                                           None)
    if cli is None:
        if os.environ.get("PGROLLOUT_REQUIRE_SUPABASE_CLI"):
            pytest.fail("PGROLLOUT_REQUIRE_SUPABASE_CLI is set but the Supabase CLI is not installed")
        pytest.skip("the Supabase CLI is not installed (.ci/run installs it into .local/node): "
                    "pgrollout's order was checked against the CLI's documented rule only")
    name = "c_" + uuid.uuid4().hex[:12]
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    params = cluster.params(name)
    url = (f"postgresql://{params['login_user']}:{params['login_password']}@{params['login_host']}:"
           f"{params['login_port']}/{name}?sslmode=disable")
    pushed = subprocess.run([str(cli), "db", "push", "--db-url", url, "--yes", "--workdir", str(project)],
                            capture_output=True, text=True, timeout=300, cwd=project)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    applied = [line.split("Applying migration ", 1)[1].rstrip(".").split("_", 1)[0]
               for line in (pushed.stdout + pushed.stderr).splitlines() if "Applying migration " in line]
    assert applied == ours
    assert ledger(params) == ledger(empty_db)


def test_every_shipped_inventory_holds_exactly_its_intended_hosts():
    intended = {"dev": ["dev-local"], "staging": [], "prod": ["prod-main"]}
    for env, hosts in intended.items():
        for path in (REPO / "inventories" / env).iterdir():
            assert path.name in ("hosts.yml", "group_vars", "host_vars"), f"{path} is not inventory"
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", f"inventories/{env}",
                               "--list"], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**Playbook.environment(), "ANSIBLE_VAULT_PASSWORD_FILE": str(
                                  REPO / "examples" / "vault-password.example")})
        assert proc.returncode == 0, proc.stderr
        listed = json.loads(proc.stdout)
        found = sorted(h for group, data in listed.items() if group != "_meta" for h in data.get("hosts", []))
        assert found == hosts, (env, found)
        assert not listed.get("ungrouped", {}).get("hosts"), (env, listed["ungrouped"])


def test_make_status_says_when_the_vault_cannot_be_decrypted():
    env = {**Playbook.environment(), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    proc = subprocess.run([sys.executable, "scripts/status_all.py"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)
    assert "prod: could not decrypt the vault" in proc.stdout, proc.stdout + proc.stderr
    assert "ANSIBLE_VAULT_PASSWORD_FILE" in proc.stdout and "staging: no target" in proc.stdout
    assert "prod: no target" not in proc.stdout


def test_a_tls_failure_names_pgrollout_db_ssl_mode(db):
    with pytest.raises(RuntimeError) as failed:
        connection.connect({**db, "ssl_mode": "require"})  # the test server has no TLS
    assert "SSL" in str(failed.value) and "pgrollout_db_ssl_mode" in str(failed.value)


def test_a_no_op_run_verifies_the_applied_specs_and_a_policy_edited_to_using_true_fails_it(playbook, db):
    first = playbook.run()
    assert first.returncode == 0, first.stdout[-3000:]
    second = playbook.run()
    assert second.returncode == 0, second.stdout[-3000:]
    record = playbook.evidence()[-1]
    assert record["outcome"] == "no_change" and record["verification"]["passed"] >= 10  # 003's spec, whole
    # edited by hand (Supabase's dashboard): every signed-in user now reads every bot
    from conftest import execute
    execute(db, "ALTER POLICY bots_select_own ON public.bots USING (true)")
    third = playbook.run()
    assert third.returncode != 0
    record = playbook.evidence()[-1]
    failed = [r["name"] for r in record["verification"]["results"] if r["status"] != "passed"]
    assert "RLS: a user sees only their own bots and API keys" in failed, failed
    assert record["changed"] == [] and "Verification failed" in " ".join(third.stdout.split())


def test_a_run_killed_after_migrate_before_its_record_is_reported_and_does_not_promote(team):
    """Killed after 003 committed (and pg_migrate verified it), before the verify step recorded it: the next
    run (nothing pending) says so, and staging's gate finds no completed dev record of 003."""
    import signal

    dev, staging = team["dev"], team["staging"]
    child = dev.start("rollout.yml", "-e", "pgrollout_backup=false")
    for line in child.stdout:  # the condition: the migrate step ended, 003 committed
        if "Apply the run's files" in line and line.strip().startswith("changed"):
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait()
    assert ledger(dev.params) == ["001", "002", "003"]  # committed, never verified after the commit
    (held,) = query(dev.params, "SELECT run_id FROM pgrollout.lease")

    proc = dev.run()  # nothing pending: no lease taken, the dead one reported
    said = " ".join(proc.stdout.split())
    assert proc.returncode == 0, said[-3000:]
    assert f"run {held[0]}" in said and "did not finish" in said and "003 up" in said, said[-3000:]
    assert "This run verifies the applied specs as they stand now" in said
    record = dev.evidence()[-1]
    assert record["outcome"] == "no_change"
    assert [r["run_id"] for r in record["target"]["unfinished_runs"]] == [held[0]]

    refused = staging.run()
    said = " ".join(refused.stdout.split())
    assert refused.returncode != 0 and "was not rolled out and verified in dev" in said, said[-3000:]
    assert "003_bot_registration_sharing (" in said
    assert ledger(staging.params) == ["001", "002"]
