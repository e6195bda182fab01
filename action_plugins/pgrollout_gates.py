"""pgrollout_gates on the control node: the change window and the promotion evidence (which the controller
wrote) judged in the controller's own process - no module to start."""
from __future__ import annotations

import os
import sys
from typing import Any

from ansible.plugins.action import ActionBase

_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if os.path.isdir(os.path.join(_UTILS, "pgrollout")):  # this repository
    sys.path.insert(0, _UTILS)
    from pgrollout import gates
else:  # the collection pgrollout.postgresql
    from ansible_collections.pgrollout.postgresql.plugins.module_utils import gates


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=gates.ARGUMENT_SPEC)
        result.update(gates.judge(args, bool(self._play_context.check_mode)))
        return result
