"""Every command of the README's shell blocks, as written, on a fresh clone (issue 18).

The dev path is walked in the order a newcomer takes it; every other command is listed with the reason
it is not walked here (a remote target, CI itself, a benchmark). A README command in neither list fails
the test, so the README and this walk cannot drift apart.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import localpg
from conftest import REPO

# The dev path in a newcomer's order, each command as the README writes it (<env> is dev here)
WALK = [
    "make rollout",
    "make lint-migrations",
    "make status",
    "ansible-playbook rollback.yml -i inventories/<env> --check --diff",
    "ansible-playbook rollback.yml -i inventories/<env>",
    "make new-migration NAME=add_bot_notes",
    "$EDITOR supabase/migrations/004_add_bot_notes.sql supabase/rollbacks/004_add_bot_notes_rollback.sql",
    "make spec VERSION=004",
    "make dry-run",
    "ansible-playbook rehearse.yml -i inventories/dev",
    "make rollout",
    "ansible-playbook rollback.yml -i inventories/<env> -e pgrollout_rollback_to=002",
]
NOT_WALKED = {
    "inventories/prod": "needs the prod Supabase project (the example inventory's host is not reachable here)",
    "inventories/staging": "needs a staging server (the example inventory has no host yet)",
    "make test": "is what CI runs; this walk is part of it",
    "molecule": "Molecule's scenarios are their own CI step (make molecule)",
    "ansible-galaxy collection install": "Galaxy is unreachable here; test_collection installs the built collection",
    "pgrollout.postgresql.": "runs from the installed collection (test_collection)",
    "make db-prepare": "prepares a plain server of another environment (staging has no host here); prepare.yml "
                       "itself runs on test databases in test_supabase_shaped",
    "PGROLLOUT_EXTENSION_STUBS": "restarts the dev server with the extension stubs; a cluster with them runs in "
                                 "test_supabase_shaped (test_extension_stubs_...)",
}
EDITED = {  # what the newcomer writes with $EDITOR
    "supabase/migrations/004_add_bot_notes.sql": "ALTER TABLE public.bots ADD COLUMN notes text;\n",
    "supabase/rollbacks/004_add_bot_notes_rollback.sql": "ALTER TABLE public.bots DROP COLUMN notes;\n",
}


def readme_commands() -> list[str]:
    """Each command of the README's and the guide's ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    text = "\n".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs" / "guide").glob("*.md"))])
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        pending = ""
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            pending += line + " "
            try:  # a quoted argument may span lines
                words = shlex.split(pending, comments=True)
            except ValueError:
                continue
            pending = ""
            if words:
                commands.append(" ".join(shlex.quote(w) if w != "$EDITOR" else w for w in words))
    return commands


def normal(command: str) -> str:
    return " ".join(shlex.split(command, comments=True))


def test_every_readme_command_is_walked_or_says_why_not():
    walked = {normal(c) for c in WALK}
    written = {normal(c) for c in readme_commands()}
    assert walked <= written, f"walked but not in the README: {sorted(walked - written)}"
    unclassified = [c for c in readme_commands() if normal(c) not in walked
                    and not any(marker in c for marker in NOT_WALKED)]
    assert unclassified == [], "README commands neither walked nor listed in NOT_WALKED"


@pytest.fixture
def clone():
    base = Path(tempfile.mkdtemp(prefix="pgrollout-walk-"))
    os.chmod(base, 0o755)  # the dev cluster runs as the postgres OS user, which must reach its data
    subprocess.run(["git", "clone", "-q", str(REPO), str(base / "repo")], check=True)
    yield base / "repo"
    subprocess.run(["make", "db-stop", f"VENV={REPO / '.venv'}"], cwd=base / "repo", capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def test_the_readme_dev_path_runs_as_written_on_a_fresh_clone(clone):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PGROLLOUT_DEVDB_PORT": str(localpg.free_port()), "ANSIBLE_CONFIG": str(clone / "ansible.cfg")}
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    for command in WALK:
        if command.startswith("$EDITOR"):
            for path, text in EDITED.items():
                (clone / path).write_text(text)
            continue
        words = shlex.split(command.replace("<env>", "dev"))
        if words[0] == "make":  # this repository's venv, so the walk does not install it again
            words.append(f"VENV={REPO / '.venv'}")
        proc = subprocess.run(words, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    spec = (clone / "verification" / "004_add_bot_notes.yml").read_text()
    assert "notes" in spec  # make spec wrote checks of what 004 changed
