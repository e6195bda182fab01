"""A line every few seconds while a controller-side step waits for its module.

An action plugin that runs its module itself (`_execute_module`) is not an
async task, so Ansible polls nothing and the console says nothing until the
module ends. While the module runs in the worker's main thread, a ticker
thread says a line through Ansible's Display (which a worker hands to the
main process, so the console, `-v` and AWX's events get it), in the form the
pgrollout console gives an async poll: `   ... <task> (<N>s): <what>`.
A step quicker than one interval says nothing.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..module_utils.progress import Progress


class Ticker(Progress):
    """Progress said through `say` (Display), each line in the console's poll form with the time elapsed."""

    def __init__(self, task: str, what: Callable[[], str], every: float, say: Callable[[str], object]) -> None:
        self.task, self._started = task, time.monotonic()
        super().__init__(lambda: f"   ... {task} ({time.monotonic() - self._started:.0f}s): {what()}", every, say)

    def unread(self, exc: Exception) -> str:
        return f"   ... {self.task}: {super().unread(exc)}"

    @property
    def said(self) -> list[str]:
        return self.lines
