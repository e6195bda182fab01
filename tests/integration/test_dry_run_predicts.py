"""The dry run predicts the run (issue 18): on generated plans, a green dry run on an unchanged target
is followed by a green run, and a red one names the file and check the run fails on.

Each plan is a chain of 2 to 10 dependent files; later files add columns to tables that earlier specs
check exactly (true right after their file, false at the end: fine unless marked lasting); one failing
check may be placed at random, in a file's own spec or as a lasting check a later file breaks.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from conftest import query
from migsets import MigrationSet, ident
from pgrollout import checks, connection, migrate, plan


def table(i: int) -> str:
    return f'Step "{i}" Table'


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def columns_check(i: int, count: int, lasting: bool) -> str:
    sql = (f"SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' "
           f"AND table_name = '{table(i).replace(chr(39), chr(39) * 2)}'")
    return (f"  - name: table {i} has {count} columns\n    lasting: {'true' if lasting else 'false'}\n"
            f"    sql: {json.dumps(sql)}\n    expect: {{rows: [[{count}]]}}\n")


def generate(root: Path, seed: int) -> tuple[MigrationSet, str]:
    rng = random.Random(seed)
    count = rng.randint(2, 10)
    mset = MigrationSet(root)
    added: dict[int, int] = {}  # table -> columns added to it by later files
    fault = rng.choice(["none", "none", "own_spec", "lasting_broken"])
    fault_at = rng.randint(1, count)
    for i in range(1, count + 1):
        lines = [f"CREATE TABLE {ident(table(i))} (id int PRIMARY KEY, parent int"
                 + (f" REFERENCES {ident(table(i - 1))}(id)" if i > 1 else "") + ");"]
        if i > 1 and rng.random() < 0.6:  # change a table an earlier spec checks exactly
            target = rng.randint(1, i - 1)
            added[target] = added.get(target, 0) + 1
            lines.append(f'ALTER TABLE {ident(table(target))} ADD COLUMN "c {i}" text;')
        spec = "checks:\n" + f"  - name: table {i} exists\n    lasting: true\n" \
            f"    sql: {json.dumps(f'SELECT to_regclass({quoted(ident(table(i)))}) IS NOT NULL')}\n" \
            "    expect: {rows: [[true]]}\n"
        spec += columns_check(i, 2, lasting=False)  # true right after file i only
        if fault == "own_spec" and i == fault_at:
            spec += columns_check(i, 7, lasting=rng.random() < 0.5)  # false at once
        mset.add(f"{i:03d}", f"step_{i}", "\n".join(lines) + "\n", f"DROP TABLE {ident(table(i))} CASCADE;\n",
                 spec=spec)
    if fault == "lasting_broken":
        broken = [t for t in added if t < count]
        if broken:  # a lasting check that a later file makes false
            target = rng.choice(broken)
            path = mset.verification / f"{target:03d}_step_{target}.yml"
            path.write_text(path.read_text() + columns_check(target, 2, lasting=True).replace(
                "has 2 columns", "keeps 2 columns"))
        else:
            fault = "none"
    return mset, fault


def failure(exc: migrate.MigrationError) -> tuple[str, list[str]]:
    """(where, failing checks) of a failed plan: a file's transaction, or the after-commit verification."""
    if "after_commit" in exc.details:
        failed = checks.failures(exc.details["after_commit"]["checks"])
        return "after commit", sorted(f"{Path(r['spec']).name}: {r['name']}" for r in failed)
    failed = checks.failures(exc.details.get("checks") or [])
    return Path(exc.details["file"]).name, sorted(r["name"] for r in failed)


def dry_run(conn, items) -> tuple[str, list[str]] | None:
    try:
        migrate.apply_plan(conn, items, migrate.Options(check_mode=True))
    except migrate.MigrationError as exc:
        return failure(exc)
    return None


def real_run(conn, items) -> tuple[str, list[str]] | None:
    """pg_migrate, then what the verify step runs after the commit (pg_assert's specs and lasting_specs)."""
    try:
        summary = migrate.apply_plan(conn, items, migrate.Options())
    except migrate.MigrationError as exc:
        return failure(exc)
    after = summary["after_commit"]
    results = checks.run(conn, checks.spec_checks(after["specs"], after["lasting_specs"]))
    failed = checks.failures(results)
    return ("after commit", sorted(f"{Path(r['spec']).name}: {r['name']}" for r in failed)) if failed else None


@pytest.mark.parametrize("seed", range(16))
def test_a_green_dry_run_is_followed_by_a_green_run_and_a_red_one_names_what_the_run_fails_on(
        empty_db: dict[str, Any], tmp_path: Path, seed: int):
    mset, fault = generate(tmp_path / "set", seed)
    layout = plan.Layout(str(mset.migrations), str(mset.rollbacks), str(mset.verification))
    items = plan.build(layout, [m.up for m in layout.migrations()])
    with connection.connect(empty_db) as conn:
        predicted = dry_run(conn, items)
        assert query(empty_db, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'Step %'") == [(0,)]
        happened = real_run(conn, plan.build(layout, [m.up for m in layout.migrations()]))
    assert predicted == happened, (seed, fault)
    assert (predicted is None) == (fault == "none"), (seed, fault, predicted)
    if fault == "lasting_broken":
        assert predicted[0] == "after commit" and all("keeps 2 columns" in name for name in predicted[1])
