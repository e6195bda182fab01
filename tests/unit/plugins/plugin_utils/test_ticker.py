"""The preflight's lines while its module runs: one per interval, in the console's async-poll form."""
from __future__ import annotations

import re
import threading

from ansible_collections.pgrollout.postgresql.plugins.plugin_utils.ticker import Ticker


def test_a_step_longer_than_two_intervals_says_two_lines_in_the_poll_form_and_none_after():
    said: list[str] = []
    two = threading.Event()

    def say(line: str) -> None:
        said.append(line)
        if len(said) == 2:
            two.set()

    with Ticker("preflight : Read the target's state", lambda: "preflight: reading", 0.05, say):
        assert two.wait(10)  # the condition: two lines said while the step runs
    count = len(said)
    assert all(re.fullmatch(r"   \.\.\. preflight : Read the target's state \(\d+s\): preflight: reading", x)
               for x in said), said
    threading.Event().wait(0.2)
    assert len(said) == count  # nothing after the step ended


def test_a_quick_step_says_nothing_and_a_failing_what_never_fails_the_step():
    said: list[str] = []
    with Ticker("t", lambda: "x", 60, said.append):
        pass
    assert said == []

    def broken() -> str:
        raise OSError("gone")

    with Ticker("t", broken, 0.01, said.append) as ticker:
        while not ticker.said:
            threading.Event().wait(0.01)
    assert said[0] == "   ... t: still running (OSError while saying what)"
