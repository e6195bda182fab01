"""Decisions from values, not task names (issue 22): what a stop says, not what its task is called."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, query

# a comparison of a failed task's name (or of the recorded failure's task) with anything
NAME_DECISION = re.compile(r"(failure\.task|failed_task\.name|failed_task\[['\"]name['\"]\])"
                           r"\s*(==|!=|\bin\b|\bnot in\b)")


def yaml_files(root: Path) -> list[Path]:
    return sorted(p for folder in ("playbooks", "roles") for p in (root / folder).rglob("*.yml"))


def test_no_playbook_or_role_decides_by_a_task_name():
    found = [f"{p.relative_to(REPO)}:{n}" for p in [*yaml_files(REPO), REPO / "rollout.yml", REPO / "rollback.yml"]
             for n, line in enumerate(p.read_text().splitlines(), 1) if NAME_DECISION.search(line)]
    assert found == []
    # the grep itself finds what it is for
    assert NAME_DECISION.search("{{ [] if pgrollout_failure.task == 'Stop on warnings nobody acknowledged' }}")


def test_renaming_the_stop_task_keeps_the_decision(playbook, db, tmp_path):
    """A verified migration held for unacknowledged warnings stays applied, whatever the stop task is called."""
    copy = tmp_path / "pgrollout"
    shutil.copytree(REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".local", ".ops", "dist", "node_modules", "__pycache__", ".pytest_cache"))
    stop = copy / "roles" / "verify" / "tasks" / "acknowledge.yml"
    stop.write_text(stop.read_text().replace("- name: Stop on warnings nobody acknowledged",
                                             "- name: Hold the rollout until someone reads the warnings"))
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "supabase" / "migrations", migrations)
    (migrations / "004_t4.sql").write_text("CREATE TABLE public.t4 (id int);\n")
    playbook.set(pgrollout_migrations_dir=str(migrations), pgrollout_require_warning_ack=True,
                 pgrollout_acknowledged_lint=["rls-not-enabled:004_t4.sql"])
    env = dict(playbook.environment(), ANSIBLE_CONFIG=str(copy / "ansible.cfg"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "rollout.yml", "-i",
                           str(playbook.inventory)], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    text = " ".join(proc.stdout.split())
    assert proc.returncode != 0 and "Hold the rollout until someone reads the warnings" in text, text[-3000:]
    record = playbook.evidence()[-1]
    assert record["outcome"] == "failed_not_rolled_back", text[-3000:]
    assert (record["failure"]["kind"], record["failure"]["keep_applied"]) == ("warnings_unacknowledged", True)
    assert query(db, "SELECT to_regclass('public.t4')::text, to_regclass('public.bots')::text") == [("t4", "bots")]
    assert json.loads(json.dumps(record["changed"])) == ["003", "004"]


def test_a_file_edited_between_the_preflight_and_the_apply_is_refused(empty_db, tmp_path):
    from conftest import set_playbook
    from migsets import MigrationSet

    mset = MigrationSet(tmp_path / "set")
    path = mset.add("001", "notes", "CREATE TABLE public.notes (id int PRIMARY KEY);\n", "DROP TABLE public.notes;\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_backup=False)

    def edit() -> None:  # after the preflight read and approved it, before the migrate step reads it again
        path.write_text("CREATE TABLE public.notes (id int PRIMARY KEY);\nDROP TABLE IF EXISTS public.other;\n")

    proc = book.run("rollout.yml", when_printed=("run : Take the run lease (", edit))
    text = " ".join(proc.stdout.split())
    assert proc.returncode != 0 and "changed since the preflight approved it: 001_notes.sql (approved" in text, \
        text[-3000:]
    assert "Nothing was applied" in text
    assert query(empty_db, "SELECT to_regclass('public.notes') IS NULL") == [(True,)]
    assert book.evidence()[-1]["changed"] == []
    ok = book.run()  # run again: the file as it is now is reviewed and applied
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert query(empty_db, "SELECT to_regclass('public.notes') IS NOT NULL") == [(True,)]


def test_the_outcome_reaches_an_awx_workflow_through_set_stats(playbook, db):
    """The evidence step publishes each host's outcome as custom stats (what set_stats does), no extra task."""
    env = playbook.environment(ANSIBLE_SHOW_CUSTOM_STATS="true")
    proc = subprocess.run(playbook.command("rollout.yml"), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    stats = proc.stdout.split("CUSTOM STATS:", 1)[1]
    record = playbook.evidence()[-1]
    assert "pgrollout_outcomes" in stats and "test-target" in stats and record["run_id"] in stats, stats[-2000:]
    assert "succeeded" in stats


def test_a_big_file_is_parsed_once_and_an_edit_after_the_preflight_is_still_refused(empty_db, tmp_path):
    """Issue 22, the plan read once: a forward file reaches pg_migrate with the preflight's parse (statement
    offsets, lines, kinds, the ledger's cut, the lock plan) and is not parsed again - what matters for a big
    one; an edit after the preflight no longer matches that parse, and the approved checksum refuses it."""
    from conftest import set_playbook
    from migsets import MigrationSet
    from pgrollout import sqlfile

    rows = ",".join(f"({i}, 'row {i}; of the \"bulk\" load')" for i in range(400))
    text = ('CREATE TABLE public."Bulk Rows" (id int, note text);\n'
            + "".join(f'-- batch {b}\nINSERT INTO public."Bulk Rows" (id, note) VALUES {rows};\n' for b in range(100))
            + "-- the end of the load\n")
    assert len(text) > 1 << 20
    mset = MigrationSet(tmp_path / "set")
    path = mset.add("001", "bulk rows", text, 'DROP TABLE public."Bulk Rows";\n')
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_backup=False)

    def edit() -> None:  # after the preflight parsed and approved it, before pg_migrate reads it
        path.write_text(text + 'DELETE FROM public."Bulk Rows";\n')

    refused = book.run("rollout.yml", when_printed=("run : Take the run lease (", edit))
    said = " ".join(refused.stdout.split())
    assert refused.returncode != 0 and "changed since the preflight approved it: 001_bulk rows.sql" in said, \
        said[-3000:]
    assert query(empty_db, "SELECT to_regclass('public.\"Bulk Rows\"') IS NULL") == [(True,)]
    path.write_text(text)
    ok = book.run()
    assert ok.returncode == 0, ok.stdout[-3000:]
    (applied,) = book.task_results(ok, "Apply the run's files")
    assert applied["read_once"] == [str(path)]
    assert query(empty_db, 'SELECT count(*) FROM public."Bulk Rows"') == [(40000,)]
    # what the ledger holds is what a full parse of the file gives (the Supabase CLI's cut)
    (recorded,) = query(empty_db, "SELECT statements FROM supabase_migrations.schema_migrations WHERE version = '001'")
    assert recorded[0] == sqlfile.load(str(path)).ledger_statements and len(recorded[0]) == 102
