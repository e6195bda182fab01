"""pgrollout_control_node on the control node: the version gate, in the controller's own process."""
from __future__ import annotations

import os
import sys

_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if os.path.isdir(os.path.join(_UTILS, "pgrollout")):  # this repository
    sys.path.insert(0, _UTILS)
    from pgrollout import tools
    from pgrollout.actions import action
else:  # the collection pgrollout.postgresql
    from ansible_collections.pgrollout.postgresql.plugins.module_utils import tools
    from ansible_collections.pgrollout.postgresql.plugins.module_utils.actions import action

ActionModule = action(tools.ARGUMENT_SPEC, tools.control_node)
