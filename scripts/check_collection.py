#!/usr/bin/env python3
"""The built collection as Galaxy, Automation Hub and its users check it, offline.

Builds the tarball (scripts/build_collection.py), installs it into a scratch
collections tree and runs there: `ansible-test sanity` (every test; the
ignore file tests/sanity/ignore-2.19.txt gives each exception its reason),
`ansible-test units` (tests/unit/plugins, shipped in the collection) and
ansible-lint's production profile. ansible-test's pip bootstrap is served
from a local stand-in (scripts/ansible_test_get_pip.py; its download host is
unreachable here). Exit status: 0 when all three pass.

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

from build_collection import install_collection

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
        results.append(run("ansible-lint (production)", [str(BIN / "ansible-lint"), "--offline", "--profile",
                                                         "production", "--nocolor"], installed, env))
        return 0 if all(results) else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
