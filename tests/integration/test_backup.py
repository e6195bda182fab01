"""pg_dump archives: written atomically, validated by a full read, restorable."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import query
from pgrollout import backup, connection

KB = ["kb_correlations", "kb_lessons_learned", "kb_macro_events", "kb_market_regimes", "kb_patterns"]


def kb_counts(params):
    return {t: query(params, f"SELECT count(*) FROM public.{t}")[0][0] for t in KB}


def take(params, dest: Path):
    return backup.dump(params, str(dest), "pre_003", 15)


def test_backup_restores_into_an_empty_database_with_the_same_rows(db, empty_db, tmp_path):
    manifest = take(db, tmp_path / "b")
    archive = Path(manifest["path"])
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o700
    assert manifest["sha256"] == backup.sha256_of(str(archive))
    assert json.loads(Path(manifest["manifest"]).read_text())["sha256"] == manifest["sha256"]
    assert not [p for p in os.listdir(tmp_path / "b") if p.endswith(".partial")]
    # pg_restore needs the roles the dump grants to: they are cluster-wide, so present.
    with connection.client_environment(empty_db) as env:
        subprocess.run(["pg_restore", "--no-password", "--exit-on-error", "-d", empty_db["login_db"],
                        str(archive)], env=env, check=True, capture_output=True)
    assert kb_counts(empty_db) == kb_counts(db)
    assert all(n > 0 for n in kb_counts(db).values())
    assert query(empty_db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [
        ("001",), ("002",)]


def test_a_good_archive_verifies(db, tmp_path):
    manifest = take(db, tmp_path)
    assert backup.verify_archive(manifest["path"], db)["sha256"] == manifest["sha256"]


def test_a_truncated_archive_fails_the_full_read(db, tmp_path):
    archive = Path(take(db, tmp_path)["path"])
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(backup.BackupError, match="validation of .* failed"):
        backup.validate_archive(str(archive), db)
    with pytest.raises(backup.BackupError, match="sha256 mismatch"):
        backup.verify_archive(str(archive), db)


def test_a_flipped_byte_that_a_full_read_misses_is_caught_by_the_checksum(db, tmp_path):
    archive = Path(take(db, tmp_path)["path"])
    data = bytearray(archive.read_bytes())
    data[data.index(b"CREATE TABLE public.kb_patterns") + 7] ^= 0x20  # DDL text in the TOC
    archive.write_bytes(bytes(data))
    backup.validate_archive(str(archive), db)  # pg_restore reads it without complaint
    with pytest.raises(backup.BackupError, match="sha256 mismatch"):
        backup.verify_archive(str(archive), db)


def test_an_archive_without_its_manifest_is_not_trusted(db, tmp_path):
    manifest = take(db, tmp_path)
    os.unlink(manifest["manifest"])
    with pytest.raises(backup.BackupError, match="cannot be trusted"):
        backup.verify_archive(manifest["path"], db)


def test_a_failed_dump_fails_with_pg_dumps_message_and_leaves_no_file(db, tmp_path):
    with pytest.raises(backup.BackupError, match="pg_dump failed.*no matching tables were found"):
        backup.dump(db, str(tmp_path), "x", 15, opts=backup.DumpOptions(tables=["no_such_table"]))
    assert os.listdir(tmp_path) == []


def test_an_older_pg_dump_than_the_server_is_refused(db, tmp_path):
    with pytest.raises(backup.BackupError, match="cannot dump a PostgreSQL 99 server"):
        backup.dump(db, str(tmp_path), "x", 99)
