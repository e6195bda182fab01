"""pgrollout_root's default: the project's, never the folder an inventory file lies in."""
from __future__ import annotations

from ansible_collections.pgrollout.postgresql.plugins.plugin_utils.project import project_root


def layout(tmp_path):
    package = tmp_path / "pgrollout"
    (package / "playbooks").mkdir(parents=True)
    project = tmp_path / "project"
    (project / "supabase" / "migrations").mkdir(parents=True)
    (project / "inventories" / "prod").mkdir(parents=True)
    (project / "playbooks").mkdir()
    return str(package), project


def test_the_projects_own_playbook_decides_even_in_a_subfolder(tmp_path):
    package, project = layout(tmp_path)
    elsewhere = tmp_path / "runner" / "inventory"
    elsewhere.mkdir(parents=True)
    assert project_root(package, str(project), str(elsewhere), "/") == str(project)
    assert project_root(package, str(project / "playbooks"), None, "/") == str(project)


def test_pgrollouts_playbooks_take_the_inventories_layout_then_the_working_directory(tmp_path):
    package, project = layout(tmp_path)
    ours = f"{package}/playbooks"
    assert project_root(package, ours, str(project / "inventories" / "prod"), "/") == str(project)
    # AWX / ansible-runner: the inventory in the private data dir, the job started in the project
    runner = tmp_path / "runner" / "inventory"
    runner.mkdir(parents=True)
    assert project_root(package, ours, str(runner), str(project)) == str(project)


def test_the_collections_playbooks_are_not_the_project(tmp_path):
    package, project = layout(tmp_path)
    installed = tmp_path / "collections" / "ansible_collections" / "pgrollout" / "postgresql" / "playbooks"
    installed.mkdir(parents=True)
    assert project_root(str(installed.parent), str(installed), str(tmp_path), str(project)) == str(project)
