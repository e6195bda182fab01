"""A long step's progress, where Ansible's own async poll reads it.

A task run with `async:` and `poll:` is polled by Ansible with async_status,
which returns the job's status file as it stands while the job runs. A module
under async_wrapper rewrites that file (atomically, as the wrapper does) with
a `progress` line, so every poll - the console, `-v`, AWX's job events - shows
it. Not under async (no job file found): nothing is written, nothing changes.
"""
from __future__ import annotations

import glob
import json
import os
import re
import threading
from collections.abc import Callable


def _job() -> tuple[str, str] | None:
    """(job file, jid) of the async job running this module: async_wrapper's argv is jid, limit, module."""
    directory = os.environ.get("ANSIBLE_ASYNC_DIR")
    if not directory:
        return None
    from .controller import ancestors

    for pid in ancestors()[:4]:  # the wrapper is the module's parent (or an AnsiballZ layer's)
        found = _job_of(pid, directory)
        if found:
            return found
    return None


def _job_of(pid: int, directory: str) -> tuple[str, str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return None
    for i, arg in enumerate(argv[:-1]):
        if "async_wrapper" in os.path.basename(arg) and re.fullmatch(r"j?\d+", argv[i + 1]):
            # the job's id is that argument and the wrapper's first pid (gone since): its one status file
            found = [p for p in glob.glob(os.path.join(glob.escape(os.path.expanduser(directory)), argv[i + 1] + ".*"))
                     if re.fullmatch(r"j?\d+\.\d+", os.path.basename(p))]
            if len(found) == 1:
                return found[0], os.path.basename(found[0])
    return None


class Progress:
    """Calls `read()` every `every` seconds while a step runs and says its line: into the job file, or to
    `sink` where one is given (the preflight's Display); without `read`, only what the step says itself."""

    def __init__(self, read: Callable[[], str] | None = None, every: float = 5.0,
                 sink: Callable[[str], object] | None = None) -> None:
        self.read, self.every, self.sink = read, every, sink
        self.job = None if sink else _job()
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Progress:
        if (self.job or self.sink) and self.read and self.every > 0:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()  # no line after this: the step's own result comes next

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                line = self.read()
            except Exception as exc:  # noqa: BLE001 - a progress line never fails the step it reports on
                line = self.unread(exc)
            self.say(line)

    def unread(self, exc: Exception) -> str:
        """The line when `read` failed: the step still runs, and the last line may no longer be true."""
        return f"still running ({type(exc).__name__} while saying what)"

    def say(self, line: str) -> None:
        if self.sink is None and not self.job:
            return
        self.lines.append(line)
        if self.sink is not None:
            self.sink(line)
            return
        path, jid = self.job
        temporary = path + ".progress"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"started": 1, "finished": 0, "ansible_job_id": jid, "progress": line}, handle)
        os.replace(temporary, path)
