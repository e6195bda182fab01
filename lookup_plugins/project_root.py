"""The project's root for pgrollout_root's default: decided in Python (plugin_utils/project.py)."""
from __future__ import annotations

DOCUMENTATION = r"""
name: project_root
author: pgrollout developers (@pgrollout)
version_added: "0.4.0"
short_description: The project's root folder (migrations, specs, evidence, backups)
description:
  - The project's own playbook's folder (or the nearest folder above it holding C(supabase/) or
    C(inventories/)) when the play is not one of pgrollout's; else the folder above C(inventories/<env>/)
    when the inventory is laid out so; else the job's working directory (AWX and ansible-runner start a job
    in the project's folder). Never the folder an inventory file happens to lie in.
options:
  _terms:
    description: pgrollout's own folder (C(pgrollout_package_dir)), whose playbooks are not the project's.
    required: true
"""

EXAMPLES = r"""
- name: Show the project's root
  ansible.builtin.debug:
    msg: "{{ lookup('pgrollout.postgresql.project_root', pgrollout_package_dir) }}"
"""

RETURN = r"""
_raw:
  description: The project's root folder, one element.
  type: list
  elements: str
"""

# ansible-test: the documentation before any import (ruff: E402 allowed here, pyproject.toml)
import os
from typing import Any

from ansible.plugins.lookup import LookupBase
from ansible_collections.pgrollout.postgresql.plugins.plugin_utils.project import project_root


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
        variables = variables or {}
        return [project_root(str(terms[0]), variables.get("playbook_dir"), variables.get("inventory_dir"),
                             os.getcwd())]
