"""Why a run stops, as values a step sets (pgrollout_stop), never read from a task's name.

The rescue of a run decides from these: a stop that keeps what the run
applied (a verified migration held only for unacknowledged warnings, a watch
breach without pgrollout_watch_rollback_on_breach) is not rolled back;
anything else that fails after a change is. Renaming a task changes nothing.
"""
from __future__ import annotations

from typing import Any

# kind -> what it means (the evidence's failure.kind; README, Outcomes and exit codes)
KINDS = {
    "warnings_unacknowledged": "verified, but warnings need acknowledging in this environment",
    "watch_breach": "the watch after the change breached its thresholds",
    "check_failed": "a verification check failed",
    "lint_unacknowledged": "lint errors nobody let through",
    "refused": "a preflight condition refused the run before anything changed",
}
# a failure of any other task (a module's error, a lost connection, ...)
DEFAULT_KIND = "step_failed"

ARGUMENT_SPEC: dict[str, Any] = {
    "kind": {"type": "str", "required": True, "choices": sorted(KINDS)},
    "msg": {"type": "str", "required": True},
    "keep_applied": {"type": "bool", "default": False},
    # the check that refused (kind refused): the evidence's refused_by
    "refused_by": {"type": "str"},
}


def stop(args: dict[str, Any]) -> dict[str, Any]:
    """The failed result a stop returns: its message, kind, and whether what the run applied stays."""
    out = {"failed": True, "changed": False, "msg": args["msg"], "failure_kind": args["kind"],
           "keep_applied": bool(args["keep_applied"])}
    if args.get("refused_by"):
        out["refused_by"] = args["refused_by"]
    return out


def failure(task_name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The run record's failure from the failed task's result (its name is kept only for people to read)."""
    return {"task": task_name, "msg": result.get("msg") or "failed",
            "kind": result.get("failure_kind") or DEFAULT_KIND, "keep_applied": bool(result.get("keep_applied"))}


# pgrollout_failed's options: what a rescue knows when a step failed.
FAILED_SPEC: dict[str, Any] = {
    "task": {"type": "str", "required": True},
    "result": {"type": "dict", "default": {}},
    # a rollout's rescue adds what the migrate step applied and the plan's files (the rollback targets)
    "migrate": {"type": "dict", "default": {}},
    "plan_files": {"type": "list", "elements": "dict", "default": []},
}


def failed(args: dict[str, Any]) -> dict[str, Any]:
    """The run record's failure, and for a rollout what its rescue rolls back: the versions this run applied
    (none where the stop keeps them, or under a partially applied file: rolling them back would pull the
    ground from under it) and their files from the plan, newest first."""
    record = failure(args["task"], args["result"] or {})
    migrate = args["migrate"] or {}
    if migrate.get("skipped"):
        migrate = {}
    applied = [] if record["keep_applied"] or migrate.get("partial") else [str(v) for v in migrate.get("applied") or []]
    by_version = {str(f.get("version")): f.get("path") for f in args["plan_files"]}
    files = [by_version[v] for v in applied if by_version.get(v)]
    # not ansible_facts: host facts outlive the run (fact caches) and need inject_facts_as_vars
    return {"changed": False, "failure": record, "applied_here": applied, "rollback_files": list(reversed(files)),
            # kept now: the rollback's own migrate step replaces migrate_result
            "own_xids": list(migrate.get("xids") or [])}
