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

import threading
import time
from collections.abc import Callable
from types import TracebackType


class Ticker:
    def __init__(self, task: str, what: Callable[[], str], every: float, say: Callable[[str], object]) -> None:
        self.task, self.what, self.every, self.say = task, what, every, say
        self.said: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> Ticker:
        if self.every > 0:
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()  # nothing said after the step's own result

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                line = f"   ... {self.task} ({time.monotonic() - self._started:.0f}s): {self.what()}"
            except Exception as exc:  # noqa: BLE001 - a progress line never fails the step it reports on
                line = f"   ... {self.task}: still running ({type(exc).__name__} while saying what)"
            self.said.append(line)
            self.say(line)
