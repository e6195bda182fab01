"""pgrollout's console: a run that fits on a screen, every failure whole and said once.

At default verbosity: the play's name, one line per step that does something (its duration), the lines the
steps show (the preflight's state, each migration with its locks on one line, the outcome), the checks as a
count with every check that did not pass in full, and the recap. Skipped tasks, role includes, argument
checks and pgrollout's own bookkeeping (set_fact) print nothing. With -v and more, it is Ansible's default
console, unchanged; AWX and other callbacks receive every event either way.
"""
from __future__ import annotations

DOCUMENTATION = r"""
name: pgrollout
type: stdout
short_description: pgrollout's console - one line per step, checks counted, every failure whole and once
description:
  - At default verbosity prints the play, one line per step with its duration, the lines pgrollout's steps
    show, the checks as a count with every check that did not pass in full (name, spec, expected, actual),
    each failure once as the module wrote it, and the recap.
  - With C(-v) or more it prints what Ansible's default callback prints.
  - pgrollout's own ansible.cfg sets it (C(stdout_callback = pgrollout)). From the collection, set
    C(stdout_callback = pgrollout.postgresql.pgrollout) in the project's ansible.cfg, or
    C(ANSIBLE_STDOUT_CALLBACK=pgrollout.postgresql.pgrollout) for one run.
version_added: "0.5.0"
author: pgrollout developers (@pgrollout)
extends_documentation_fragment:
  - default_callback
requirements:
  - set as the stdout callback
"""

# ansible-test: the documentation before any import (ruff: E402 allowed here, pyproject.toml)
import json
import re
import time
from typing import Any

from ansible.plugins.callback.default import CallbackModule as DefaultCallback
from ansible_collections.pgrollout.postgresql.plugins.module_utils.locks import LOCK_STRENGTH

# actions whose success is bookkeeping, not a step an operator follows
QUIET = {"set_fact", "include_role", "include_tasks", "import_role", "import_tasks", "validate_argument_spec",
         "meta", "assert", "set_stats", "fail"}
CHECK_KEYS = {"name", "status", "severity"}


def short_action(action: str) -> str:
    return action.rsplit(".", 1)[-1]


def check_lines(results: list[Any]) -> list[str]:
    """A count of the checks, and each one that did not pass whole: name, spec, expected and actual."""
    checks = [r for r in results if isinstance(r, dict) and r.keys() >= CHECK_KEYS]
    if not checks:
        return []
    passed = sum(1 for r in checks if r["status"] == "passed")
    lines = [f"checks: {passed} of {len(checks)} passed"]
    for r in checks:
        if r["status"] == "passed":
            continue
        mark = "WARN" if r.get("severity") == "warn" else r["status"].upper()
        where = f" ({r['spec']})" if r.get("spec") else ""
        if r["status"] == "error":
            lines.append(f"{mark} {r['name']}{where}: {r.get('error')}")
        else:
            lines.append(f"{mark} {r['name']}{where}: expected {json.dumps(r.get('expected'), default=str)}, "
                         f"actual {json.dumps(r.get('actual'), default=str)}")
    return lines


# PostgreSQL's table lock modes, strongest first: a migration's locks are said strongest first
LOCK_MODES = tuple(reversed(LOCK_STRENGTH))
LOCK_LINE = re.compile(r"^(\s*)lock: (.+) (\w+Lock)$")


def folded_locks(lines: list[str]) -> list[str]:
    """A migration's run of `lock: <table> <mode>` lines as one line, modes strongest first."""
    out: list[str] = []
    group: dict[str, list[str]] = {}
    indent = ""

    def flush() -> None:
        if group:
            modes = sorted(group, key=lambda m: LOCK_MODES.index(m) if m in LOCK_MODES else len(LOCK_MODES))
            out.append(f"{indent}locks: " + "; ".join(f"{m} on {', '.join(group[m])}" for m in modes))
            group.clear()

    for line in lines:
        match = LOCK_LINE.match(line)
        if match:
            indent = match.group(1)
            group.setdefault(match.group(3), []).append(match.group(2))
            continue
        flush()
        out.append(line)
    flush()
    return out


def shown_lines(msg: Any) -> list[str]:
    """A debug message's lines: PASS lines of a check table folded into one count, lock lines into one."""
    lines = folded_locks([str(x) for x in msg] if isinstance(msg, list) else str(msg).splitlines())
    out: list[str] = []
    passes = 0
    indent = ""
    for line in lines:
        if line.lstrip().startswith("PASS "):
            indent = indent if passes else line[:len(line) - len(line.lstrip())]
            passes += 1
            continue
        if passes:
            out.append(f"{indent}{passes} check(s) passed")
            passes = 0
        out.append(line)
    if passes:
        out.append(f"{indent}{passes} check(s) passed")
    return out


class CallbackModule(DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "pgrollout"

    def __init__(self) -> None:
        super().__init__()
        self._started: dict[tuple[str, str], float] = {}
        self._running: dict[str, tuple[str, float]] = {}
        self._said: list[str] = []  # failure messages already printed, never printed again

    @property
    def _brief(self) -> bool:
        return self._display.verbosity < 1

    def _say(self, text: str, color: str | None = None) -> None:
        self._display.display(text, color=color)

    def _seconds(self, result: Any) -> str:
        started = self._started.pop((result._host.get_name(), result._task._uuid), None)
        return f"{time.monotonic() - started:.1f}s" if started is not None else "-"

    def _once(self, msg: str) -> str:
        """The message, with any earlier failure it repeats (a run's end quotes its step) said as (above)."""
        for said in sorted(self._said, key=len, reverse=True):
            if len(said) > 40 and said in msg and said != msg:
                msg = msg.replace(said, "(above)")
        self._said.append(msg)
        return msg

    def v2_playbook_on_play_start(self, play: Any) -> None:
        if not self._brief:
            return super().v2_playbook_on_play_start(play)
        self._say(f"== {play.get_name().strip()}", color="bright blue")

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        if not self._brief:
            super().v2_playbook_on_task_start(task, is_conditional)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        if not self._brief:
            super().v2_playbook_on_handler_task_start(task)

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._started[(host.get_name(), task._uuid)] = time.monotonic()
        # an async job's polls come back as async_status tasks: they are said under the task that started it
        self._running[host.get_name()] = (task.get_name().strip(), time.monotonic())
        if not self._brief:
            super().v2_runner_on_start(host, task)

    def v2_playbook_on_include(self, included_file: Any) -> None:
        if not self._brief:
            super().v2_playbook_on_include(included_file)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._started.pop((result._host.get_name(), result._task._uuid), None)
        if not self._brief:
            super().v2_runner_on_skipped(result)

    def v2_runner_on_ok(self, result: Any) -> None:
        if not self._brief:
            return super().v2_runner_on_ok(result)
        self._handle_warnings(result._result)
        action, res = short_action(result._task.action), result._result
        seconds = self._seconds(result)
        if action == "debug":
            for line in shown_lines(res.get("msg", "")):
                self._say(f"   {line}")
            return
        if action in QUIET:
            return
        mark = "changed" if res.get("changed") else "ok"
        self._say(f"{mark:>7} {result._task.get_name().strip()} ({seconds})",
                  color="yellow" if mark == "changed" else "green")
        for line in check_lines(res.get("results") or []):
            self._say(f"   {line}")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if not self._brief:
            return super().v2_runner_on_failed(result, ignore_errors)
        self._handle_warnings(result._result)
        res = result._result
        name, seconds = result._task.get_name().strip(), self._seconds(result)
        checks = check_lines(res.get("results") or [])
        if ignore_errors:
            # a step whose failure the next step decides on (pg_assert before its stop): its checks, whole
            self._say(f" failed {name} ({seconds}), the run decides next", color="yellow")
        else:
            msg = str(res.get("msg") or res.get("stderr") or res.get("reason") or "failed").strip()
            self._say(f" FAILED {name} ({seconds}): {self._once(msg)}", color="red")
        for line in checks:
            self._say(f"   {line}", color="red" if line.startswith(("FAIL", "ERROR")) else None)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        if not self._brief:
            return super().v2_runner_on_unreachable(result)
        self._say(f" UNREACHABLE {result._host.get_name()}: {result._result.get('msg')}", color="red")

    def v2_runner_retry(self, result: Any) -> None:
        if not self._brief:
            return super().v2_runner_retry(result)
        res = result._result
        self._say(f"   waiting: {result._task.get_name().strip()} (attempt {res.get('attempts')} of "
                  f"{res.get('retries')})")

    def v2_runner_on_async_poll(self, result: Any) -> None:
        if not self._brief:
            return super().v2_runner_on_async_poll(result)
        name, started = self._running.get(result._host.get_name(), (result._task.get_name().strip(), None))
        elapsed = f"{time.monotonic() - started:.0f}s" if started is not None else "a while"
        said = result._result.get("progress") or "still running"
        self._say(f"   ... {name} ({elapsed}): {said}")

    def v2_runner_on_async_ok(self, result: Any) -> None:
        if not self._brief:  # the task's own line follows (v2_runner_on_ok): said once
            super().v2_runner_on_async_ok(result)

    def v2_runner_on_async_failed(self, result: Any) -> None:
        if not self._brief:  # the failure follows, whole, from v2_runner_on_failed: said once
            super().v2_runner_on_async_failed(result)

    def v2_runner_item_on_ok(self, result: Any) -> None:
        if not self._brief:
            super().v2_runner_item_on_ok(result)

    def v2_runner_item_on_skipped(self, result: Any) -> None:
        if not self._brief:
            super().v2_runner_item_on_skipped(result)

    def v2_runner_item_on_failed(self, result: Any) -> None:
        if not self._brief:
            return super().v2_runner_item_on_failed(result)
        self._say(f" FAILED item of {result._task.get_name().strip()}: {self._once(str(result._result.get('msg')))}",
                  color="red")
