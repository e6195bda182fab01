"""What the collection build writes and refuses: role READMEs from the argument specs, no placeholder metadata."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import build_collection  # noqa: E402 - a script, not a package


@pytest.mark.parametrize("url", ["https://example.invalid/pgrollout", "https://example.com/x",
                                 "http://localhost/repo", "https://git.corp.invalid/db/pgrollout"])
def test_a_placeholder_address_in_galaxy_yml_is_refused(url):
    with pytest.raises(SystemExit, match="placeholder"):
        build_collection.check_metadata({"repository": url})


def test_a_real_address_or_none_passes():
    build_collection.check_metadata({"repository": "https://github.com/acme/pgrollout"})
    build_collection.check_metadata(yaml.safe_load((REPO / "galaxy.yml").read_text()))


@pytest.mark.parametrize("role", sorted(p.name for p in (REPO / "roles").iterdir()))
def test_each_role_readme_names_every_option_of_its_spec(role):
    said = build_collection.role_readme(REPO / "roles" / role, "pgrollout.postgresql")
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert said.startswith(f"# pgrollout.postgresql.{role}\n")
    for entry, spec in specs.items():
        assert f"Entry point `{entry}`" in said and spec["short_description"] in said
        for option in spec.get("options") or {}:
            assert f"| `{option}` |" in said, (role, entry, option)


@pytest.mark.parametrize("role", sorted(p.name for p in (REPO / "roles").iterdir()))
def test_each_role_has_the_metadata_galaxy_reads(role):
    info = yaml.safe_load((REPO / "roles" / role / "meta" / "main.yml").read_text())["galaxy_info"]
    assert info["description"].strip() and info["license"] == "MIT"
