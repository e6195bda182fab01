"""pgrollout_evidence on the control node: the record is written where the run is controlled,
in the controller's own process (no module to ship and start: about a second a run)."""
from __future__ import annotations

import sys
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.pgrollout.postgresql.plugins.module_utils import evidence


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _unused, args = self.validate_argument_spec(argument_spec=evidence.ARGUMENT_SPEC)
        try:
            result.update(evidence.record_run(args))
        except OSError as exc:
            if args["probe"]:
                raise AnsibleActionFail(evidence.unwritable(args["dir"], exc)) from exc
            # the outcome line still reaches the console and stderr, saying whether the target changed
            line = evidence.unwritten_summary(args)
            sys.stderr.write(line + "\n")
            raise AnsibleActionFail(f"cannot write the evidence into {args['dir']}: {exc}. The run's outcome: "
                                    f"{line}") from exc
        result["changed"] = False  # a record on the control node is not a change to the target
        return result
