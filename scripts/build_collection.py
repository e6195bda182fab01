#!/usr/bin/env python3
"""Build the collection tarball from this tree: dist/<namespace>-<name>-<version>.tar.gz.

The same sources as the repository, placed where a collection keeps them:
library/ -> plugins/modules, module_utils/pgrollout -> plugins/module_utils,
doc_fragments -> plugins/doc_fragments, action_plugins -> plugins/action,
roles/, playbooks/, and pgrollout's own files the roles read (the security
audit spec, the Supabase compatibility layer). The modules import either
location (try/except), so their code is not rewritten; the doc fragment names
and the module_defaults keys get the collection's prefix (ansible-doc and
module_defaults resolve names without the play's collection).

    .venv/bin/python scripts/build_collection.py [--output-path dist]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
FRAGMENT_RE = re.compile(r"^extends_documentation_fragment: \[(.*)\]$", re.MULTILINE)


def qualify_module_defaults(text: str, modules: set[str], fqcn: str) -> str:
    """module_defaults keys resolve without the play's collection: give our modules' keys the FQCN."""
    lines, inside = [], None
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip())
        if inside is not None and line.strip() and indent <= inside:
            inside = None
        key = line.strip().split(":", 1)[0]
        if inside is not None and key in modules and line.strip().startswith(key + ":"):
            line = line.replace(key + ":", f"{fqcn}.{key}:", 1)
        if line.strip() == "module_defaults:":
            inside = indent
        lines.append(line)
    return "\n".join(lines)


def check_runtime(staging: Path, modules: Path, fqcn: str) -> None:
    """meta/runtime.yml's action group lists exactly the modules that take the connection options."""
    connected = sorted(p.stem for p in modules.glob("*.py") if re.search(
        rf"^extends_documentation_fragment: \[{re.escape(fqcn)}\.pgrollout[,\]]", p.read_text(), re.MULTILINE))
    listed = sorted(yaml.safe_load((staging / "meta" / "runtime.yml").read_text())["action_groups"]["database"])
    if listed != connected:
        raise SystemExit(f"meta/runtime.yml: action group database lists {listed}, the modules with connection "
                         f"options are {connected}: update it")


def runtime_requirements() -> list[str]:
    """The Python packages the modules need: requirements.txt's "# Runtime" section, not the test tools."""
    lines, inside = [], False
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.startswith("#"):
            inside = line.strip() == "# Runtime"
        elif inside and line.strip() and not line.startswith("ansible-core"):
            lines.append(line.strip())
    return lines


def declare_dependencies(staging: Path) -> None:
    """requirements.txt, bindep.txt and meta/execution-environment.yml: what ansible-builder introspects."""
    (staging / "requirements.txt").write_text(
        "# pgrollout.postgresql's Python dependencies (ansible-builder introspect reads them)\n"
        + "\n".join(runtime_requirements()) + "\n")
    shutil.copy2(REPO / "bindep.txt", staging / "bindep.txt")
    (staging / "meta").mkdir(parents=True, exist_ok=True)
    (staging / "meta" / "execution-environment.yml").write_text(
        "---\nversion: 1\ndependencies:\n  python: requirements.txt\n  system: bindep.txt\n")


def assemble(staging: Path, fqcn: str) -> None:
    copies = {"roles": "roles", "playbooks": "playbooks", "supabase/compat": "supabase/compat",
              "module_utils/pgrollout": "plugins/module_utils", "doc_fragments": "plugins/doc_fragments",
              "action_plugins": "plugins/action", "callback_plugins": "plugins/callback"}
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source, target in copies.items():
        shutil.copytree(REPO / source, staging / target, ignore=ignore)
    (staging / "verification").mkdir()
    shutil.copy2(REPO / "verification" / "security_audit.yml", staging / "verification")
    for name in ("galaxy.yml", "README.md", "CHANGELOG.md", "LICENSE", "meta/runtime.yml"):
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, staging / name)
    declare_dependencies(staging)
    modules = staging / "plugins" / "modules"
    modules.mkdir(parents=True)
    for path in sorted((REPO / "library").glob("*.py")):
        text = FRAGMENT_RE.sub(lambda m: "extends_documentation_fragment: [" + ", ".join(
            f"{fqcn}.{f.strip()}" for f in m.group(1).split(",")) + "]", path.read_text())
        (modules / path.name).write_text(text)
    names = {p.stem for p in modules.glob("*.py")}
    for path in [*(staging / "playbooks").glob("*.yml"), *(staging / "roles").glob("*/tasks/*.yml")]:
        path.write_text(qualify_module_defaults(path.read_text(), names, fqcn))
    check_runtime(staging, modules, fqcn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-path", default=str(REPO / "dist"))
    args = parser.parse_args(argv)
    meta = yaml.safe_load((REPO / "galaxy.yml").read_text())
    fqcn = f"{meta['namespace']}.{meta['name']}"
    with tempfile.TemporaryDirectory(prefix="pgrollout-collection-") as tmp:
        staging = Path(tmp) / fqcn
        assemble(staging, fqcn)
        galaxy = Path(sys.executable).parent / "ansible-galaxy"
        proc = subprocess.run([str(galaxy), "collection", "build", "--force", "--output-path", args.output_path,
                               str(staging)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return proc.returncode
    tarball = Path(args.output_path) / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"
    print(tarball)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
