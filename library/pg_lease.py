#!/usr/bin/python
"""Take, check or release the run lease on a database."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pg_lease
short_description: The run lease - one pgrollout run that changes a database at a time
description:
  - C(state=present) takes the lease for O(run_id) (a row in C(pgrollout.lease) with
    the run id, inventory host, OS user, control node, start and last heartbeat),
    creating pgrollout's tables first if needed. Another run's lease is refused,
    naming it, unless it lapsed (no heartbeat for its TTL) or O(break_run_id)
    names it with a O(break_reason); both are recorded in C(pgrollout.lease_events).
  - On taking it, removes the leftovers of killed runs (passfiles, C(.partial)
    archives in O(backup_dir), scratch databases of dead runs) and reports them.
  - C(state=absent) releases this run's lease. The holder is reported either way (read-only, the
    C(lease) of M(pgrollout.postgresql.pg_facts)).
version_added: "0.2.0"
options:
  state:
    description: C(present) takes (or renews) the lease, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  run_id:
    description: This run's identifier (required for present and absent).
    type: str
  kind:
    description: What the run does (rollout, rollback, restore, baseline), recorded with the lease.
    type: str
    default: rollout
  inventory_host:
    description: The inventory host the run targets, recorded with the lease.
    type: str
  ttl:
    description: Seconds without a heartbeat after which the lease lapses and another run may take it.
    type: int
    default: 600
  break_run_id:
    description: Break the lease held by this run id (a run that died); needs O(break_reason).
    type: str
  break_reason:
    description: Why the lease is broken (recorded).
    type: str
    default: ""
  backup_dir:
    description: Backup folder whose C(.partial) leftovers are removed once the lease is taken.
    type: path
  lock_timeout:
    description: lock_timeout of the lease's own short transactions.
    type: str
    default: 5s
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: full
    description: Takes and releases nothing; reports the lease another run holds, as a warning.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Take the run lease
  pgrollout.postgresql.pg_lease:
    run_id: "{{ pgrollout_run_id }}"
    inventory_host: "{{ inventory_hostname }}"

- name: Release it
  pgrollout.postgresql.pg_lease:
    run_id: "{{ pgrollout_run_id }}"
    state: absent
"""

RETURN = r"""
holder:
  description: The lease before this call (run_id, kind, inventory_host, os_user, control_node, started_at,
    heartbeat_at, ttl_seconds, age_seconds, idle_seconds, lapsed), or null.
  returned: always
  type: dict
event:
  description: acquired, renewed, lapsed (a dead run's lease taken over), broken, released, or none.
  returned: always
  type: str
leftovers:
  description: What was removed of killed runs (passfiles, partial_archives, scratch_databases).
  returned: when state=present
  type: dict
"""

import getpass
import socket
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils import lease, ledger, leftovers, modules
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible_collections.pgrollout.postgresql.plugins.module_utils.controller import ControllerWatch


def info(conn: Any) -> dict | None:  # a psycopg connection
    with conn.transaction(), conn.cursor() as cur:
        return lease.holder(cur)


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        CONNECTION_ARGUMENT_SPEC,
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        run_id={"type": "str"},
        kind={"type": "str", "default": "rollout"},
        inventory_host={"type": "str"},
        ttl={"type": "int", "default": 600},
        break_run_id={"type": "str"},
        break_reason={"type": "str", "default": ""},
        backup_dir={"type": "path"},
        lock_timeout={"type": "str", "default": "5s"},
    ), supports_check_mode=True, required_if=[("state", "present", ["run_id"]), ("state", "absent", ["run_id"])])
    p = module.params
    try:
        with connect(p, autocommit=True) as conn:
            lease.refuse_unprivileged(conn)  # before the lease table is read, or created
            held = info(conn)
            if module.check_mode:
                mine = held is not None and held["run_id"] == p["run_id"]
                if held and not mine and p["state"] != "absent":
                    module.warn(f"the run lease is held: {lease.describe(held)}; a real run would be refused "
                                "unless that run ends, its lease lapses, or it is broken")
                module.exit_json(changed=False, holder=held, event="none")
            if p["state"] == "absent":
                released = lease.release(conn, p["run_id"])
                module.exit_json(changed=released, holder=held, event="released" if released else "none")
            lease.refuse_replica(conn)  # every playbook that writes takes the lease first
            ledger.ensure(conn, p["lock_timeout"])
            claim = lease.Claim(run_id=p["run_id"], kind=p["kind"], inventory_host=p["inventory_host"],
                                os_user=getpass.getuser(), control_node=socket.gethostname(),
                                controller_pid=ControllerWatch().controller_pid(), ttl_seconds=p["ttl"])
            taken = lease.acquire(conn, claim, p["break_run_id"], p["break_reason"], p["lock_timeout"])
            removed = leftovers.clean(conn, p["backup_dir"])
    except lease.LeaseError as exc:
        module.fail_json(msg=str(exc), holder=exc.holder)
    except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed
        module.fail_json(msg=modules.describe(exc, f"managing the run lease ({p['state']})"))
    notes = [f"{kind}: {', '.join(items)}" for kind, items in removed.items() if items]
    msg = f"run lease {taken['event']} by {p['run_id']}"
    if taken["event"] in ("lapsed", "broken"):
        msg += f" (previous holder {taken['previous']['run_id']}: {taken['reason']})"
    if notes:
        msg += "; removed leftovers of killed runs: " + "; ".join(notes)
    module.exit_json(changed=taken["event"] != "renewed", holder=taken["previous"], event=taken["event"],
                     leftovers=removed, msg=msg)


if __name__ == "__main__":
    main()
