"""The rollout plan's own text (docs/rollout-plan-003.md): its SQL, verbatim."""
from __future__ import annotations

import re
from pathlib import Path

PLAN = Path(__file__).resolve().parent.parent / "docs" / "rollout-plan-003.md"


def verification_block() -> str:
    """The plan's "Verification Queries" SQL block, exactly as written."""
    text = PLAN.read_text()
    section = text.split("## Verification Queries", 1)[1]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def verification_queries() -> list[str]:
    """The six queries, each without its leading `-- N.` comment and trailing `-- Expected` note."""
    parts = re.split(r"^-- \d\. .*$", verification_block(), flags=re.M)[1:]
    queries = []
    for part in parts:
        lines = [ln for ln in part.strip().splitlines() if not ln.startswith("-- ")
                 and not ln.startswith("--           ")]
        queries.append("\n".join(lines).strip())
    return queries
