"""Supabase-shaped migration sets on the local stack (issue 21): the patterns real projects use.

A trigger on auth.users copying raw_user_meta_data into a profile (then a
sign-up inserted as Supabase's auth inserts it), a storage bucket with
policies on storage.objects using storage.foldername, a security_invoker view,
and vault.decrypted_secrets read in a SECURITY DEFINER function. Each set is
prepared with prepare.yml, dry-run, rolled out, rehearsed and rolled back
through ansible-playbook; its schema is compared with psql applying the same files.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from conftest import REPO, execute, query, set_playbook
from migsets import MigrationSet
from pgrollout import connection, schema

ALICE, BOB = "5a5e0000-0000-4000-8000-00000000000a", "5a5e0000-0000-4000-8000-00000000000b"
# a sign-up as Supabase's auth (GoTrue) inserts it: instance, audience, role, metadata, times
SIGN_UP = ("INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, "
           "raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous) VALUES "
           "('00000000-0000-0000-0000-000000000000', '{id}', 'authenticated', 'authenticated', '{email}', "
           "'$2a$10$x', now(), '{{\"provider\": \"email\", \"providers\": [\"email\"]}}', "
           "'{{\"full_name\": \"{name}\", \"avatar_url\": \"https://example.invalid/{name}.png\"}}', now(), now(), "
           "false);\n")
# Alice and Bob signed up (a spec's setup; the indentation is the YAML block's)
TWO_SIGN_UPS = (SIGN_UP.format(id=ALICE, email="alice@example.invalid", name="Alice") + "      "
                + SIGN_UP.format(id=BOB, email="bob@example.invalid", name="Bob"))
PROFILES = """CREATE TABLE public.profiles (
  id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  full_name text,
  avatar_url text,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;

CREATE POLICY "Profiles are visible to their owner" ON public.profiles
  FOR SELECT TO authenticated USING ((SELECT auth.uid()) = id);

-- Supabase's documented pattern: a profile for every new user
CREATE FUNCTION public.handle_new_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO public.profiles (id, full_name, avatar_url)
  VALUES (new.id, new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'avatar_url');
  RETURN new;
END
$$;
REVOKE EXECUTE ON FUNCTION public.handle_new_user() FROM PUBLIC, anon, authenticated;

CREATE TRIGGER on_auth_user_created
  AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();
"""
PROFILES_DOWN = """DROP TRIGGER on_auth_user_created ON auth.users;
DROP FUNCTION public.handle_new_user();
DROP TABLE public.profiles;
"""
PROFILES_SPEC = f"""checks:
  - name: a sign-up gets a profile from its metadata
    setup: |
      {SIGN_UP.format(id=ALICE, email='alice@example.invalid', name='Alice')}
    sql: SELECT full_name, avatar_url FROM public.profiles WHERE id = '{ALICE}'
    expect: {{rows: [[Alice, "https://example.invalid/Alice.png"]]}}
  - name: a user sees only their own profile
    setup: |
      {TWO_SIGN_UPS}
    role: authenticated
    claims: {{sub: {ALICE}, role: authenticated}}
    sql: SELECT full_name FROM public.profiles
    expect: {{rows: [[Alice]]}}
"""
AVATARS = """INSERT INTO storage.buckets (id, name, public) VALUES ('avatars', 'avatars', false);

CREATE POLICY "Avatar owners read their folder" ON storage.objects
  FOR SELECT TO authenticated
  USING (bucket_id = 'avatars' AND (storage.foldername(name))[1] = (SELECT auth.uid())::text);

CREATE POLICY "Avatar owners upload to their folder" ON storage.objects
  FOR INSERT TO authenticated
  WITH CHECK (bucket_id = 'avatars' AND (storage.foldername(name))[1] = (SELECT auth.uid())::text);
"""
AVATARS_DOWN = """DROP POLICY "Avatar owners upload to their folder" ON storage.objects;
DROP POLICY "Avatar owners read their folder" ON storage.objects;
DELETE FROM storage.buckets WHERE id = 'avatars';
"""
AVATARS_SPEC = f"""checks:
  - name: a user reads only the objects in their folder
    setup: |
      INSERT INTO storage.objects (bucket_id, name, owner_id) VALUES
        ('avatars', '{ALICE}/face.png', '{ALICE}'), ('avatars', '{BOB}/face.png', '{BOB}');
    role: authenticated
    claims: {{sub: {ALICE}, role: authenticated}}
    sql: SELECT name, storage.filename(name), storage.extension(name) FROM storage.objects
    expect: {{rows: [["{ALICE}/face.png", face.png, png]]}}
  - name: a user cannot upload into another user's folder
    role: authenticated
    claims: {{sub: {ALICE}, role: authenticated}}
    sql: INSERT INTO storage.objects (bucket_id, name) VALUES ('avatars', '{BOB}/evil.png')
    expect: {{sqlstate: "42501"}}
"""
INVOKER_VAULT = """CREATE VIEW public.my_profile WITH (security_invoker = true) AS
  SELECT id, full_name FROM public.profiles;

CREATE FUNCTION public.service_api_key() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'service_api_key'
$$;
REVOKE EXECUTE ON FUNCTION public.service_api_key() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.service_api_key() TO service_role;
"""
INVOKER_VAULT_DOWN = """DROP FUNCTION public.service_api_key();
DROP VIEW public.my_profile;
"""
INVOKER_VAULT_SPEC = f"""checks:
  - name: the invoker view applies the profiles' row-level security
    setup: |
      {TWO_SIGN_UPS}
    role: authenticated
    claims: {{sub: {BOB}, role: authenticated}}
    sql: SELECT full_name FROM public.my_profile
    expect: {{rows: [[Bob]]}}
  - name: service_role reads the secret through the definer function
    setup: SELECT vault.create_secret('k-123', 'service_api_key')
    role: service_role
    sql: SELECT public.service_api_key()
    expect: {{rows: [[k-123]]}}
  - name: a signed-in user cannot call it
    role: authenticated
    claims: {{sub: {ALICE}, role: authenticated}}
    sql: SELECT public.service_api_key()
    expect: {{sqlstate: "42501"}}
"""
SETS = [("001", "profiles", PROFILES, PROFILES_DOWN, PROFILES_SPEC),
        ("002", "avatars", AVATARS, AVATARS_DOWN, AVATARS_SPEC),
        ("003", "invoker_view_and_vault", INVOKER_VAULT, INVOKER_VAULT_DOWN, INVOKER_VAULT_SPEC)]


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-5000:]
    return proc


def said(proc) -> str:
    return " ".join(proc.stdout.split())


def psql_apply(params: dict, files: list[str]) -> None:
    """The same files through the real psql binary, each in one transaction, as a user without pgrollout would."""
    import localpg

    psql = str(localpg.find_bindir() / "psql")
    env = dict(os.environ, PGPASSWORD=params["login_password"])
    for path in files:
        subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-h", params["login_host"],
                        "-p", str(params["login_port"]), "-U", params["login_user"], "-d", params["login_db"],
                        "-f", path], env=env, check=True, capture_output=True, text=True)


def snapshot(params: dict) -> dict:
    with connection.connect(params) as conn, conn.transaction(), conn.cursor() as cur:
        return schema.snapshot(cur)


def test_supabase_shaped_sets_prepare_dry_run_roll_out_rehearse_and_roll_back(cluster, empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    for version, name, up, down, spec in SETS:
        mset.add(version, name, up, down, spec=spec)
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_exposed_schemas=["public", "storage"], pgrollout_backup=False)

    prepared = ok(book.run("prepare.yml"))
    assert "test-target: applied" in said(prepared) and "supabase_compat.sql" in said(prepared)
    again = ok(book.run("prepare.yml"))
    assert "already in place, nothing changed" in said(again) and "changed=0" in said(again)
    assert query(empty_db, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'auth' "
                           "AND table_name = 'users'") == [(35,)]  # Supabase's auth.users, column for column
    prepared_only = snapshot(empty_db)

    dry = ok(book.run("rollout.yml", "--check"))
    assert book.evidence()[-1]["outcome"] == "dry_run", said(dry)[-3000:]
    assert query(empty_db, "SELECT to_regclass('public.profiles') IS NULL") == [(True,)]

    # every pending file rehearsed on a scratch database: applied, rolled back, applied again, each verified
    before = said(ok(book.run("rehearse.yml")))
    rehearsal = book.evidence()[-1]
    assert rehearsal["outcome"] == "succeeded", before[-3000:]
    steps = {step["step"]: step for step in rehearsal["rehearsal"]}
    for name in ("001_profiles", "002_avatars", "003_invoker_view_and_vault"):
        assert f"applied {name}" in steps["apply"]["msg"], (name, steps)
    assert all(step["ok"] for step in rehearsal["rehearsal"]), rehearsal["rehearsal"]
    assert query(empty_db, "SELECT to_regclass('public.profiles') IS NULL") == [(True,)]  # the target untouched

    ok(book.run())
    record = book.evidence()[-1]
    assert record["outcome"] == "succeeded" and record["changed"] == ["001", "002", "003"]
    # the review: one finding per problem, each on the line of its statement's first token
    findings = record["lint"]["findings"]
    assert findings  # the set has foreign keys to auth.users and definer functions to review
    keys = Counter((f["rule"], os.path.basename(f["file"]), f["line"]) for f in findings)
    assert not [k for k, n in keys.items() if n > 1], keys
    for f in findings:
        first = Path(f["file"]).read_text().splitlines()[f["line"] - 1].strip()
        assert first and not first.startswith("--"), (f, first)

    # a sign-up as Supabase's auth inserts it gets its profile, through the trigger the set created
    execute(empty_db, SIGN_UP.format(id=ALICE, email="alice@example.invalid", name="Alice"))
    assert query(empty_db, f"SELECT full_name FROM public.profiles WHERE id = '{ALICE}'") == [("Alice",)]
    execute(empty_db, f"DELETE FROM auth.users WHERE id = '{ALICE}'")

    # psql applying the same files to a database prepared the same way: the same schema, object for object
    twin = cluster.params("twin_" + empty_db["login_db"])
    execute(cluster.params(), f"CREATE DATABASE {twin['login_db']} TEMPLATE template0")
    try:
        psql_apply(twin, [str(REPO / "supabase/compat/supabase_compat.sql"), *mset.paths()])
        mine, theirs = snapshot(empty_db), snapshot(twin)
        assert schema.diff(theirs, mine) == {}, json.dumps(schema.diff(theirs, mine))[:3000]
    finally:
        execute(cluster.params(), f"DROP DATABASE IF EXISTS {twin['login_db']} WITH (FORCE)")

    rehearsal = ok(book.run("rehearse.yml"))
    assert book.evidence()[-1]["outcome"] == "succeeded", said(rehearsal)[-3000:]

    ok(book.run("rollback.yml", "-e", "pgrollout_rollback_to=000"))
    assert book.evidence()[-1]["outcome"] == "succeeded"
    # pgrollout_backup=false: the rollback took no backup either
    assert not (book.evidence()[-1].get("backup") or {}).get("path")
    backups = tmp_path / "work" / "backups"
    assert not backups.exists() or not any(backups.rglob("*.dump")), list(backups.rglob("*"))
    assert query(empty_db, "SELECT count(*) FROM supabase_migrations.schema_migrations") == [(0,)]
    assert schema.diff(prepared_only, snapshot(empty_db)) == {}  # exactly the prepared state again
    assert query(empty_db, "SELECT count(*) FROM storage.buckets") == [(0,)]


def test_prepare_refuses_prod_and_a_real_supabase_project(cluster, empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    book.set(pgrollout_environment="prod")
    refused = book.run("prepare.yml")
    assert refused.returncode != 0 and "prepare.yml never runs in prod" in said(refused)
    book.set(pgrollout_environment="dev")
    execute(empty_db, "CREATE SCHEMA storage; CREATE TABLE storage.migrations (id int)")  # as Supabase's Storage API
    for args in ((), ("--check",)):
        proc = book.run("prepare.yml", *args)
        assert proc.returncode != 0 and "the target is a Supabase project (storage.migrations)" in said(proc)
    assert query(empty_db, "SELECT to_regnamespace('auth') IS NULL") == [(True,)]  # nothing was changed


def test_an_extension_the_server_cannot_provide_is_named_before_anything_runs(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "table", "CREATE TABLE public.t (id int PRIMARY KEY);\n", "DROP TABLE public.t;\n")
    mset.add("002", "vectors", "-- embeddings\nCREATE EXTENSION IF NOT EXISTS pg_trgm;\n"
                               "CREATE EXTENSION IF NOT EXISTS no_such_ext_for_pgrollout;\n"
                               "CREATE EXTENSION IF NOT EXISTS pg_net;\n",
             "DROP EXTENSION pg_net;\nDROP EXTENSION no_such_ext_for_pgrollout;\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    for args in (("--check",), ()):
        proc = book.run("rollout.yml", *args)
        text = said(proc)
        assert proc.returncode != 0, text[-3000:]
        assert ("002_vectors.sql line 3: CREATE EXTENSION no_such_ext_for_pgrollout: the target's server "
                "(PostgreSQL 15) cannot provide it") in text, text[-3000:]
        assert "002_vectors.sql line 4: CREATE EXTENSION pg_net" in text  # no stub unless asked for
        assert "pg_trgm" not in text.split("cannot provide it")[0][-200:]  # an available one is not listed
        assert book.evidence()[-1]["outcome"] == "refused"
    assert query(empty_db, "SELECT to_regclass('public.t') IS NULL") == [(True,)]


WEBHOOK = """CREATE EXTENSION IF NOT EXISTS pg_net WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS http WITH SCHEMA extensions;
CREATE TABLE public.orders (id bigint PRIMARY KEY, total numeric NOT NULL);
ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;

-- the database-webhook pattern: every new order is posted to an endpoint
CREATE FUNCTION public.notify_order() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM net.http_post('https://hooks.example.invalid/orders', jsonb_build_object('id', new.id));
  RETURN new;
END
$$;
CREATE TRIGGER orders_webhook AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION public.notify_order();
"""
WEBHOOK_DOWN = """DROP TRIGGER orders_webhook ON public.orders;
DROP FUNCTION public.notify_order();
DROP TABLE public.orders;
DROP EXTENSION http;
DROP EXTENSION pg_net;
"""
WEBHOOK_SPEC = """checks:
  - name: a new order is queued for the webhook (the stub never sends it)
    setup: INSERT INTO public.orders (id, total) VALUES (7, 12.5)
    sql: SELECT method, url, convert_from(body, 'UTF8')::jsonb ->> 'id' FROM net.http_request_queue
    expect: {rows: [[POST, "https://hooks.example.invalid/orders", "7"]]}
  - name: http answers without sending anything
    sql: SELECT (extensions.http_get('https://example.invalid')).status
    expect: {rows: [[0]]}
"""


def test_extension_stubs_on_a_local_cluster_are_named_stubs_in_every_output(tmp_path):
    """Opt-in stubs of pg_net and http: the migrations run, nothing is sent, and every output says STUB."""
    import localpg

    # under /tmp as the session's cluster (the server's OS user must reach it; pytest's tmp_path is root's)
    stub_cluster = localpg.LocalCluster(Path(tempfile.mkdtemp(prefix="pgrollout-stubs-")), localpg.free_port(),
                                        fast=True, stubs=["http", "pg_net"])
    try:
        stub_cluster.init()
        stub_cluster.start()
        execute(stub_cluster.params(), "CREATE DATABASE app")
        params = stub_cluster.params("app")
        mset = MigrationSet(tmp_path / "set")
        mset.add("001", "orders_webhook", WEBHOOK, WEBHOOK_DOWN, spec=WEBHOOK_SPEC)
        book = set_playbook(params, mset, tmp_path / "work")
        book.set(pgrollout_backup=False)
        ok(book.run("prepare.yml"))
        dry = ok(book.run("rollout.yml", "--check", "--diff"))
        for text in (said(dry), said(ok(book.run()))):
            assert "WARNING: STUB extension(s)" in text, text[-3000:]
            assert "extension pg_net will be a pgrollout STUB here, not the real pg_net: it sends nothing" in text
            assert "extension http will be a pgrollout STUB here" in text
        assert "0.0.0-pgrollout-stub" in said(dry)  # the dry run's schema change shows the stub's version
        record = book.evidence()[-1]
        assert record["outcome"] == "succeeded"
        assert {s["extension"] for s in record["target"]["extension_stubs"]} == {"http", "pg_net"}
        again = said(ok(book.run()))  # installed now: still named on a run with nothing pending
        assert "extension pg_net is a pgrollout STUB here" in again, again[-3000:]
        status = said(ok(book.run("status.yml")))
        assert "STUB: extension http is a pgrollout STUB here" in status, status[-3000:]
        execute(params, "INSERT INTO public.orders (id, total) VALUES (1, 3)")
        assert query(params, "SELECT url FROM net.http_request_queue") == [("https://hooks.example.invalid/orders",)]
        ok(book.run("rollback.yml"))
        assert query(params, "SELECT count(*) FROM pg_extension WHERE extname IN ('pg_net', 'http')") == [(0,)]
    finally:
        stub_cluster.destroy()


def test_vector_where_the_server_has_it(empty_db, tmp_path):
    """pgvector has no PostgreSQL 15 package on these machines: used only where the server offers it."""
    import pytest

    if not query(empty_db, "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")[0][0]:
        pytest.skip("vector is not in this server's pg_available_extensions (no pgvector package for PostgreSQL 15 "
                    "here): the preflight names it instead (test_an_extension_the_server_cannot_provide_...)")
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "embeddings", "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;\n"
                                  "CREATE TABLE public.docs (id bigint PRIMARY KEY, embedding extensions.vector(3));\n"
                                  "ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY;\n",
             "DROP TABLE public.docs;\nDROP EXTENSION vector;\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    ok(book.run("prepare.yml"))
    ok(book.run())
    ok(book.run("rollback.yml"))
