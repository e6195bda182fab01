"""pgrollout_preflight on the control node: read the target (pg_facts, one module process) and judge it.

One task for what were five: the configured host and password, pg_facts, its
time mark and the verdict (verdict.py). Given `facts`, it only judges them.
"""
from __future__ import annotations

import datetime
import os
from typing import Any

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.pgrollout.postgresql.plugins.module_utils import evidence, verdict
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC
from ansible_collections.pgrollout.postgresql.plugins.plugin_utils.ticker import Ticker

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _unused, args = self.validate_argument_spec(argument_spec={**verdict.ACTION_SPEC, **CONNECTION_ARGUMENT_SPEC})
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
        # a big file takes a while to parse and review: a line every progress_seconds while it does
        with Ticker(self._task.get_name().strip(), lambda: reading(args["read"]), args["progress_seconds"],
                    display.display):
            facts = self._execute_module(module_name=self._sibling("pg_facts"),
                                         module_args={**conn, **args["read"]}, task_vars=task_vars)
        if facts.get("failed"):
            result.update(facts)
        else:
            result.update(verdict.judged(args, facts), started_at=started)
        return result

    def _sibling(self, module: str) -> str:
        """pg_facts from where this action came: the collection's (pgrollout.postgresql.) or the repository's."""
        namespace, _unused, _unused = self._task.action.rpartition(".")
        return f"{namespace}.{module}" if namespace and namespace != "ansible.legacy" else module


def reading(read: dict[str, Any]) -> str:
    """What the preflight is reading, said while it reads: the migration files' count and size."""
    folder = str(read.get("migrations_dir") or "")
    try:
        sizes = [e.stat().st_size for e in os.scandir(folder) if e.is_file() and e.name.endswith(".sql")]
    except OSError:
        sizes = []
    return (f"preflight: reading the target's ledger and catalog, parsing and reviewing the migration files "
            f"({len(sizes)} in {folder}, {sum(sizes) / 1048576:.1f} MB)")
