#!/usr/bin/python
"""Sample the target's health for a while; compare it with a baseline."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_watch
short_description: Watch a PostgreSQL database after a change, against a baseline taken before it
description:
  - Samples every O(interval) seconds for O(seconds) - transaction rollbacks,
    deadlocks and recovery conflicts per second (pg_stat_database), sessions
    waiting on locks and the longest wait, connections by state
    (pg_stat_activity). Errors per statement are not in PostgreSQL 15's
    pg_stat_statements, so they are not sampled.
  - With O(baseline) (the C(peaks) of an earlier run of this module, taken
    before the change), reports every metric whose peak exceeds both its
    floor and the baseline times its factor (O(thresholds)).
  - Run it with C(async) and C(poll) for progress per interval.
version_added: "0.2.0"
options:
  seconds: {description: How long to watch., type: float, required: true}
  interval: {description: Seconds between samples., type: float, default: 10}
  baseline: {description: Peaks from the watch before the change., type: dict}
  thresholds:
    description:
      - Per metric (rollbacks_per_second, deadlocks_per_second, lock_waiting_sessions,
        longest_lock_wait_seconds) a C(floor) and a C(factor) over the baseline.
    type: dict
    default: {}
  fail_on_breach: {description: Fail when a metric breaches., type: bool, default: false}
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: full
    description: Read-only; it watches in check mode too.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Watch for ten minutes after the rollout
  pgrollout.postgresql.pg_watch:
    seconds: 600
    interval: 30
    baseline: "{{ watch_baseline.peaks }}"
  async: 700
  poll: 30
"""

RETURN = r"""
series: {description: Per interval the rates and gauges., returned: always, type: list}
peaks: {description: The highest value of each metric., returned: always, type: dict}
breaches: {description: "Metrics over their threshold (metric, peak, baseline, allowed).", returned: always, type: list}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible_collections.pgrollout.postgresql.plugins.module_utils.watch import breaches, describe, peaks, watched


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        CONNECTION_ARGUMENT_SPEC,
        seconds={"type": "float", "required": True},
        interval={"type": "float", "default": 10},
        baseline={"type": "dict"},
        thresholds={"type": "dict", "default": {}},
        fail_on_breach={"type": "bool", "default": False},
    ), supports_check_mode=True)
    p = module.params
    try:
        with connect(p, autocommit=True) as conn:
            points = watched(conn, p["seconds"], p["interval"], p["baseline"], p["thresholds"])
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, "watching the target"))
    found = breaches(points, p["baseline"], p["thresholds"]) if p["baseline"] is not None else []
    result = {"changed": False, "series": points, "peaks": peaks(points), "breaches": found,
              "msg": f"watched {p['seconds']:g}s in {len(points)} interval(s): {describe(found)}"}
    if found and p["fail_on_breach"]:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
