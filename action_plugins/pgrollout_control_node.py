"""pgrollout_control_node on the control node: the version gate, in the controller's own process."""
from __future__ import annotations

from ansible_collections.pgrollout.postgresql.plugins.module_utils import tools
from ansible_collections.pgrollout.postgresql.plugins.plugin_utils.actions import action

ActionModule = action(tools.ARGUMENT_SPEC, tools.control_node)
