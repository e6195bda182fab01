"""Where a run's project is: its migrations, specs, evidence and backups (pgrollout_root's default).

Decided from the project, never from where an inventory file happens to lie
(AWX and ansible-runner keep the inventory in the job's private data dir):

1. the project's own playbook - its folder (or the nearest folder above it
   holding supabase/ or inventories/), when it is not one of pgrollout's
   playbooks (this repository's playbooks/ or the installed collection's);
2. the folder above inventories/<env>/, when the inventory is laid out so
   (this repository, or a project run with pgrollout's playbooks);
3. the job's working directory: AWX and ansible-runner start a job in the
   project's folder, and so does an operator who runs pgrollout's playbooks
   from the project.
"""
from __future__ import annotations

import os

PROJECT_MARKERS = ("supabase", "inventories")


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _marked(folder: str) -> str | None:
    """folder or the nearest folder above it that holds a project's supabase/ or inventories/."""
    current = os.path.realpath(folder)
    while True:
        if any(os.path.isdir(os.path.join(current, marker)) for marker in PROJECT_MARKERS):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def project_root(package_dir: str, playbook_dir: str | None, inventory_dir: str | None, cwd: str) -> str:
    """The project's root folder (see the module's docstring for the order)."""
    ours = bool(playbook_dir) and (_inside(playbook_dir, package_dir) or
                                   f"{os.sep}ansible_collections{os.sep}" in os.path.realpath(playbook_dir))
    if playbook_dir and not ours:
        return _marked(playbook_dir) or os.path.realpath(playbook_dir)
    if inventory_dir and os.path.basename(os.path.dirname(os.path.realpath(inventory_dir))) == "inventories":
        return os.path.dirname(os.path.dirname(os.path.realpath(inventory_dir)))
    return os.path.realpath(cwd)
