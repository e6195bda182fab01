#!/usr/bin/env python3
"""Print every environment's status.json side by side (make status)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "module_utils"))

from pgrollout.status import side_by_side  # noqa: E402


def main() -> int:
    args = sys.argv[1:]
    only = args[args.index("--only") + 1:] if "--only" in args else ["dev", "staging", "prod"]
    args = args[:args.index("--only")] if "--only" in args else args
    root = Path(args[0]) if args else REPO / ".ops" / "evidence"
    documents = []
    for env in only:
        path = root / env / "status.json"
        if path.exists():
            documents.append(json.loads(path.read_text()))
        else:
            print(f"{env}: no status.json in {path.parent}")
    if documents:
        print("\n".join(side_by_side(documents)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
