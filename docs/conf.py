"""Sphinx configuration of pgrollout's docs site (scripts/build_docs.py builds it; make docs)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))  # Sphinx loads local extensions from sys.path

project = "pgrollout"
title = html_short_title = "pgrollout"
extensions = ["myst_parser", "sphinx_antsibull_ext", "ansible_docs_links"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext", "rollout-plan-003.md"]
myst_heading_anchors = 3
pygments_style = "ansible"
highlight_language = "YAML+Jinja"
html_theme = "sphinx_ansible_theme"
html_show_sphinx = False
html_copy_source = False
html_use_modindex = False
html_use_index = False
default_role = "any"
nitpicky = True
# No network here or in CI: references into docs.ansible.com resolve through ansible_docs_links, not intersphinx.
intersphinx_mapping: dict = {}
