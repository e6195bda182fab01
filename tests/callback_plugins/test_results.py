"""Test-only callback: writes every task result and the stats as JSON to $PGROLLOUT_TEST_RESULTS."""
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: test_results
type: aggregate
short_description: Write task results and stats as JSON for the test suite
description: Writes to the file named by the PGROLLOUT_TEST_RESULTS environment variable.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "test_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[dict] = []

    def _record(self, result, status: str) -> None:  # noqa: ANN001
        self.tasks.append({"task": result._task.get_name(), "host": result._host.get_name(),
                           "status": status, "result": result._result})

    def v2_runner_on_ok(self, result) -> None:  # noqa: ANN001
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:  # noqa: ANN001
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result) -> None:  # noqa: ANN001
        self._record(result, "skipped")

    def v2_playbook_on_stats(self, stats) -> None:  # noqa: ANN001
        summary = {host: stats.summarize(host) for host in stats.processed}
        with open(os.environ["PGROLLOUT_TEST_RESULTS"], "w") as handle:
            json.dump({"tasks": self.tasks, "stats": summary}, handle, default=str)
