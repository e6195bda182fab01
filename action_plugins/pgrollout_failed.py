"""pgrollout_failed on the control node: a rescue's record of the failure and what it rolls back (stops.py)."""
from __future__ import annotations

from ansible_collections.pgrollout.postgresql.plugins.module_utils import stops
from ansible_collections.pgrollout.postgresql.plugins.plugin_utils.actions import action

ActionModule = action(stops.FAILED_SPEC, stops.failed)
