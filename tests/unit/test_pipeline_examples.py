"""The pipeline examples: valid against the platforms' published schemas (vendored by check-jsonschema,
offline), and every command they call exists in this repository."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}


def commands(document: object) -> list[str]:
    """Every shell line of a workflow or pipeline: GitHub's `run`, GitLab's script lists."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "run" and isinstance(value, str):
                found += value.splitlines()
            elif key in ("script", "before_script") and isinstance(value, list):
                found += [v for v in value if isinstance(v, str)]
            else:
                found += commands(value)
    elif isinstance(document, list):
        for value in document:
            found += commands(value)
    return found


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_example_validates_against_its_platforms_schema(name):
    proc = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                           EXAMPLES[name], str(REPO / "examples" / "ci" / name)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_command_the_example_calls_exists_here(name):
    lines = commands(yaml.safe_load((REPO / "examples" / "ci" / name).read_text()))
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    called = {"make": set(), "script": set(), "playbook": set(), "inventory": set()}
    for line in lines:
        called["make"] |= set(re.findall(r"(?:^|&&\s*)make ([a-z][a-z-]*)", line.strip()))
        called["script"] |= set(re.findall(r"\b(scripts/[\w.-]+)", line))
        called["playbook"] |= set(re.findall(r"pgrollout-run (\S+\.yml)", line))
        called["inventory"] |= set(re.findall(r"-i (inventories/\w+)", line))
    assert called["make"] and called["script"] and called["playbook"] and called["inventory"]
    assert called["make"] <= targets, called["make"] - targets
    for path in called["script"] | called["playbook"] | called["inventory"]:
        assert (REPO / path).exists(), path
    # the promotion gate needs the earlier environments' evidence: every stage passes .ops/evidence on
    assert ".ops/evidence/" in (REPO / "examples" / "ci" / name).read_text()
