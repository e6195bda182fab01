"""pgrollout's own lint rules on the parse tree: each trips on a file written for it, a clean file passes."""
from __future__ import annotations

import pytest
from ansible_collections.pgrollout.postgresql.plugins.module_utils import lint, sqlfile

CLEAN = """CREATE TABLE public.notes (id bigint PRIMARY KEY, owner_id uuid NOT NULL);
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON public.notes FOR SELECT TO authenticated USING ((select auth.uid()) = owner_id);
CREATE FUNCTION public.safe() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$ SELECT 1 $$;
GRANT SELECT ON public.notes TO authenticated;
"""


def findings(tmp_path, sql: str, direction: str = "up", name: str = "004_x.sql") -> list[tuple[str, str]]:
    path = tmp_path / name
    path.write_text(sql)
    report = lint.lint([(sqlfile.load(str(path)), direction)], ["public"], use_squawk=False)
    return [(f["rule"], f["severity"]) for f in report["findings"]]


@pytest.mark.parametrize("sql, rule", [
    ("CREATE TABLE public.notes (id int);", ("rls-not-enabled", "error")),
    ("CREATE TABLE notes (id int);", ("rls-not-enabled", "error")),
    ("CREATE POLICY p ON public.t USING (auth.uid() = owner_id);", ("auth-function-not-wrapped", "warn")),
    ("CREATE POLICY p ON public.t WITH CHECK ((auth.jwt() ->> 'role') = 'x');", ("auth-function-not-wrapped", "warn")),
    ("CREATE TABLE private.k (u uuid REFERENCES auth.users (id));", ("foreign-key-to-auth-users", "warn")),
    ("ALTER TABLE private.k ADD FOREIGN KEY (u) REFERENCES auth.users (id);", ("foreign-key-to-auth-users", "warn")),
    ("CREATE FUNCTION public.f() RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ SELECT 1 $$;",
     ("security-definer-without-search-path", "error")),
    ("GRANT SELECT ON public.t TO anon;", ("grant-to-anon", "warn")),
    ("DROP TABLE public.old;", ("drop-on-forward-path", "error")),
    ("ALTER TABLE public.t DROP COLUMN c;", ("drop-on-forward-path", "error")),
])
def test_each_rule_trips_on_a_file_written_for_it(tmp_path, sql, rule):
    assert rule in findings(tmp_path, sql + "\n")


def test_a_clean_file_passes(tmp_path):
    assert findings(tmp_path, CLEAN) == []


def test_drops_in_a_rollback_file_are_its_job(tmp_path):
    assert findings(tmp_path, "DROP TABLE public.notes;\n", direction="down") == []


def test_an_inline_ignore_and_an_acknowledgement_let_a_finding_through_recorded(tmp_path):
    path = tmp_path / "004_drop.sql"
    path.write_text("-- pgrollout: lint-ignore drop-on-forward-path unused since 2025, backed up\n"
                    "DROP TABLE public.old;\n")
    report = lint.lint([(sqlfile.load(str(path)), "up")], ["public"], use_squawk=False)
    assert report["blocking"] == [] and report["findings"][0]["ignored"] == "unused since 2025, backed up"
    other = tmp_path / "005_drop.sql"
    other.write_text("DROP TABLE public.older;\n")
    report = lint.lint([(sqlfile.load(str(other)), "up")], ["public"], ["drop-on-forward-path:005_drop.sql"],
                       use_squawk=False)
    assert report["blocking"] == [] and report["findings"][0]["acknowledged"]
    assert "<failure" not in lint.junit(report)


def test_a_forward_file_without_its_rollback_file_is_a_file_level_finding(tmp_path):
    from ansible_collections.pgrollout.postgresql.plugins.module_utils.plan import Layout

    migrations, rollbacks = tmp_path / "migrations", tmp_path / "rollbacks"
    migrations.mkdir()
    rollbacks.mkdir()
    (migrations / "001_kept.sql").write_text("CREATE TABLE kept (id int);\n")
    (rollbacks / "001_kept_rollback.sql").write_text("DROP TABLE kept;\n")
    (migrations / "002_bare.sql").write_text("CREATE TABLE bare (id int);\n")
    layout = Layout(str(migrations), str(rollbacks))
    found = lint.rollback_findings(layout, lint.files_to_lint(layout, None))
    assert [(f["file"].rsplit("/", 1)[1], f["rule"], f["severity"], f["file_level"]) for f in found] == [
        ("002_bare.sql", "no-rollback-file", "warn", True)]
    assert lint.rollback_findings(layout, lint.files_to_lint(layout, ["001"])) == []
