"""pgrollout_gates on the control node: the change window and the promotion evidence (which the controller
wrote) judged in the controller's own process - no module to start."""
from __future__ import annotations

from ansible_collections.pgrollout.postgresql.plugins.module_utils import gates
from ansible_collections.pgrollout.postgresql.plugins.plugin_utils.actions import action

# a dry run reports the refusals without failing (gates.judge), as the module does
ActionModule = action(gates.ARGUMENT_SPEC, gates.judge, check_mode=True)
