"""A migration role that is not a superuser, shaped like Supabase's postgres (issue 19, item 6).

The target is built as Supabase builds it: the compatibility layer applied by a
superuser, schema auth owned by its own admin role, and a migration role with
CREATEROLE, CREATEDB and BYPASSRLS but no superuser. Without grants every
privilege it lacks is reported before anything changes; with the grants of
examples/migration-role.sql (the README's) the dry run, rollout, no-op run,
rollback and audit all work, backup and restore rehearsal included.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from conftest import REPO, Playbook, execute, query
from pgrollout import connection, privileges, sqlfile
from pgrollout.scratch import run_sql_file

GRANTS = REPO / "examples" / "migration-role.sql"
REFUSAL = "Refuse a migration role that lacks a privilege the run needs"


@pytest.fixture
def supabase_shaped(cluster, tmp_path):
    """(superuser params, migration role params) of a Supabase-shaped database with no migration applied."""
    suffix = uuid.uuid4().hex[:8]
    name, role, auth_admin = f"s_{suffix}", f"migrator_{suffix}", f"auth_admin_{suffix}"
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    admin = cluster.params(name)
    run_sql_file(admin, str(REPO / "supabase" / "compat" / "supabase_compat.sql"))
    execute(admin, f"""
        CREATE ROLE {auth_admin} NOLOGIN;
        ALTER SCHEMA auth OWNER TO {auth_admin};
        ALTER TABLE auth.users OWNER TO {auth_admin};
        ALTER FUNCTION auth.uid() OWNER TO {auth_admin};
    """)
    yield admin, dict(admin, login_user=role, login_password="migrator-" + suffix), role
    with connection.connect(cluster.params(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        for r in (role, auth_admin):
            conn.execute(f"DROP ROLE IF EXISTS {r}")


def create_role(admin: dict, params: dict, role: str, grants: bool) -> None:
    text = GRANTS.read_text().replace("app_migrator", role)
    if not grants:  # the role alone, as a new project's operator might create it
        text = next(line for line in text.splitlines() if line.startswith("CREATE ROLE"))
    execute(admin, text)
    execute(admin, f"ALTER ROLE {role} PASSWORD '{params['login_password']}'")


def book_for(params: dict, role: str, tmp_path: Path) -> Playbook:
    book = Playbook(params, tmp_path)
    book.set(pgrollout_db_user=role)
    return book


def tables(params: dict) -> set[str]:
    return {r[0] for r in query(params, "SELECT schemaname || '.' || tablename FROM pg_tables "
                                        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")}


def test_every_missing_privilege_is_reported_before_anything_changes(supabase_shaped, tmp_path):
    admin, params, role = supabase_shaped
    create_role(admin, params, role, grants=False)
    before = tables(admin)
    book = book_for(params, role, tmp_path)
    for args in (["--check"], []):
        proc = book.run("rollout.yml", *args)
        assert proc.returncode != 0, proc.stdout[-3000:]
        failed = [t for t in proc.results["tasks"] if t["status"] == "failed"]
        assert failed[0]["result"]["refused_by"] == REFUSAL, failed[0]
        message = failed[0]["result"]["msg"]
        for expected in (f"role {role} cannot create schema pgrollout", f"GRANT CREATE ON DATABASE {admin['login_db']}",
                         f"GRANT USAGE ON SCHEMA auth TO {role}", f"GRANT USAGE, CREATE ON SCHEMA public TO {role}",
                         f"GRANT INSERT, REFERENCES ON auth.users TO {role}", f"GRANT anon TO {role}",
                         f"GRANT pg_read_all_data TO {role}", "Nothing was changed"):
            assert expected in message, (expected, message)
        assert book.evidence()[-1]["outcome"] == "refused", book.evidence()[-1]["outcome"]
    assert tables(admin) == before  # no pgrollout schema, no ledger, no table of 001
    proc = book.run("rollback.yml")
    message = [t for t in proc.results["tasks"] if t["status"] == "failed"][0]["result"]["msg"]
    assert f"role {role} cannot create schema pgrollout" in message and "Nothing was changed" in message, message


def test_one_missing_grant_is_named_alone(supabase_shaped, tmp_path):
    """With every grant but pg_read_all_data, only the backup's need is reported; without a backup the run works."""
    admin, params, role = supabase_shaped
    create_role(admin, params, role, grants=True)
    execute(admin, f"REVOKE pg_read_all_data FROM {role}; CREATE SCHEMA hidden; CREATE TABLE hidden.secrets (id int)")
    book = book_for(params, role, tmp_path)
    proc = book.run("rollout.yml")
    message = [t for t in proc.results["tasks"] if t["status"] == "failed"][0]["result"]["msg"]
    assert message.count(f"role {role} cannot") == 1, message
    assert "no SELECT on hidden.secrets: GRANT pg_read_all_data" in message, message
    proc = book.run("rollout.yml", "-e", "pgrollout_backup=false")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert book.evidence()[-1]["outcome"] == "succeeded"


def test_supabase_shaped_role_rolls_out_end_to_end(supabase_shaped, tmp_path):
    admin, params, role = supabase_shaped
    create_role(admin, params, role, grants=True)
    assert query(params, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [(False,)]
    book = book_for(params, role, tmp_path)

    proc = book.run("rollout.yml", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "public.bots" not in tables(admin)

    proc = book.run("rollout.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    record = book.evidence()[-1]
    assert record["outcome"] == "succeeded" and record["changed"] == ["001", "002", "003"], record["changed"]
    assert record["backup"]["path"] and Path(record["backup"]["path"]).exists()
    assert record["backup_rehearsal"]["rehearsal"]["differences"] == {}
    # what the run says against what the database holds: its tables, owned by the migration role
    assert {"public.bots", "public.bot_api_keys", "public.kb_patterns"} <= tables(admin)
    assert query(admin, "SELECT tableowner FROM pg_tables WHERE tablename = 'bots'") == [(role,)]
    assert [r[0] for r in query(admin, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1")] \
        == ["001", "002", "003"]
    assert query(admin, 'SELECT count(*) FROM pgrollout.history WHERE "by" = %s', (role,))[0][0] >= 3

    proc = book.run("rollout.yml")  # nothing pending: the applied specs verified again as the role
    assert proc.returncode == 0 and book.evidence()[-1]["outcome"] == "no_change", proc.stdout[-3000:]

    proc = book.run("rollback.yml", "-e", "pgrollout_rollback_to=002")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert book.evidence()[-1]["outcome"] == "succeeded"
    assert "public.bots" not in tables(admin) and "public.kb_patterns" in tables(admin)

    proc = book.run("audit.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]


def write(tmp_path: Path, text: str) -> sqlfile.MigrationFile:
    path = tmp_path / "010_extra.sql"
    path.write_text(text)
    return sqlfile.load(str(path), "010", "extra")


def test_statements_on_tables_the_role_does_not_own_are_named(supabase_shaped, tmp_path):
    """The privilege report reads the pending statements: owner, REFERENCES, DML rights and trusted extensions."""
    admin, params, role = supabase_shaped
    create_role(admin, params, role, grants=True)
    execute(admin, f"REVOKE INSERT, REFERENCES ON auth.users FROM {role}; REVOKE service_role FROM {role}; "
                   "CREATE SCHEMA locked; CREATE TABLE locked.\"Odd \"\"name\"\"\" (id int)")
    mf = write(tmp_path, 'ALTER TABLE auth.users ADD COLUMN nickname text;\n'
                         'CREATE TABLE public.notes (id int, who uuid REFERENCES auth.users (id));\n'
                         'INSERT INTO auth.users (id, email) VALUES (gen_random_uuid(), \'x@example.invalid\');\n'
                         'CREATE TABLE locked.t (id int);\n'
                         'DROP TABLE locked."Odd ""name""";\n'
                         'CREATE EXTENSION IF NOT EXISTS plpython3u;\n')
    with connection.connect(params) as conn, conn.cursor() as cur:
        found = privileges.missing(cur, [mf], [], backup=False)
    text = "\n".join(found)
    assert f"ALTER TABLE on auth.users, owned by auth_admin_{role.split('_')[1]}" in text, text
    assert f"GRANT INSERT, REFERENCES ON auth.users TO {role}" in text, text
    assert all(line.startswith(f"role {role} cannot ") for line in found), found
    assert 'DROP on locked."Odd ""name""", owned by postgres' in text, text
    assert f"GRANT USAGE, CREATE ON SCHEMA locked TO {role}" in text, text
    execute(admin, f"REVOKE pg_read_all_data FROM {role}")  # the schema's USAGE came with it
    with connection.connect(params) as conn, conn.cursor() as cur:
        text = "\n".join(privileges.missing(cur, [mf], [], backup=False))
    assert f"use schema locked: GRANT USAGE ON SCHEMA locked TO {role}" in text, text
    available = query(admin, "SELECT count(*) FROM pg_available_extensions WHERE name = 'plpython3u'")[0][0]
    if available:
        assert "create extension plpython3u: it needs a superuser" in text, text
    with connection.connect(admin) as conn, conn.cursor() as cur:  # a superuser needs nothing granted
        assert privileges.missing(cur, [mf], [], backup=True) == []
