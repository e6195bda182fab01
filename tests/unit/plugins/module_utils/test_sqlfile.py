"""Pure logic of migration files: names, checksums, statement splitting."""
from __future__ import annotations

import pytest
from ansible_collections.pgrollout.postgresql.plugins.module_utils import sqlfile


def test_checksum_ignores_line_endings_and_trailing_newlines():
    unix = "CREATE TABLE a (x int);\nSELECT 1;\n"
    assert sqlfile.checksum(unix) == sqlfile.checksum(unix.replace("\n", "\r\n"))
    assert sqlfile.checksum(unix) == sqlfile.checksum(unix.rstrip("\n"))
    assert sqlfile.checksum(unix) == sqlfile.checksum(unix + "\n\n")
    assert sqlfile.checksum(unix) != sqlfile.checksum(unix.replace("x int", "y int"))


@pytest.mark.parametrize("name, expected", [
    ("003_bot_registration_sharing.sql", ("003", "bot_registration_sharing")),
    ("20240101120000_init.sql", ("20240101120000", "init")),
])
def test_filename_gives_version_and_name(name, expected):
    assert sqlfile.parse_filename(f"/x/{name}") == expected


@pytest.mark.parametrize("name", ["bots.sql", "003-bots.sql", "003_bots.SQL", "v3_bots.sql"])
def test_bad_filename_is_refused_with_the_expected_form(name):
    with pytest.raises(sqlfile.MigrationFileError, match="NNN_name.sql"):
        sqlfile.parse_filename(name)


def test_statements_carry_number_line_and_text():
    text = "-- header\nCREATE TABLE a (x int);\n\nDO $$ BEGIN PERFORM 1; END $$;\nSELECT 'é;';\n"
    stmts = sqlfile.split_statements(text)
    assert [(s.number, s.line, s.kind) for s in stmts] == [
        (1, 2, "CreateStmt"), (2, 4, "DoStmt"), (3, 5, "SelectStmt")]  # the line of the first token
    assert stmts[1].text == "DO $$ BEGIN PERFORM 1; END $$"
    assert stmts[2].text == "SELECT 'é;'"


def test_syntax_error_names_file_and_line():
    with pytest.raises(sqlfile.MigrationFileError, match=r"m\.sql:3: syntax error at or near \"SELEC\""):
        sqlfile.split_statements("SELECT 1;\n\nSELEC 2;\n", "m.sql")


@pytest.mark.parametrize("sql, kind", [
    ("CREATE INDEX CONCURRENTLY i ON t (x)", "!IndexStmt"),
    ("DROP INDEX CONCURRENTLY i", "!DropStmt"),
    ("REINDEX INDEX CONCURRENTLY i", "!ReindexStmt"),
    ("VACUUM t", "!VacuumStmt"),
    ("ALTER SYSTEM SET work_mem = '8MB'", "!AlterSystemStmt"),
    ("CREATE INDEX i ON t (x)", "IndexStmt"),
    ("DROP INDEX i", "DropStmt"),
    ("REINDEX INDEX i", "ReindexStmt"),
])
def test_statements_that_cannot_run_in_a_transaction_are_marked(sql, kind):
    assert sqlfile.split_statements(sql + ";")[0].kind == kind


def test_position_to_line_counts_from_the_statement_start():
    stmt = sqlfile.Statement(number=2, line=10, text="CREATE TABLE t (\n  x int,\n  y nosuchtype\n)", kind="")
    position = stmt.text.index("nosuchtype") + 1
    assert sqlfile.position_to_line(stmt, position) == 12
    assert sqlfile.position_to_line(stmt, None) == 10


def test_the_supabase_layout_orders_versions_as_text_and_refuses_duplicate_versions(tmp_path):
    # the Supabase CLI's order: versions as text, byte by byte
    for name in ("10_c.sql", "2_b.sql", "1_a.sql", "notes.txt"):
        (tmp_path / name).write_text("SELECT 1;")
    assert [p.rsplit("/", 1)[1] for p in sqlfile.find_migrations(str(tmp_path))] == [
        "1_a.sql", "10_c.sql", "2_b.sql"]
    (tmp_path / "2_again.sql").write_text("SELECT 1;")
    with pytest.raises(sqlfile.MigrationFileError, match="share version 2"):
        sqlfile.find_migrations(str(tmp_path))


def test_mixed_length_versions_run_as_the_supabase_cli_runs_them(tmp_path):
    names = ["20240501093000_c.sql", "20240410_b.sql", "20240101120000_a.sql", "20240410120000_d.sql",
             "20250101_e.sql"]
    for name in names:
        (tmp_path / name).write_text("SELECT 1;")
    found = [p.rsplit("/", 1)[1] for p in sqlfile.find_migrations(str(tmp_path))]
    assert found == sorted(names, key=lambda n: n.split("_")[0].encode())  # the CLI's: versions as text
    assert found == ["20240101120000_a.sql", "20240410_b.sql", "20240410120000_d.sql", "20240501093000_c.sql",
                     "20250101_e.sql"]
    # versions compare as text: an 8-digit day sorts among the 14-digit timestamps of that day
    assert sqlfile.version_key("20240410") < sqlfile.version_key("20240501093000")
    assert sqlfile.version_key("20240410", "updown") > sqlfile.version_key("20240101", "updown")


def test_the_updown_layout_orders_versions_as_numbers(tmp_path):
    for name in ("10_c.up.sql", "2_b.up.sql", "1_a.up.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    assert [p.rsplit("/", 1)[1] for p in sqlfile.find_migrations(str(tmp_path), "updown")] == [
        "1_a.up.sql", "2_b.up.sql", "10_c.up.sql"]


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "004_nothing.sql"
    path.write_text("\n  \n")
    with pytest.raises(sqlfile.MigrationFileError, match="the file is empty"):
        sqlfile.load(str(path))


def test_a_statements_line_is_its_first_token_not_the_comment_above_it(tmp_path):
    path = tmp_path / "001_commented.sql"
    path.write_text("-- header\n-- more\n\n/* block\n   comment */\nCREATE TABLE a (id int);\n\n"
                    "-- the foreign key\n   ALTER TABLE a ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES a (id);\n"
                    "SELECT 1; SELECT 2;\n")
    statements = sqlfile.load(str(path)).statements
    assert [s.line for s in statements] == [6, 9, 10, 10]
    assert statements[1].text.startswith("-- the foreign key")  # the text runs as written, comments included


def test_a_server_error_position_maps_to_its_file_line_past_leading_comments():
    text = "SELECT 1;\n-- why\n-- more\nALTER TABLE t\n  ADD COLUMN y nosuchtype;\n"
    (_unused, second) = sqlfile.split_statements(text)
    assert second.line == 4
    position = second.text.index("nosuchtype") + 1  # 1-based, as the server reports it
    assert sqlfile.position_to_line(second, position) == 5
    assert sqlfile.position_to_line(second, None) == 4


def test_a_file_built_from_its_summary_is_the_parsed_file_and_an_edit_or_garbage_is_parsed_again(tmp_path):
    from ansible_collections.pgrollout.postgresql.plugins.module_utils import locks

    path = tmp_path / "001_x.sql"
    path.write_text("-- first\nCREATE TABLE a (id int REFERENCES b (id));\n\nSELECT 1; -- tail\r\nCOMMIT;\n-- end\n")
    parsed = sqlfile.load(str(path), "001", "x")
    made = sqlfile.summary(parsed, locks.file_plan(parsed))
    built = sqlfile.from_summary(str(path), "001", "x", made)
    assert built is not None and built.from_plan and not parsed.from_plan
    assert built.statements == parsed.statements and built.ledger_statements == parsed.ledger_statements
    assert [s.start for s in built.statements] == [s.start for s in parsed.statements]
    assert locks.file_plan(built) == locks.lock_plan(parsed.statements) == {(None, "b"): "ShareRowExclusiveLock"}
    assert built.transaction_control() == parsed.transaction_control() and built.checksum == parsed.checksum
    # the same normalised text (same checksum) but other offsets: the summary no longer applies
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n"))
    assert sqlfile.checksum(path.read_text()) == parsed.checksum
    assert sqlfile.from_summary(str(path), "001", "x", made) is None
    assert sqlfile.from_summary(str(path), "001", "x", "not a summary {{ x }}") is None
