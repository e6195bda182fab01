"""References antsibull-docs writes into Ansible's own docs, resolved to docs.ansible.com without a network.

antsibull-docs' pages link to a few labels of Ansible's documentation (common return values, the
configuration settings, callback and action plugins). A collection's docsite gets them through intersphinx,
which downloads Ansible's object inventory; this build is offline, so those labels, and only those, become
plain links to their pages. Every other unresolved reference stays a warning, which -W makes an error.
"""
from __future__ import annotations

from typing import Any

from docutils import nodes

ANSIBLE = "https://docs.ansible.com/projects/ansible/latest/"
LABELS = {
    "common_return_values": "reference_appendices/common_return_values.html",
    "ansible_configuration_settings": "reference_appendices/config.html",
    "callback_plugins": "plugins/callback.html",
    "action_plugins": "plugins/action.html",
}


def resolve(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    target = node.get("reftarget", "")
    if node.get("reftype") == "ref" and target in LABELS:
        url = ANSIBLE + LABELS[target]
    elif node.get("reftype") == "envvar" and target.startswith("ANSIBLE_"):
        url = f"{ANSIBLE}reference_appendices/config.html#envvar-{target}"
    else:
        return None
    ref = nodes.reference("", "", internal=False, refuri=url)
    ref += contnode
    return ref


def setup(app: Any) -> dict[str, Any]:
    app.connect("missing-reference", resolve)
    return {"parallel_read_safe": True}
