"""pgrollout_stop on the control node: fail the run with a kind the rescue decides from (stops.py)."""
from __future__ import annotations

from ansible_collections.pgrollout.postgresql.plugins.module_utils import stops
from ansible_collections.pgrollout.postgresql.plugins.plugin_utils.actions import action

ActionModule = action(stops.ARGUMENT_SPEC, stops.stop)
