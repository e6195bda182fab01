"""Pure logic of layouts, markers, versions and the Supabase CLI's statement split."""
from __future__ import annotations

import pytest
from ansible_collections.pgrollout.postgresql.plugins.module_utils import sqlfile, timeouts


def write(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("SELECT 1;\n")


def test_updown_pairs_up_and_down_files(tmp_path):
    write(tmp_path / "m", ["001_init.up.sql", "001_init.down.sql", "002_more.up.sql", "README.md"])
    found = sqlfile.discover(str(tmp_path / "m"), layout="updown")
    assert [(m.version, m.name) for m in found] == [("001", "init"), ("002", "more")]
    assert found[0].down.endswith("001_init.down.sql") and found[0].spec.endswith("001_init.yml")


def test_supabase_layout_finds_rollbacks_and_specs_by_name(tmp_path):
    write(tmp_path / "m", ["003_bots.sql"])
    (found,) = sqlfile.discover(str(tmp_path / "m"), str(tmp_path / "r"), str(tmp_path / "v"))
    assert found.down == str(tmp_path / "r" / "003_bots_rollback.sql")
    assert found.rollback_spec == str(tmp_path / "v" / "003_bots_rollback.yml")


@pytest.mark.parametrize("layout, names, message", [
    ("supabase", ["6_a.sql", "006_b.sql"], "share version 6"),
    ("supabase", ["003_bots.SQL"], "not a migration file name"),
    ("supabase", ["003-bots.sql"], "not a migration file name"),
    ("supabase", ["003_bots.sql.bak"], "not a migration file name"),
    ("supabase", ["003_bots_rollback.sql"], "rollback files belong in the rollbacks folder"),
    ("supabase", ["003_bots.up.sql"], "layout: updown"),
    ("updown", ["003_bots.sql"], "NNN_name.up.sql"),
    ("updown", ["003_bots.down.sql"], "a down file without its up file"),
    ("updown", ["003_a.up.sql", "003_b.down.sql"], "differs from its up file"),
    ("updown", ["3_a.up.sql", "003_b.up.sql"], "share version 3"),
])
def test_near_misses_and_duplicates_are_errors_never_skipped(tmp_path, layout, names, message):
    write(tmp_path / "m", names)
    with pytest.raises(sqlfile.MigrationFileError, match=message):
        sqlfile.discover(str(tmp_path / "m"), layout=layout)


@pytest.mark.parametrize("first_lines, transactional", [
    ("-- pgrollout: no-transaction", False),
    ("-- morph:nontransactional", False),
    ("-- atlas:txmode none", False),
    ("-- migrate:up transaction:false", False),
    ("-- a comment\n-- morph:nontransactional", False),
    ("-- morph: something else", True),
    ("SELECT 1;\n-- morph:nontransactional", True),
])
def test_other_tools_non_transactional_markers(first_lines, transactional):
    assert sqlfile.is_transactional(first_lines + "\nCREATE INDEX CONCURRENTLY i ON t (x);\n") is transactional


def test_a_bom_is_stripped_and_the_checksum_normalises_crlf_while_the_file_runs_as_written(tmp_path):
    path = tmp_path / "001_bom.sql"
    path.write_bytes("\ufeffCREATE TABLE a (x int);\r\n".encode())
    loaded = sqlfile.load(str(path))
    assert loaded.text == "CREATE TABLE a (x int);\r\n" and loaded.statements[0].text == "CREATE TABLE a (x int)"
    assert loaded.checksum == sqlfile.checksum("CREATE TABLE a (x int);\n")
    assert loaded.ledger_statements == ["CREATE TABLE a (x int)"]


def test_a_comment_only_file_is_a_no_op_and_an_empty_one_is_refused(tmp_path):
    (tmp_path / "001_note.sql").write_text("-- kept for numbering\n")
    loaded = sqlfile.load(str(tmp_path / "001_note.sql"))
    assert loaded.statements == [] and loaded.ledger_statements == ["-- kept for numbering"]
    (tmp_path / "002_empty.sql").write_text("\n\n")
    with pytest.raises(sqlfile.MigrationFileError, match="the file is empty"):
        sqlfile.load(str(tmp_path / "002_empty.sql"))


@pytest.mark.parametrize("text, statements", [
    ("create table a (x int);", ["create table a (x int)"]),
    ("-- head\ncreate table a (x int);\n-- tail\n", ["-- head\ncreate table a (x int)", "-- tail"]),
    ("select 'a;b'; select $f$;$f$;", ["select 'a;b'", "select $f$;$f$"]),
    ("select 1;;\n\nselect 2", ["select 1", "select 2"]),
    ("create function f() returns int begin atomic select 1; end;\nselect 3;",
     ["create function f() returns int begin atomic select 1; end", "select 3"]),
    ("/* block */ select 'é';  -- after\n", ["/* block */ select 'é'", "-- after"]),
])
def test_ledger_statements_are_cut_as_the_supabase_cli_cuts_them(text, statements):
    assert sqlfile.ledger_statements(text) == statements


@pytest.mark.parametrize("value, seconds", [("2s", 2.0), ("500ms", 0.5), ("5min", 300.0), ("1500", 1.5),
                                            ("1h", 3600.0)])
def test_timeouts_are_durations(value, seconds):
    assert timeouts.seconds(value, "lock_timeout") == seconds


@pytest.mark.parametrize("value, message", [("0", "no limit"), ("0s", "no limit"), ("2 seconds", "not a duration"),
                                            ("-1s", "not a duration"), ("", "not a duration")])
def test_unbounded_or_invalid_timeouts_are_refused(value, message):
    with pytest.raises(timeouts.TimeoutSettingError, match=message):
        timeouts.seconds(value, "lock_timeout")
