"""pgrollout_gates on the control node: the change window and the promotion evidence (which the controller
wrote) judged in the controller's own process - no module to start."""
from __future__ import annotations

import os
import sys

_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if os.path.isdir(os.path.join(_UTILS, "pgrollout")):  # this repository
    sys.path.insert(0, _UTILS)
    from pgrollout import gates
    from pgrollout.actions import action
else:  # the collection pgrollout.postgresql
    from ansible_collections.pgrollout.postgresql.plugins.module_utils import gates
    from ansible_collections.pgrollout.postgresql.plugins.module_utils.actions import action

# a dry run reports the refusals without failing (gates.judge), as the module does
ActionModule = action(gates.ARGUMENT_SPEC, gates.judge, check_mode=True)
