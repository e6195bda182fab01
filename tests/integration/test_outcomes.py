"""Every outcome a run can end in, produced through scripts/pgrollout-run: its exit code, the one-line
.outcome file, the evidence JSON and the run's JUnit file."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import REPO, query
from pgrollout import evidence

WRAPPER = REPO / "scripts" / "pgrollout-run"


def run(playbook, *args: str) -> tuple[int, str, dict]:
    proc = subprocess.run([sys.executable, str(WRAPPER), "rollout.yml", "-i", str(playbook.inventory), *args],
                          cwd=REPO, env=playbook.environment(), capture_output=True, text=True, timeout=600)
    newest = max(playbook.evidence_dir.glob("*.outcome"), key=lambda p: p.stat().st_mtime_ns)
    line = newest.read_text().strip()
    # the wrapper prints what the runs appended to its log: the same line
    assert f"  {line}" in proc.stdout.splitlines(), proc.stdout[-2000:]
    return proc.returncode, line, json.loads(Path(line.rsplit("evidence=", 1)[1]).read_text())


def test_each_outcome_has_its_line_its_record_and_its_exit_code(playbook, db, tmp_path):
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "supabase" / "migrations", migrations)
    key = "evidence-signing-key-from-the-vault"
    playbook.set(pgrollout_migrations_dir=str(migrations), pgrollout_evidence_signing_key=key)

    code, line, record = run(playbook, "--check")
    assert (code, line.split()[0], record["outcome"]) == (0, "dry_run", "dry_run")

    window = {"days": ["mon"], "start": "10:00", "end": "11:00", "timezone": "UTC"}
    code, line, record = run(playbook, "-e", json.dumps({"pgrollout_change_window": window,
                                                         "pgrollout_now": "2026-12-01T12:00:00+00:00"}))
    assert (code, record["outcome"]) == (10, "refused")
    assert 'refused_by="Check the backup requirement, the change window and the promotion evidence"' in line
    assert query(db, "SELECT to_regclass('public.bots')") == [(None,)]

    code, line, record = run(playbook)
    assert (code, record["outcome"]) == (0, "succeeded") and " changed=003 " in line
    checks = record["verification"]["results"] + record["audit"]["results"]
    suite = ET.parse(Path(line.rsplit("evidence=", 1)[1]).with_suffix(".junit.xml")).getroot()
    cases = [(c.get("classname").split(".")[0], c.get("name")) for c in suite.iter("testcase")]
    # one case per migration and one per check, each check by its name
    assert cases == [("migrations", "003_bot_registration_sharing")] + [
        ("verification", r["name"]) for r in record["verification"]["results"]] + [
        ("audit", r["name"]) for r in record["audit"]["results"]]
    assert suite.get("tests") == str(1 + len(checks)) and suite.get("failures") == "0"
    assert f"checks={len(checks)}/{len(checks)}" in line

    code, line, record = run(playbook)
    assert (code, record["outcome"], record["changed"]) == (0, "no_change", [])

    (migrations / "004_t4.sql").write_text("CREATE TABLE public.t4 (id int);\nALTER TABLE public.t4\n"
                                           "  ADD COLUMN y nosuchtype;\n")
    code, line, record = run(playbook)
    assert (code, record["outcome"]) == (11, "failed_rolled_back")  # the file's transaction undid it
    assert query(db, "SELECT to_regclass('public.t4')") == [(None,)]
    suite = ET.parse(Path(line.rsplit("evidence=", 1)[1]).with_suffix(".junit.xml")).getroot()
    assert [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None] == [
        "004_t4", "rollout finished"]
    # the schema Jenkins and GitLab use: errors counted; failure messages are text, not a Python dict's repr
    assert suite.get("errors") == "0"
    message = next(c for c in suite.iter("testcase") if c.get("name") == "004_t4").find("failure").get("message")
    assert "nosuchtype" in message and not message.startswith("{"), message

    # applied, then stopped by a warning nobody acknowledged: still applied, the most urgent outcome
    (migrations / "004_t4.sql").write_text("CREATE TABLE public.t4 (id int);\n")
    code, line, record = run(playbook, "-e", json.dumps({
        "pgrollout_require_warning_ack": True, "pgrollout_acknowledged_lint": ["rls-not-enabled:004_t4.sql"]}))
    assert (code, record["outcome"]) == (12, "failed_not_rolled_back") and " changed=004 " in line
    assert query(db, "SELECT to_regclass('public.t4')::text") == [("t4",)]
    outcomes = [p.read_text().split()[0] for p in sorted(playbook.evidence_dir.glob("*.outcome"),
                                                         key=lambda p: p.stat().st_mtime_ns)]
    assert outcomes == ["dry_run", "refused", "succeeded", "no_change", "failed_rolled_back",
                        "failed_not_rolled_back"]
    # every record signed with the key, which appears in none of the files
    assert all(evidence.verified(r, key) for r in playbook.evidence())
    assert not any(key in p.read_text() for p in playbook.evidence_dir.iterdir())
