"""rollout.yml and rollback.yml on migration sets nobody here wrote, starting from an empty database."""
from __future__ import annotations

from test_engine import schema_dump

from conftest import Playbook, query, set_playbook
from migsets import mixed


def test_an_updown_set_with_non_transactional_files_goes_forward_back_and_forward_again(empty_db, tmp_path):
    mset = mixed(tmp_path / "set", "updown")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    dry = book.run("rollout.yml", "--check")  # the first run on an empty database: no ledger yet
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert "not dry-runnable" in dry.stdout and query(empty_db, "SELECT to_regclass('\"Accounts\"')") == [(None,)]

    first = book.run()
    assert first.returncode == 0, first.stdout[-3000:]
    forward = schema_dump(empty_db)
    record = book.evidence()[-1]
    assert [m["version"] for m in record["migrations"]] == ["001", "002", "003", "004", "005"]
    assert record["unverified"] == ["001", "002", "003", "004", "005"]  # dev: allowed, recorded

    back = book.run("rollback.yml", "-e", "pgrollout_rollback_to=001")
    assert back.returncode == 0, back.stdout[-3000:]
    assert [(m["version"], m["direction"]) for m in book.evidence()[-1]["migrations"]] == [
        ("005", "down"), ("004", "down"), ("003", "down"), ("002", "down")]
    assert query(empty_db, "SELECT version FROM supabase_migrations.schema_migrations") == [("001",)]

    again = book.run()
    assert again.returncode == 0, again.stdout[-3000:]
    assert schema_dump(empty_db) == forward
    nothing = book.run()
    assert nothing.returncode == 0 and Playbook.stats(nothing)["changed"] == 0
