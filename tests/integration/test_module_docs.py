"""Every module's DOCUMENTATION, EXAMPLES and RETURN render with ansible-doc."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

MODULES = sorted(p.stem for p in (REPO / "library").glob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_the_module(module):
    ansible_doc = Path(sys.executable).parent / "ansible-doc"
    proc = subprocess.run([str(ansible_doc), "--json", "-t", "module", module], cwd=REPO, capture_output=True,
                          text=True, env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[module]
    assert doc["doc"]["short_description"] and doc["doc"]["options"]
    assert yaml.safe_load(doc["examples"]) and doc["return"]
    if module.startswith("pg_"):
        assert doc["doc"]["options"]["login_password"]["default"] == ""  # the shared connection fragment
