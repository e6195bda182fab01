"""pgrollout's console (callback_plugins/pgrollout.py): a run that fits on a screen, each failure whole."""
from __future__ import annotations

import subprocess

from conftest import REPO, set_playbook
from migsets import MigrationSet, chain

LONG_EXPECTED = "the value this check expects, longer than any cut a console used to make: " + "x" * 40
LONG_ACTUAL = "what the database really holds, just as long, differing only at its very end: " + "y" * 40


def console(book, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    proc = subprocess.run(book.command("rollout.yml", *args), cwd=REPO, capture_output=True, text=True,
                          env=book.environment(ANSIBLE_STDOUT_CALLBACK="pgrollout"), timeout=600)
    return proc, [line for line in proc.stdout.splitlines() if line.strip()]


def test_a_dry_run_and_a_rollout_fit_on_a_screen_and_repeat_no_line(empty_db, tmp_path):
    book = set_playbook(empty_db, chain(tmp_path / "set", 3), tmp_path / "work")
    for args, outcome in ((("--check",), "dry_run"), ((), "succeeded"), ((), "no_change")):
        proc, lines = console(book, *args)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert len(lines) <= 60, "\n".join(lines)  # three files: each with its lock lines
        assert not [x for x in lines if x.startswith(("TASK [", "skipping:", "included:"))]
        assert "Validating arguments" not in proc.stdout
        steps = [x for x in lines if x.rstrip().endswith("s)")]
        assert steps and len(steps) == len(set(steps)), "\n".join(lines)
        assert len([x for x in lines if x.strip().startswith(outcome + " rollout")]) == 1, "\n".join(lines)
        # one line per step with its duration
        assert any("Read the target's state (" in x and x.rstrip().endswith("s)") for x in lines)


def test_a_failing_check_shows_expected_and_actual_whole_and_the_error_once(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "words", "CREATE TABLE words (w text);\n"
             f"INSERT INTO words VALUES ('{LONG_ACTUAL}');\n", "DROP TABLE words;\n",
             spec=f"checks:\n  - name: the word is right\n    sql: SELECT w FROM words\n"
                  f"    expect: {{rows: [['{LONG_EXPECTED}']]}}\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    proc, lines = console(book)
    assert proc.returncode != 0
    text = "\n".join(lines)
    assert LONG_EXPECTED in text and LONG_ACTUAL in text, text
    assert len(lines) <= 60, text
    assert "assertion:" not in text and "_ansible_" not in text
    # the check's failure is said once, however many steps quote it
    assert text.count(LONG_EXPECTED) == 1, text
    assert "Nothing was changed" in text


def test_the_003_rollout_prints_about_forty_lines_with_one_lock_line(playbook, db):
    """Migration 003 with pgrollout's console (ansible.cfg's stdout callback): its ten locks on one line."""
    proc = playbook.run_raw("rollout.yml")
    lines = [x for x in proc.stdout.splitlines() if x.strip()]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(lines) <= 45, "\n".join(lines)  # 10 of them the lint warnings of 003 and its rollback file
    locks = [x for x in lines if x.strip().startswith("locks: ")]
    assert len(locks) == 1 and locks[0].strip().startswith("locks: AccessExclusiveLock on "), "\n".join(lines)
    assert "ShareRowExclusiveLock on auth.users" in locks[0]
    assert not [x for x in lines if x.strip().startswith("lock: ")]
    assert len([x for x in lines if x.strip().startswith("succeeded rollout ")]) == 1
