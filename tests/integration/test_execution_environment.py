"""The AWX execution environment: ansible-builder turns execution-environment.yml into a build context
holding the collection tarball of this tree, the runtime's Python packages and PostgreSQL's client tools.
No image is built: no registry is reachable here."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

BIN = Path(sys.executable).parent


def test_ansible_builder_creates_a_build_context_with_the_collection_and_the_runtime(tmp_path):
    definition = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    tarball = f"pgrollout-postgresql-{version}.tar.gz"
    # the definition names the tarball of galaxy.yml's version (a version bump must update both)
    assert [f["src"] for f in definition["additional_build_files"]] == [f"dist/{tarball}"]
    shutil.copy2(REPO / "execution-environment.yml", tmp_path)
    built = subprocess.run([sys.executable, str(REPO / "scripts" / "build_collection.py"), "--output-path",
                            str(tmp_path / "dist")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    context = tmp_path / "context"
    created = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml",
                              "--context", str(context), "--output-filename", "Containerfile"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert created.returncode == 0, created.stdout + created.stderr
    build = context / "_build"
    assert (build / "collections" / tarball).read_bytes() == (tmp_path / "dist" / tarball).read_bytes()
    assert yaml.safe_load((build / "requirements.yml").read_text())["collections"] == [
        {"name": f"/build/collections/{tarball}", "type": "file"}]
    # the definition does not repeat the collection's dependencies: the build introspects them (below)
    assert not (build / "requirements.txt").exists() or "psycopg" not in (build / "requirements.txt").read_text()
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.20' in containerfile
    assert "dnf -y module enable postgresql:15" in containerfile
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile


def test_ansible_builder_introspect_lists_the_collections_dependencies(tmp_path):
    """What an execution environment built from the collection alone installs: ansible-builder introspect."""
    built = subprocess.run([sys.executable, str(REPO / "scripts" / "build_collection.py"), "--output-path",
                            str(tmp_path / "dist")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    installed = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--force", "-p",
                                str(tmp_path / "collections"), *map(str, (tmp_path / "dist").glob("*.tar.gz"))],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    found = subprocess.run([str(BIN / "ansible-builder"), "introspect", str(tmp_path / "collections")],
                           capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    deps = yaml.safe_load(found.stdout.split("---", 1)[1])
    python = [line.split("#")[0].strip() for line in deps["python"]]
    assert python == ["psycopg[binary]>=3.2,<3.4", "jmespath>=1.0,<2", "pglast>=7,<8", "squawk-cli==2.70.0"]
    system = [line.split("#")[0].strip() for line in deps["system"]]
    assert "postgresql [platform:rpm]" in system and "postgresql-client [platform:dpkg]" in system
    # the same pins as this repository's own requirements.txt: one list, not two
    ours = (REPO / "requirements.txt").read_text()
    assert all(line in ours for line in python)
