"""Backups you can restore: formats, manifests, retention, restore into the target or a scratch database."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import MIGRATION_003, REPO, execute, query
from pgrollout import backup, connection, migrate, restore, schema, sqlfile
from sessions import Blocker

KB = ["kb_correlations", "kb_lessons_learned", "kb_macro_events", "kb_market_regimes", "kb_patterns"]


def take(params, dest: Path, **opts):
    return backup.dump(params, str(dest), "pre_003", 15, 0, backup.DumpOptions(**opts))


def counts(params) -> dict[str, int]:
    with connection.connect(params) as conn, conn.cursor() as cur:
        return backup.table_rows(cur, [], [])[0]


def snapshot(params):
    with connection.connect(params) as conn, conn.cursor() as cur:
        return schema.snapshot(cur)


def apply_003(params):
    with connection.connect(params) as conn:
        migrate.apply(conn, sqlfile.load(str(MIGRATION_003)))


def rehearsal_databases(params) -> list[str]:
    return [n for (n,) in query(params, "SELECT datname FROM pg_database WHERE datname LIKE 'pgrollout_rehearsal_%'")]


def test_a_good_backup_restores_into_an_empty_database_with_identical_row_counts(db, cluster, tmp_path):
    manifest = take(db, tmp_path)
    assert manifest["table_count"] == len(manifest["row_counts"]) >= 10
    assert manifest["row_counts"]["public.kb_patterns"] == query(db, "SELECT count(*) FROM kb_patterns")[0][0]
    restore.restore_scratch(db, manifest["path"], "pgrollout_restored_here", jobs=2)
    try:
        restored = cluster.params("pgrollout_restored_here")
        assert counts(restored) == manifest["row_counts"] == counts(db)
    finally:
        restore.drop_database(db, "pgrollout_restored_here")


def test_the_manifest_counts_the_dumps_own_snapshot_under_concurrent_writes(db, tmp_path):
    stop = threading.Event()

    def write():
        with connection.connect(db, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO kb_patterns (name, pattern_type) VALUES ('w', 'x')")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.2)
        manifest = take(db, tmp_path)
    finally:
        stop.set()
        writer.join()
    assert manifest["row_counts"]["public.kb_patterns"] < query(db, "SELECT count(*) FROM kb_patterns")[0][0]
    result = restore.rehearse(db, manifest["path"])
    assert result["differences"] == {} and result["tables"] == manifest["table_count"]
    assert rehearsal_databases(db) == []


def test_a_rehearsal_that_finds_a_difference_fails_and_still_drops_its_database(db, tmp_path):
    manifest = take(db, tmp_path)
    data = json.loads(Path(manifest["manifest"]).read_text())
    data["row_counts"]["public.kb_patterns"] += 1
    Path(manifest["manifest"]).write_text(json.dumps(data))
    with pytest.raises(backup.BackupError, match=r"1 table\(s\) differ from the dump: public.kb_patterns 4 -> 3"):
        restore.rehearse(db, manifest["path"])
    assert rehearsal_databases(db) == []


def test_a_directory_archive_with_parallel_jobs_verifies_and_is_rejected_without_a_data_file(db, tmp_path):
    manifest = take(db, tmp_path, format="directory", jobs=2)
    archive = Path(manifest["path"])
    assert archive.is_dir() and manifest["files"] and oct(archive.stat().st_mode & 0o777) == "0o700"
    backup.verify_archive(str(archive), db)
    data_file = next(p for p in archive.iterdir() if p.name != "toc.dat" and p.stat().st_size > 0)
    saved = data_file.read_bytes()
    data_file.unlink()
    with pytest.raises(backup.BackupError, match=rf"differs from its manifest: missing \['{data_file.name}'\]"):
        backup.trusted_manifest(str(archive))
    with pytest.raises(backup.BackupError, match="validation of .* failed"):
        backup.validate_archive(str(archive), db)  # the full read alone catches it too
    data_file.write_bytes(saved)
    backup.verify_archive(str(archive), db)


def test_a_plain_dump_is_validated_by_its_closing_line(db, tmp_path):
    manifest = take(db, tmp_path, format="plain")
    assert manifest["path"].endswith(".sql") and "closing line" in manifest["validated"]
    archive = Path(manifest["path"])
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(backup.BackupError, match="does not end with pg_dump's"):
        backup.validate_archive(str(archive), db)


def test_damaged_archives_are_refused_before_the_target_is_touched(db, tmp_path):
    manifest = take(db, tmp_path)
    apply_003(db)
    before = snapshot(db)
    archive = Path(manifest["path"])
    good = archive.read_bytes()
    for damaged in (good[: len(good) // 2], good[:100] + bytes([good[100] ^ 1]) + good[101:]):
        archive.write_bytes(damaged)
        with pytest.raises(backup.BackupError, match="sha256 mismatch"):
            restore.restore_target(db, str(archive))
        assert snapshot(db) == before


def test_retention_keeps_the_newest_archives(db, tmp_path):
    paths = []
    for _ in range(3):
        paths.append(take(db, tmp_path, keep=2))
        time.sleep(1.1)  # archive names carry the second
    assert paths[-1]["removed"] == [paths[0]["path"]]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([Path(m["path"]).name for m in paths[1:]] + [Path(m["manifest"]).name for m in paths[1:]])


def test_too_little_free_space_is_refused_before_pg_dump_runs(db, tmp_path):
    with pytest.raises(backup.BackupError, match="bytes free; the database is .* free_space_factor 1e"):
        backup.dump(db, str(tmp_path), "x", 15, 10**9, backup.DumpOptions(free_space_factor=10**9))
    assert os.listdir(tmp_path) == []


def test_the_password_is_never_in_any_process_arguments_during_a_dump(db, tmp_path):
    seen: list[str] = []
    with Blocker(db, "public.kb_patterns", mode="ACCESS EXCLUSIVE") as blocker:
        dumper = threading.Thread(target=take, args=(db, tmp_path))
        dumper.start()
        released = False
        while dumper.is_alive():
            seen += subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
            if not released and any("pg_dump" in line for line in seen):
                blocker.release()  # pg_dump waited on the lock until it was seen running
                released = True
            time.sleep(0.05)
    assert any("pg_dump" in line for line in seen), "the dump was never seen running"
    assert not [line for line in seen if db["login_password"] in line]


def test_a_restore_into_the_target_returns_the_exact_pre_migration_state(db, tmp_path):
    before, rows_before = snapshot(db), counts(db)
    manifest = take(db, tmp_path)
    apply_003(db)
    execute(db, "INSERT INTO kb_patterns (name, pattern_type) VALUES ('after the backup', 'x')")
    plan = restore.plan(db, manifest["path"], [], [])
    assert "TABLE public.bots" in plan["drop_first"] and "SCHEMA private" in plan["drop_first"]
    restore.restore_target(db, manifest["path"], run_id="the-restoring-run")
    assert snapshot(db) == before
    # every table as at the backup but pgrollout's history, which keeps 003's apply and gains the restore, and
    # its catalog snapshots (003's and the restore's)
    history_before = rows_before.pop("pgrollout.history")
    snapshots_before = rows_before.pop("pgrollout.catalog_snapshots")
    rows_now = counts(db)
    assert rows_now.pop("pgrollout.history") == history_before + 2
    assert rows_now.pop("pgrollout.catalog_snapshots") == snapshots_before + 2 and rows_now == rows_before
    assert query(db, "SELECT direction, run_id FROM pgrollout.history ORDER BY id DESC LIMIT 2") == [
        ("restore", "the-restoring-run"), ("up", None)]
    assert query(db, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1") == [("001",), ("002",)]


def test_a_restore_that_cannot_get_its_locks_rolls_back_and_leaves_the_target_as_it_was(db, tmp_path):
    manifest = take(db, tmp_path)
    apply_003(db)
    before = snapshot(db)
    with Blocker(db, "public.kb_macro_events", mode="ACCESS SHARE"), \
            pytest.raises(backup.BackupError, match="rolled back, the target is unchanged.*lock timeout"):
        restore.restore_target(db, manifest["path"], lock_timeout="500ms")
    assert snapshot(db) == before


def test_a_selective_restore_reloads_only_the_named_tables(db, tmp_path):
    manifest = take(db, tmp_path)
    execute(db, "DELETE FROM kb_patterns; DELETE FROM kb_correlations")
    restore.restore_target(db, manifest["path"], tables=["public.kb_patterns"])
    assert query(db, "SELECT count(*) FROM kb_patterns")[0][0] == manifest["row_counts"]["public.kb_patterns"]
    assert query(db, "SELECT count(*) FROM kb_correlations") == [(0,)]


def test_the_restore_module_in_check_mode_lists_what_it_would_do_and_changes_nothing(db, tmp_path):
    manifest = take(db, tmp_path)
    apply_003(db)
    before = snapshot(db)
    args = {**{k: db[k] for k in ("login_host", "login_port", "login_user", "login_db", "ssl_mode")},
            "archive": manifest["path"], "login_password": "{{ pg_password }}"}
    # the password travels in a vars file, never on the command line
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible"), "localhost", "--check", "-m", "pg_restore",
                           "-a", json.dumps(args), "-e", f"ansible_python_interpreter={sys.executable}",
                           "-e", "@" + str(write_secret(tmp_path, db["login_password"]))],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                                   ANSIBLE_LOCALHOST_WARNING="false"))
    assert proc.returncode == 0, proc.stdout
    assert "checksum verified; would restore" in proc.stdout
    assert "- TABLE public.bots" in proc.stdout and "writes_since_backup: false" in proc.stdout
    assert snapshot(db) == before


def write_secret(folder: Path, password: str) -> Path:
    path = folder / "secret.json"
    path.write_text(json.dumps({"pg_password": password}))
    return path
