#!/usr/bin/env python3
"""The next migration: forward and rollback files and spec skeletons, in the configured layout.

    make new-migration NAME=add_bot_notes
    .venv/bin/python scripts/new_migration.py add_bot_notes [--layout updown] [--migrations-dir DIR] ...
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "module_utils"))

from pgrollout.sqlfile import MigrationFileError, discover  # noqa: E402

FORWARD = """-- {stem}: {title}
-- One logical change. It runs in ONE transaction with lock_timeout: keep it
-- short on big tables (README, Lock safety). CREATE INDEX CONCURRENTLY needs a
-- file of its own whose first line is: -- pgrollout: no-transaction
-- A file holding only comments is a no-op migration: write the SQL below.

"""
ROLLBACK = """-- Rollback of {stem}: undo exactly what the forward file does, in reverse
-- order. A DROP of a table or column here discards its data: say so here, and
-- the operator decides when running rollback.yml.

"""
SPEC = """---
# Verification of {stem} {when}.
# Generate the schema checks from a dry run: make spec VERSION={version}
# then add behaviour checks (README, Verification specs). An empty list is
# refused before anything runs, so this file must be filled first.
migration: "{version}"
checks: []
"""


def configured_layout() -> str:
    # the default (role pgrollout), then this project's own choice (group_vars/all.yml)
    settings = {**(yaml.safe_load((REPO / "roles" / "pgrollout" / "defaults" / "main.yml").read_text()) or {}),
                **(yaml.safe_load((REPO / "group_vars" / "all.yml").read_text()) or {})}
    value = str(settings.get("pgrollout_migration_layout", "supabase"))
    return value if "{" not in value else "supabase"


def next_version(versions: list[str]) -> str:
    if versions and max(len(v) for v in versions) >= 14:  # timestamp versions, as the Supabase CLI writes
        return datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    width = max([len(v) for v in versions] + [3])
    return str(max([int(v) for v in versions] + [0]) + 1).zfill(width)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name")
    parser.add_argument("--layout", default=None, choices=["supabase", "updown"])
    parser.add_argument("--migrations-dir", default=str(REPO / "supabase" / "migrations"))
    parser.add_argument("--rollbacks-dir", default=str(REPO / "supabase" / "rollbacks"))
    parser.add_argument("--verification-dir", default=str(REPO / "verification"))
    args = parser.parse_args(argv)
    layout = args.layout or configured_layout()
    if not re.fullmatch(r"[a-z0-9_]+", args.name):
        print(f"error: name {args.name!r}: use lower-case letters, digits and underscores", file=sys.stderr)
        return 2
    try:
        existing = discover(args.migrations_dir, args.rollbacks_dir, args.verification_dir, layout)
    except MigrationFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    version = next_version([m.version for m in existing])
    stem = f"{version}_{args.name}"
    if layout == "updown":
        up, down = (os.path.join(args.migrations_dir, f"{stem}.{d}.sql") for d in ("up", "down"))
    else:
        up = os.path.join(args.migrations_dir, f"{stem}.sql")
        down = os.path.join(args.rollbacks_dir, f"{stem}_rollback.sql")
    files = {
        up: FORWARD.format(stem=stem, title=args.name.replace("_", " ")),
        down: ROLLBACK.format(stem=stem),
        os.path.join(args.verification_dir, f"{stem}.yml"): SPEC.format(stem=stem, version=version,
                                                                          when="after the forward path"),
        os.path.join(args.verification_dir, f"{stem}_rollback.yml"): SPEC.format(stem=stem, version=version,
                                                                                   when="after its rollback"),
    }
    for path in files:
        if os.path.exists(path):
            print(f"error: {path} exists already; nothing was written", file=sys.stderr)
            return 1
    for path, text in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_text(text)
        print(f"wrote {os.path.relpath(path)}")
    print(f"next: write the SQL, then make spec VERSION={version}, make dry-run, make rollout")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
