"""pgrollout_stop on the control node: fail the run with a kind the rescue decides from (stops.py)."""
from __future__ import annotations

import os
import sys
from typing import Any

from ansible.plugins.action import ActionBase

_REPO_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if os.path.isdir(os.path.join(_REPO_UTILS, "pgrollout")):  # this repository: module_utils/pgrollout
    sys.path.insert(0, _REPO_UTILS)
    from pgrollout import stops
else:  # installed as the collection pgrollout.postgresql
    from ansible_collections.pgrollout.postgresql.plugins.module_utils import stops


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=stops.ARGUMENT_SPEC)
        result.update(stops.stop(args))
        return result
