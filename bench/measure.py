"""CPU seconds beside wall time, for benchmarks on a shared, noisy machine.

Client CPU: user + sys of every child process this benchmark waited for (the
whole tree: ansible-playbook, its forks and modules, psql, the Supabase CLI).
Server CPU: user + sys of the cluster's postmaster and its backends, the
finished ones included (the postmaster reaps them: cutime/cstime).

A module run as an async job (`async:`) is daemonized by Ansible's
async_wrapper: it leaves the tree (its parent becomes init), and its CPU would
be counted nowhere. Commands started through tree() run under a reaper that
is a child subreaper (prctl): every orphaned descendant comes back to it, it
waits for each, so their CPU is in its (and so the benchmark's) children's.
"""
from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_CHILD_SUBREAPER = 36


def tree(command: list[str]) -> list[str]:
    """`command` run under the reaper below: its daemonized descendants' CPU counts too."""
    return [sys.executable, str(Path(__file__).resolve()), "--reap", *command]


def _reap(command: list[str]) -> int:
    """Run `command` as a subreaper and wait for every descendant; its exit code."""
    import ctypes
    import subprocess

    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed: async jobs' CPU could not be counted")
    child = subprocess.Popen(command)  # noqa: S603 - the benchmark's own command line
    code = None
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return code if code is not None else 1
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int, reaped: bool) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + ((cutime + cstime) if reaped else 0)) / _TICKS


def server_cpu(data_dir: Path) -> float:
    """The postmaster's CPU with its reaped children's, plus its live children's."""
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = _proc_cpu(pid, reaped=True)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += _proc_cpu(int(child), reaped=False)
    return total


@dataclass
class Figures:
    wall: float
    client: float
    server: float

    @property
    def cpu(self) -> float:
        return self.client + self.server


class Meter:
    """with Meter(data_dir) as m: ...; m.figures"""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.figures = Figures(0.0, 0.0, 0.0)

    def __enter__(self) -> Meter:
        self._wall, self._client, self._server = time.monotonic(), _children_cpu(), server_cpu(self.data_dir)
        return self

    def __exit__(self, *exc: object) -> None:
        self.figures = Figures(time.monotonic() - self._wall, _children_cpu() - self._client,
                               server_cpu(self.data_dir) - self._server)


if __name__ == "__main__" and sys.argv[1:2] == ["--reap"]:
    raise SystemExit(_reap(sys.argv[2:]))
