"""pgrollout_preflight on the control node: read the target (pg_facts, one module process) and judge it.

One task for what were five: the configured host and password, pg_facts, its
time mark and the verdict (verdict.py). Given `facts`, it only judges them.
"""
from __future__ import annotations

import datetime
import os
import sys
from typing import Any

from ansible.plugins.action import ActionBase

_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if os.path.isdir(os.path.join(_UTILS, "pgrollout")):  # this repository
    sys.path.insert(0, _UTILS)
    from pgrollout import evidence, verdict
    from pgrollout.connection import CONNECTION_ARGUMENT_SPEC
else:  # the collection pgrollout.postgresql
    from ansible_collections.pgrollout.postgresql.plugins.module_utils import evidence, verdict
    from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec={**verdict.ACTION_SPEC, **CONNECTION_ARGUMENT_SPEC})
        args["target"] = args["target"] or task_vars.get("inventory_hostname", "")
        if args["facts"] is not None:  # judge facts read before
            result.update(verdict.verdict(args))
            return result
        # the controller's clock, as every other step's mark
        started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if args["evidence_dir"]:
            try:
                evidence.probe(args["evidence_dir"])
            except OSError as exc:
                result.update(failed=True, msg=evidence.unwritable(args["evidence_dir"], exc))
                return result
        refused = verdict.unconfigured(args, args["target"], args["environment"])
        if refused:
            result.update(refused)
            return result
        conn = {k: args[k] for k in CONNECTION_ARGUMENT_SPEC if args[k] is not None}
        facts = self._execute_module(module_name=self._sibling("pg_facts"), module_args={**conn, **args["read"]},
                                     task_vars=task_vars)
        if facts.get("failed"):
            result.update(facts)
        else:
            result.update(verdict.judged(args, facts), started_at=started)
        return result

    def _sibling(self, module: str) -> str:
        """pg_facts from where this action came: the collection's (pgrollout.postgresql.) or the repository's."""
        namespace, _, _ = self._task.action.rpartition(".")
        return f"{namespace}.{module}" if namespace and namespace != "ansible.legacy" else module
