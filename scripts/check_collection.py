#!/usr/bin/env python3
"""The built collection as Galaxy, Automation Hub and its users check it, offline.

Builds the tarball (scripts/build_collection.py), installs it into a scratch
collections tree and runs there: `ansible-test sanity` (every test; the
ignore file tests/sanity/ignore-2.19.txt gives each exception its reason),
`ansible-test units` (tests/unit/plugins, shipped in the collection) and
ansible-lint's production profile; the tarball goes through galaxy-importer, the
check Galaxy and Automation Hub run on upload (any warning but the one naming
the ignore file fails it). ansible-test's pip bootstrap is served
from a local stand-in (scripts/ansible_test_get_pip.py; its download host is
unreachable here). Exit status: 0 when all four pass.

    .venv/bin/python scripts/check_collection.py [--keep DIR]
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from build_collection import install_collection
from build_collection import main as build_main

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PIP_VERSION = "24.2"  # ansible-test's pinned bootstrap pip (ansible_test/_internal/python_requirements.py)


def serve_pip_bootstrap() -> None:
    """~/.ansible/test/cache/get_pip_<version>.py and the pip wheel it installs from."""
    cache = Path.home() / ".ansible" / "test" / "cache"
    wheels = cache / "pip-wheels"
    if not glob.glob(str(wheels / f"pip-{PIP_VERSION}-*.whl")):
        subprocess.run([str(BIN / "pip"), "download", "--quiet", "--no-deps", "--dest", str(wheels),
                        f"pip=={PIP_VERSION}"], check=True)
    shutil.copy2(REPO / "scripts" / "ansible_test_get_pip.py",
                 cache / f"get_pip_{PIP_VERSION.replace('.', '_')}.py")


def run(step: str, cmd: list[str], cwd: Path, env: dict[str, str]) -> bool:
    print(f"== {step}: {' '.join(cmd)}", flush=True)
    ok = subprocess.run(cmd, cwd=cwd, env=env, check=False).returncode == 0
    print(f"== {step}: {'passed' if ok else 'FAILED'}", flush=True)
    return ok


# galaxy-importer says this of any collection that keeps an ignore file: ours gives each line its reason
KNOWN_WARNING = "Ignore files skip ansible-test sanity tests"


# galaxy-importer refuses metadata without a repository before it checks anything else; galaxy.yml has none
# until the project is published, so the importer checks a build that names this stand-in (and says so)
STAND_IN_REPOSITORY = "https://stand-in.invalid/pgrollout-no-published-address"


def importer_build(root: Path) -> Path:
    """The tarball galaxy-importer checks: the one built, or (galaxy.yml naming no repository) one with the
    stand-in address."""
    if yaml.safe_load((REPO / "galaxy.yml").read_text()).get("repository"):
        return next((root / "dist").glob("*.tar.gz"))
    print(f"== galaxy-importer checks a build naming the stand-in repository {STAND_IN_REPOSITORY} (a STUB: "
          "galaxy.yml names none; publishing needs the real address, build_collection.py --repository URL)",
          flush=True)
    if build_main(["--output-path", str(root / "importer"), "--repository", STAND_IN_REPOSITORY]) != 0:
        raise SystemExit("building the collection for galaxy-importer failed (above)")
    return next((root / "importer").glob("*.tar.gz"))


def galaxy_import(tarball: Path, cwd: Path, env: dict[str, str]) -> bool:
    """galaxy-importer on the built tarball: its exit status and its warnings (a role without a README or
    metadata, docs ansible-doc cannot load) both count."""
    cmd = [str(BIN / "python"), "-m", "galaxy_importer.main", str(tarball)]
    print(f"== galaxy-importer: {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    said = (proc.stdout + proc.stderr).splitlines()
    warnings = [x for x in said if x.startswith(("WARNING", "ERROR")) and KNOWN_WARNING not in x]
    print("\n".join(x for x in said if not x.startswith("Loading ")), flush=True)
    ok = proc.returncode == 0 and not warnings
    print(f"== galaxy-importer: {'passed' if ok else 'FAILED: ' + '; '.join(warnings)}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", help="install into this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    serve_pip_bootstrap()
    root = Path(args.keep or tempfile.mkdtemp(prefix="pgrollout-collection-check-"))
    try:
        collections = install_collection(root)
        installed = collections / "ansible_collections" / "pgrollout" / "postgresql"
        # ansible-test takes its file list from git where there is a repository; an installed collection is none
        subprocess.run(["git", "init", "-q", str(installed)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), PATH=f"{BIN}:{os.environ.get('PATH', '')}")
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        results = [
            run("ansible-test sanity", [str(BIN / "ansible-test"), "sanity", "--local", "--python", python,
                                        "--color", "no"], installed, env),
            run("ansible-test units", [str(BIN / "ansible-test"), "units", "--local", "--python", python,
                                       "--color", "no"], installed, env),
        ]
        shutil.rmtree(installed / "tests" / "output", ignore_errors=True)  # ansible-test's reports, not the collection
        lint = [str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor"]
        if not yaml.safe_load((REPO / "galaxy.yml").read_text()).get("repository"):
            print("== galaxy.yml has no repository address: set it before publishing (ansible-lint's "
                  "galaxy[no-repository] is a warning here, and galaxy-importer's)", flush=True)
            lint += ["--warn-list", "galaxy[no-repository]"]
        results.append(run("ansible-lint (production)", lint, installed, env))
        results.append(galaxy_import(importer_build(root), root, env))
        return 0 if all(results) else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
