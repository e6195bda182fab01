"""Controller-side actions: a module's work done in the controller's own process (no module to start).

Used by the action plugins whose work needs no database: the result of
`run(args)` is the task's result, its arguments checked against the spec;
with `check_mode=True`, `run(args, check_mode)` is told whether the play runs
in check mode, as a module's `module.check_mode`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def with_controller_pid() -> type:
    """The normal action plus one thing only the controller knows: its own pid (pg_migrate, pg_restore).

    Under `async:` the module runs detached from ansible-playbook (async_wrapper daemonizes it), so the
    ancestor chain it watches before its COMMIT no longer leads to the controller; told the controller's pid
    (and checking its start time), a killed ansible-playbook still stops it from committing.
    """
    from ansible.plugins.action.normal import ActionModule as NormalAction

    from ..module_utils.controller import ControllerWatch

    class ActionModule(NormalAction):
        def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
            if self._task.async_val and self._connection.transport in ("local", "ansible.builtin.local"):
                pid = ControllerWatch().controller_pid()
                if pid:
                    self._task.args = {**self._task.args, "controller_pid": pid}
            return super().run(tmp, task_vars)

    return ActionModule


def action(argument_spec: dict[str, Any], run: Callable[..., dict[str, Any]], *, check_mode: bool = False) -> type:
    from ansible.plugins.action import ActionBase

    class ActionModule(ActionBase):
        TRANSFERS_FILES = False
        _requires_connection = False

        def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
            result = super().run(tmp, task_vars)
            _unused, args = self.validate_argument_spec(argument_spec=argument_spec)
            result.update(run(args, bool(self._play_context.check_mode)) if check_mode else run(args))
            return result

    return ActionModule
