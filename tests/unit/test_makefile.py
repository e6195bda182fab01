"""make help lists every target the Makefile declares, each with its one line."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_make_help_lists_every_phony_target_with_a_line():
    phony = re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    shown = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    listed = {line.split()[0]: " ".join(line.split()[1:]) for line in shown if line.strip()}
    assert sorted(listed) == sorted(phony)
    assert all(listed.values()), listed
