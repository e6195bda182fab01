"""CHANGELOG.md is what antsibull-changelog generates from changelogs/ (fragments and releases), not hand-written."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# antsibull-changelog runs in the collection's root: this repository's view of it (collections/)
ROOT = REPO / "collections" / "ansible_collections" / "pgrollout" / "postgresql"
TOOL = Path(sys.executable).parent / "antsibull-changelog"


def test_the_fragments_and_releases_pass_antsibull_changelog_lint():
    proc = subprocess.run([str(TOOL), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_changelog_md_is_what_antsibull_changelog_generates(tmp_path):
    out = tmp_path / "CHANGELOG.md"
    proc = subprocess.run([str(TOOL), "generate", "--output", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_text() == (REPO / "CHANGELOG.md").read_text(), "CHANGELOG.md was edited by hand: add a fragment"
