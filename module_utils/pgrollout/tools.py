"""The control node's tools: ansible-core, Python and the PostgreSQL client programs, read in the
controller's own process (the version gate and the evidence; no module or interpreter to start)."""
from __future__ import annotations

import platform
import re
import shutil
import subprocess
from typing import Any

CLIENTS = ("pg_dump", "pg_restore", "psql")
NEEDS = {"ansible_core": (2, 19), "python": (3, 11)}

ARGUMENT_SPEC: dict[str, Any] = {
    # the client programs a run calls: pg_dump and pg_restore for backups, psql for the compatibility layer
    "clients": {"type": "list", "elements": "str", "default": list(CLIENTS)},
}


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:2])


def versions(clients: tuple[str, ...] | list[str] = CLIENTS) -> dict[str, Any]:
    try:  # the ansible-core that runs (ansible_release ships with every module)
        from ansible.module_utils.ansible_release import __version__ as ansible_core
    except ImportError:
        ansible_core = None
    found: dict[str, Any] = {"ansible_core": ansible_core, "python": platform.python_version()}
    for name in clients:
        path = shutil.which(name)
        found[name] = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout.strip() \
            if path else None
    return found


def control_node(args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Refuse a control node that cannot run pgrollout; else its versions."""
    clients = list((args or {}).get("clients") or CLIENTS)
    found = versions(clients)
    old = [f"{name.replace('_', '-')} >= {'.'.join(map(str, need))} (have {found[name]})"
           for name, need in NEEDS.items() if _release(found[name] or "0") < need]
    missing = [name for name in clients if not found[name]]
    if old or missing:
        msg = ("This control node cannot run pgrollout: it needs "
               + "; ".join(old + ([f"{', '.join(missing)} on PATH (apt-get install postgresql-client)"]
                                  if missing else [])) + ". Nothing was changed.")
        return {"failed": True, "changed": False, "msg": msg, "versions": found}
    return {"changed": False, "versions": found,
            "msg": f"ansible-core {found['ansible_core']}, Python {found['python']}, "
                   + ", ".join(found[name] for name in clients)}
