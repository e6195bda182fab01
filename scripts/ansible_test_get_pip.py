"""pip for ansible-test's sanity venvs where its bootstrap script cannot be downloaded.

ansible-test bootstraps pip into each empty virtual environment with a
get-pip script it downloads from ci-files.testing.ansible.com (unreachable
here) unless a copy lies in ~/.ansible/test/cache/get_pip_<version>.py.
This stand-in, copied there by `make sanity` beside the pip wheels it
downloaded from the package index, does what that script is run for: it
installs the pinned packages ansible-test asks for (pip==<version>) from
those wheels, running pip from its own wheel (pip can; no network, no
certificates: ansible-test clears the environment they come from).
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys

WHEELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pip-wheels")
# get-pip's own switches (what not to add beside pip), meaningless to pip install
OWN_SWITCHES = {"--no-setuptools", "--no-wheel"}


def main() -> None:
    wheels = sorted(glob.glob(os.path.join(WHEELS, "pip-*.whl")))
    if not wheels:
        raise SystemExit(f"no pip wheel in {WHEELS}: run `make sanity`, which downloads it")
    wanted = [arg for arg in sys.argv[1:] if arg not in OWN_SWITCHES]
    subprocess.run([sys.executable, os.path.join(wheels[-1], "pip"), "install", "--quiet", "--no-index",
                    "--find-links", WHEELS, *wanted], check=True)


if __name__ == "__main__":
    main()
