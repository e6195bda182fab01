#!/usr/bin/env python3
"""Build the collection tarball from this tree: dist/<namespace>-<name>-<version>.tar.gz.

The same sources as the repository, placed where a collection keeps them
(the repository's collections/ view links the same places): library/ ->
plugins/modules, module_utils/pgrollout -> plugins/module_utils, plugin_utils
-> plugins/plugin_utils, doc_fragments -> plugins/doc_fragments,
action_plugins -> plugins/action, callback_plugins -> plugins/callback,
roles/, playbooks/, scripts/pgrollout-run (the exit codes), the unit tests and
the sanity ignore file, and
pgrollout's own files the roles read (the security audit spec, the Supabase
compatibility layer). Nothing is rewritten: the modules, plugins, roles and
playbooks use the collection's names (one import path) in both places.

    .venv/bin/python scripts/build_collection.py [--output-path dist] [--repository URL]
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


def check_runtime(staging: Path, modules: Path, fqcn: str) -> None:
    """meta/runtime.yml's action group lists exactly the modules that take the connection options."""
    connected = sorted(p.stem for p in modules.glob("*.py") if re.search(
        rf"^extends_documentation_fragment: \[{re.escape(fqcn)}\.pgrollout[,\]]", p.read_text(), re.MULTILINE))
    listed = sorted(yaml.safe_load((staging / "meta" / "runtime.yml").read_text())["action_groups"]["database"])
    if listed != connected:
        raise SystemExit(f"meta/runtime.yml: action group database lists {listed}, the modules with connection "
                         f"options are {connected}: update it")


def check_metadata(meta: dict) -> None:
    """galaxy.yml says only what is true: no placeholder address (example.*, *.invalid, localhost)."""
    for key in ("repository", "documentation", "homepage", "issues"):
        url = str(meta.get(key) or "")
        if re.search(r"//([^/]*\.)?(example\.(com|org|net)|[^/]*\.invalid|localhost)(/|$)", url):
            raise SystemExit(f"galaxy.yml: {key} is a placeholder ({url}): set the project's real address or "
                             "leave the key out")


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


def role_readme(role: Path, fqcn: str) -> str:
    """A role's README.md (Galaxy's importer refuses a role without one), from its argument spec: the one place
    its options are written."""
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    lines = [f"# {fqcn}.{role.name}", ""]
    for entry, spec in specs.items():
        lines += [spec.get("short_description", ""), ""] + [" ".join(spec.get("description") or [])]
        lines += ["", f"Entry point `{entry}`: `ansible-doc -t role {fqcn}.{role.name}` shows it whole.", ""]
        options = spec.get("options") or {}
        if options:
            lines += ["| option | type | default | description |", "|---|---|---|---|"]
        for name, option in options.items():
            default = option.get("default", "(required)" if option.get("required") else "")
            text = option.get("description", "")
            text = " ".join(text) if isinstance(text, list) else str(text)
            shown = str(default).lower() if isinstance(default, bool) else default
            cell = f"`{shown}`" if default not in ("", "(required)") else default
            lines.append(f"| `{name}` | {option.get('type', 'str')} | {cell} | {text.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def assemble(staging: Path, fqcn: str) -> None:
    copies = {"roles": "roles", "playbooks": "playbooks", "supabase/compat": "supabase/compat",
              "library": "plugins/modules", "module_utils/pgrollout": "plugins/module_utils",
              "plugin_utils": "plugins/plugin_utils", "lookup_plugins": "plugins/lookup",
              "doc_fragments": "plugins/doc_fragments",
              "action_plugins": "plugins/action", "callback_plugins": "plugins/callback",
              "tests/unit/plugins": "tests/unit/plugins", "tests/sanity": "tests/sanity", "changelogs": "changelogs"}
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source, target in copies.items():
        shutil.copytree(REPO / source, staging / target, ignore=ignore)
    # the pipelines' exit codes travel with the collection (AWX reads set_stats; a shell pipeline this)
    (staging / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "pgrollout-run", staging / "scripts" / "pgrollout-run")
    (staging / "verification").mkdir()
    shutil.copy2(REPO / "verification" / "security_audit.yml", staging / "verification")
    # .yamllint: the generated changelogs/*.yaml keep antsibull-changelog's own layout (ansible-lint reads it)
    for name in ("galaxy.yml", "README.md", "CHANGELOG.md", "LICENSE", "meta/runtime.yml", ".yamllint"):
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, staging / name)
    for role in sorted((staging / "roles").iterdir()):
        (role / "README.md").write_text(role_readme(role, fqcn))
    declare_dependencies(staging)
    check_runtime(staging, staging / "plugins" / "modules", fqcn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-path", default=str(REPO / "dist"))
    parser.add_argument("--repository", help="the published repository's address, written into the built "
                                             "galaxy.yml (Galaxy requires one; this tree's galaxy.yml has none)")
    args = parser.parse_args(argv)
    meta = yaml.safe_load((REPO / "galaxy.yml").read_text())
    fqcn = f"{meta['namespace']}.{meta['name']}"
    check_metadata(meta)
    with tempfile.TemporaryDirectory(prefix="pgrollout-collection-") as tmp:
        staging = Path(tmp) / fqcn
        assemble(staging, fqcn)
        if args.repository:
            with (staging / "galaxy.yml").open("a") as built:
                built.write(f"repository: {args.repository}\n")
        galaxy = Path(sys.executable).parent / "ansible-galaxy"
        proc = subprocess.run([str(galaxy), "collection", "build", "--force", "--output-path", args.output_path,
                               str(staging)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return proc.returncode
    tarball = Path(args.output_path) / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"
    print(tarball)
    return 0


def install_collection(base: Path) -> Path:
    """The collection as a user installs it: built from this tree into base/dist, installed into
    base/collections (returned; the collection itself is base/collections/ansible_collections/<ns>/<name>)."""
    if main(["--output-path", str(base / "dist")]) != 0:
        raise SystemExit("building the collection failed (above)")
    tarball = next((base / "dist").glob("*.tar.gz"))
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    # --force: from inside this repository its collections/ view counts as installed already
    proc = subprocess.run([str(galaxy), "collection", "install", "--force", "--no-deps", "-p",
                           str(base / "collections"), str(tarball)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"installing {tarball} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return base / "collections"


if __name__ == "__main__":
    raise SystemExit(main())
