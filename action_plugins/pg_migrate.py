"""pg_migrate as Ansible runs any module, plus one thing only the controller knows: its own pid.

Under `async:` the module runs detached from ansible-playbook (async_wrapper daemonizes it), so the
ancestor chain it watches before every COMMIT no longer leads to the controller; told the controller's
pid (and checking its start time), a killed ansible-playbook still stops it from committing.
"""
from __future__ import annotations

from typing import Any

from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible_collections.pgrollout.postgresql.plugins.module_utils.controller import ControllerWatch


class ActionModule(NormalAction):
    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._task.async_val and self._connection.transport in ("local", "ansible.builtin.local"):
            pid = ControllerWatch().controller_pid()
            if pid:
                self._task.args = {**self._task.args, "controller_pid": pid}
        return super().run(tmp, task_vars)
