"""Is the ansible-playbook that started this module still there?

Killed with SIGKILL, ansible-playbook leaves its worker (and this module under
it) running as an orphan, re-parented to pid 1 or a subreaper: measured, such
an orphan committed a migration 15 s later with no evidence written. A module
records its chain of ancestor pids when it starts and, before every COMMIT,
checks that the chain is unchanged; if any ancestor died, it rolls back.
"""
from __future__ import annotations

import os


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (state, ppid, ...; field 3 on); [] when gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            # pid (comm) state ppid ...; comm may hold spaces and parentheses
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def ancestors(pid: int | None = None) -> list[int]:
    """Parent, grandparent, ... up to (not including) pid 1."""
    chain, current = [], pid or os.getpid()
    for _unused in range(64):
        parent = _parent(current) if os.path.isdir("/proc") else (os.getppid() if current == os.getpid() else None)
        if not parent or parent == 1:
            break
        chain.append(parent)
        current = parent
    return chain


def _started(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat): a pid reused later has another."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else None


class ControllerWatch:
    """Remembers this process's ancestors; `alive()` is False once any of them has gone.

    Under an async task the module runs detached (async_wrapper daemonizes it), so its ancestors no longer
    lead to ansible-playbook: its action plugin passes the controller's pid, watched here as well.
    """

    def __init__(self, controller_pid: int | None = None) -> None:
        self.chain = ancestors()
        self.controller = (controller_pid, _started(controller_pid)) if controller_pid else None

    def alive(self) -> bool:
        if self.controller and _started(self.controller[0]) != self.controller[1]:
            return False
        return ancestors()[: len(self.chain)] == self.chain

    def controller_pid(self) -> int | None:
        """The ansible-playbook process among the ancestors (the outermost python one), if found."""
        for pid in reversed(self.chain):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if b"ansible-playbook" in handle.read():
                        return pid
            except OSError:
                continue
        return None
