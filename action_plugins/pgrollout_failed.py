"""pgrollout_failed on the control node: a rescue's record of the failure and what it rolls back (stops.py)."""
from __future__ import annotations

import os
import sys

_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if os.path.isdir(os.path.join(_UTILS, "pgrollout")):  # this repository
    sys.path.insert(0, _UTILS)
    from pgrollout import stops
    from pgrollout.actions import action
else:  # the collection pgrollout.postgresql
    from ansible_collections.pgrollout.postgresql.plugins.module_utils import stops
    from ansible_collections.pgrollout.postgresql.plugins.module_utils.actions import action

ActionModule = action(stops.FAILED_SPEC, stops.failed)
