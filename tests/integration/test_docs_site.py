"""The docs site (issue 23): it builds with no broken link, and every setting a user meets is documented."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

BUILD = [sys.executable, str(REPO / "scripts" / "build_docs.py")]
SPECS = REPO / "roles" / "pgrollout" / "meta" / "argument_specs.yml"


def documented() -> dict[str, str]:
    """Each variable role pgrollout's argument spec documents (every entry point), with its description."""
    specs = yaml.safe_load(SPECS.read_text())["argument_specs"]
    return {name: " ".join(o["description"]) if isinstance(o.get("description"), list) else o.get("description", "")
            for spec in specs.values() for name, o in spec["options"].items()}


def assigned(node: object) -> set[str]:
    """Names a play or role sets for itself (register, set_fact, vars, loop_var): run state, not settings."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "register" and isinstance(value, str):
                found.add(value)
            elif key in ("ansible.builtin.set_fact", "vars") and isinstance(value, dict):
                found |= set(value)
            elif key == "loop_control" and isinstance(value, dict) and "loop_var" in value:
                found.add(value["loop_var"])
            found |= assigned(value)
    elif isinstance(node, list):
        for item in node:
            found |= assigned(item)
    return found


def user_facing(root: Path) -> set[str]:
    """pgrollout_* variables the plays, roles, group_vars and inventories read that nothing in them sets."""
    folders = ("playbooks", "roles", "group_vars", "inventories")
    files = [p for folder in folders for p in (root / folder).rglob("*.yml")]
    files += sorted(root.glob("*.yml"))
    modules = {p.stem for p in (REPO / "library").glob("*.py")}
    used, state = set(), set()
    for path in files:
        text = path.read_text()
        used |= set(re.findall(r"\bpgrollout_[a-z0-9_]*[a-z0-9]\b", text))
        if not {"defaults", "group_vars", "inventories", "meta"} & set(path.relative_to(root).parts):
            state |= assigned(yaml.safe_load(text))
    return used - state - modules - {"pgrollout_rehearsal"}  # the scratch database's name prefix


def test_every_variable_a_user_meets_is_documented():
    docs = documented()
    missing = sorted(user_facing(REPO) - set(docs))
    assert missing == [], f"document these in {SPECS.relative_to(REPO)}: {missing}"
    assert not [n for n, d in docs.items() if not d.strip()]


def test_the_variable_check_finds_an_undocumented_setting(tmp_path):
    shutil.copytree(REPO / "playbooks", tmp_path / "playbooks")
    (tmp_path / "playbooks" / "extra.yml").write_text(
        "- name: A play reading a new setting\n  hosts: all\n  tasks:\n"
        "    - name: Show it\n      ansible.builtin.debug:\n        msg: \"{{ pgrollout_brand_new_knob }}\"\n")
    assert "pgrollout_brand_new_knob" in user_facing(tmp_path) - set(documented())


def test_the_site_builds_with_every_module_role_and_setting(tmp_path):
    proc = subprocess.run([*BUILD, "--output", str(tmp_path / "site")], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    site = tmp_path / "site"
    reference = site / "reference" / "collections" / "pgrollout" / "postgresql"
    for module in (REPO / "library").glob("*.py"):
        page = reference / f"{module.stem}_module.html"
        assert page.exists(), page
    for role in (REPO / "roles").iterdir():
        if (role / "meta" / "argument_specs.yml").exists():
            assert (reference / f"{role.name}_role.html").exists(), role.name
    settings = (site / "reference" / "settings.html").read_text()
    for name in documented():
        assert f'id="{name.replace("_", "-")}"' in settings, name
    # a setting an environment changes says so, with the value
    entry = settings.split('id="pgrollout-require-rollback-confirmation"', 1)[1].split("<section", 1)[0]
    assert "prod" in entry and "default" in entry, entry
    for page in ("concepts", "environments", "day-two", "adopting", "awx-and-pipelines", "troubleshooting"):
        assert (site / "guide" / f"{page}.html").exists(), page


def test_a_broken_link_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    page = docs / "guide" / "troubleshooting.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    proc = subprocess.run([*BUILD, "--docs", str(docs), "--output", str(tmp_path / "site")], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode != 0
    assert "no-such-page" in proc.stdout + proc.stderr
