"""pg_migrate as Ansible runs any module, told the controller's pid under async (plugin_utils/actions.py)."""
from __future__ import annotations

from ansible_collections.pgrollout.postgresql.plugins.plugin_utils.actions import with_controller_pid

ActionModule = with_controller_pid()
