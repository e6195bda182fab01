"""Verification specs written from what a dry run observed.

The migration (and the pending files before it) runs in a transaction that is
rolled back, as the dry run does; the catalog is read before and after it, and
the difference of the catalog snapshot (schema.py) becomes checks: every object
added or changed, by its definition (a policy's expressions, a constraint's
definition, a trigger, a grant, an extension), and every object dropped; for
the rollback spec, that they are back as before. Each check is a `catalog`
check (kind and key): the key travels as a query parameter, never inside the
SQL text.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import ledger, migrate, schema
from .plan import Layout, PlanError
from .sqlfile import load

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Connection, Cursor


def catalog(cur: Cursor) -> dict[tuple[str, str], str]:
    """(kind, key) -> definition: the catalog snapshot (schema.py), flattened."""
    return {(kind, key): definition for kind, objects in schema.snapshot(cur).items()
            for key, definition in objects.items()}


def _check(kind: str, key: str, definition: str | None, stem: str) -> dict[str, Any]:
    """A check that the object's definition is `definition` (None: the object is absent)."""
    label = f"{schema.singular(kind)} {key}"
    check = {"catalog": {"kind": kind, "object": key}}
    if definition is None:
        return {"name": f"{label} is absent", **check, "expect": {"count": 0}}
    return {"name": f"{label} as {stem} leaves it", **check, "expect": {"rows": [[definition]]}}


def checks_between(before: dict, after: dict, stem: str) -> list[dict[str, Any]]:
    """Checks that hold in `after` and not in `before`: every object added, dropped or whose definition changed,
    compared by definition (a foreign key turned ON DELETE CASCADE, a policy's USING, a trigger, a grant)."""
    order = {kind: i for i, kind in enumerate(schema.KINDS)}
    result = []
    for key in sorted(set(before) | set(after), key=lambda k: (order.get(k[0], 99), k[1])):
        old, new = before.get(key), after.get(key)
        if old != new:
            result.append(_check(key[0], key[1], new, stem))
    return result


def observe(conn: Connection, layout: Layout, version: str) -> dict[str, Any]:
    """Run the pending files up to `version`, then its rollback file, in one transaction that is rolled back."""
    import psycopg

    migrations = {m.number: m for m in layout.migrations()}
    target = migrations.get(int(version))
    if target is None:
        raise PlanError(f"no migration {version} in {layout.migrations_dir}")
    opts = migrate.Options(check_mode=True)
    seen: dict[str, Any] = {"migration": target}
    with conn.transaction() as tx, conn.cursor() as cur:
        migrate.begin(cur, opts, "5min")
        ledger.ensure(conn)
        applied = ledger.read(cur)
        if target.number in applied:
            raise PlanError(f"migration {target.stem} is applied here already: generate its spec on a database "
                            "where it is pending (dev, before you roll it out)")
        for number in sorted(n for n in migrations if n < target.number and n not in applied):
            earlier = migrations[number]
            migrate.run_file(conn, cur, migrate.Item(load(earlier.up, earlier.version, earlier.name)), opts)
        seen["before"] = catalog(cur)
        migrate.run_file(conn, cur, migrate.Item(load(target.up, target.version, target.name)), opts)
        seen["after"] = catalog(cur)
        if os.path.exists(target.down):
            down = load(target.down, target.version, target.name)
            migrate.run_file(conn, cur, migrate.Item(down, direction="down"), opts)
            seen["rolled_back"] = catalog(cur)
        raise psycopg.Rollback(tx)
    return seen


def spec_document(stem: str, version: str, checks: list[dict[str, Any]], rollback: bool) -> str:
    import yaml

    what = "after its rollback" if rollback else "after the forward path"
    header = (f"# Verification of {stem} {what}, generated from what a dry run observed\n"
              "# (make spec). Add behaviour checks (README, Verification specs); regenerate with FORCE=1.\n")
    body = yaml.safe_dump({"migration": version, "checks": checks}, sort_keys=False, allow_unicode=True, width=100)
    return "---\n" + header + body


def holds_checks(path: str) -> bool:
    import yaml

    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    return bool(isinstance(document, dict) and document.get("checks"))


def generate(conn: Connection, layout: Layout, version: str, force: bool = False) -> dict[str, Any]:
    """Write the forward and rollback specs of `version`; returns what was written or kept."""
    seen = observe(conn, layout, version)
    target = seen["migration"]
    forward = checks_between(seen["before"], seen["after"], target.stem)
    if not forward:
        raise PlanError(f"{target.stem} changes nothing in the catalog ({', '.join(schema.KINDS)}): a data-only "
                        "file needs checks written by hand (README, Verification specs)")
    specs = [(target.spec, forward, False)]
    if "rolled_back" in seen:
        back = checks_between(seen["after"], seen["rolled_back"], f"the rollback of {target.stem}") \
            or checks_between(seen["after"], seen["before"], f"the rollback of {target.stem}")
        specs.append((target.rollback_spec, back, True))
    result: dict[str, Any] = {"written": [], "kept": []}
    for path, found, rollback in specs:
        if holds_checks(path) and not force:
            result["kept"].append(path)
            continue
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(spec_document(target.stem, target.version, found, rollback))
        result["written"].append({"path": path, "checks": len(found)})
    return result
