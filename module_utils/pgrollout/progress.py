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
    """Calls `read()` every `every` seconds while a step runs and writes its line into the job file; without
    `read`, only what the step says itself (`say`)."""

    def __init__(self, read: Callable[[], str] | None = None, every: float = 5.0) -> None:
        self.read, self.every = read, every
        self.job = _job()
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Progress:
        if self.job and self.read:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()  # no write after this: the wrapper writes the final result

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.say(self.read())
            except Exception:  # noqa: BLE001 - a progress line never fails the step it reports on
                continue

    def say(self, line: str) -> None:
        if not self.job:
            return
        path, jid = self.job
        self.lines.append(line)
        temporary = path + ".progress"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"started": 1, "finished": 0, "ansible_job_id": jid, "progress": line}, handle)
        os.replace(temporary, path)
