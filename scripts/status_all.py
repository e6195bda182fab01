#!/usr/bin/env python3
"""make status: every environment's status.yml, then their status side by side.

The vault password is taken as ansible-playbook takes it: ANSIBLE_VAULT_PASSWORD_FILE in the
environment, or --vault-password-file (and any other ansible-playbook option) in ARGS. An
environment that cannot be shown says why: no target, a vault that could not be decrypted, or
a target that could not be reached.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "staging", "prod")
VAULT_ERRORS = ("Decryption failed", "no vault secrets", "Attempting to decrypt but no vault secrets found",
                "vault password", "Vault format unhexlify error")


def why_not(returncode: int, output: str) -> str | None:
    """None when status.yml ran; else what stopped it, with the next step."""
    if returncode == 0 and "skipping: no hosts matched" not in output:
        return None
    if any(text in output for text in VAULT_ERRORS):
        return ("could not decrypt the vault: give its password as ansible-playbook takes it "
                "(ANSIBLE_VAULT_PASSWORD_FILE=F make status, or make status ARGS='--vault-password-file F')")
    if "skipping: no hosts matched" in output:
        return "no target (its inventory has no host)"
    return f"could not be shown (ansible-playbook exit {returncode}; see its output above)"


def main(argv: list[str]) -> int:
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    extra = shlex.split(" ".join(argv))
    reasons = {}
    for env in ENVIRONMENTS:
        proc = subprocess.run([playbook, "status.yml", "-i", f"inventories/{env}", *extra], cwd=REPO,
                              capture_output=True, text=True)
        output = proc.stdout + proc.stderr
        reason = why_not(proc.returncode, output)
        if reason is None:
            print(proc.stdout, end="")
        else:
            reasons[env] = reason
            if "no target" not in reason:
                print(output, end="", file=sys.stderr)
    for env, reason in reasons.items():
        print(f"{env}: {reason}")
    shown = [e for e in ENVIRONMENTS if e not in reasons]
    return subprocess.run([sys.executable, str(REPO / "scripts" / "status_side_by_side.py"), "--only", *shown]
                          ).returncode if shown else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
