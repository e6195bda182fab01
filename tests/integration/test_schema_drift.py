"""Schema drift (issue 20): the catalog as the last changing run left it, against what the database holds."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from conftest import Playbook, execute, query, set_playbook
from migsets import MigrationSet

POLICY_EDIT = "ALTER POLICY bots_select_own ON public.bots USING (true)"


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc


def said(proc) -> str:
    return " ".join(proc.stdout.split())


def test_a_policy_edited_by_hand_is_a_warning_in_dev_on_a_run_with_nothing_pending(playbook, db):
    """Dev warns about the drift; the applied spec, run again, then fails on what the edit broke."""
    ok(playbook.run())
    execute(db, POLICY_EDIT)
    proc = playbook.run()
    text = said(proc)
    assert proc.returncode != 0 and "RLS: a user sees only their own bots and API keys" in text
    assert "WARNING: schema drift" in text, text[-3000:]
    assert ("policy public.bots.bots_select_own: was permissive select to authenticated using "
            "((owner_id = ( SELECT auth.uid() AS uid))), is now permissive select to authenticated using (true)") \
        in text, text[-3000:]
    assert f"changed outside any migration after run {playbook.evidence()[-2]['run_id']}" in text
    record = playbook.evidence()[-1]
    assert record["changed"] == []
    (change,) = record["schema_drift"]["changes"]
    assert change["kind"] == "policies" and change["object"] == "public.bots.bots_select_own"
    assert change["after"].endswith("using (true)")
    junit = ET.parse(playbook.evidence_dir / f"{record['run_id']}.junit.xml").getroot()
    assert [c.get("name") for c in junit.iter("testcase") if c.get("classname") == "schema_drift"] == \
        ["policies public.bots.bots_select_own"]


def test_drift_refuses_outside_dev_until_acknowledged_and_names_every_object(cluster, db, tmp_path):
    book = Playbook(db, tmp_path, group="staging")
    book.set(pgrollout_promotion_environments=[])
    ok(book.run())
    execute(db, POLICY_EDIT + ";"
                "CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"
                "CREATE TRIGGER bots_touch BEFORE UPDATE ON public.bots FOR EACH ROW EXECUTE FUNCTION public.touch();"
                "CREATE OR REPLACE FUNCTION private.owns_run(p_run_id uuid) RETURNS boolean LANGUAGE sql "
                "STABLE SECURITY DEFINER SET search_path = '' AS $$ SELECT true $$;"
                "GRANT SELECT ON auth.users TO anon;"
                "DROP INDEX public.validation_runs_owner_id_idx;"
                "ALTER TABLE public.bots ALTER COLUMN status SET DEFAULT 'retired';"
                "ALTER TABLE public.kb_patterns DISABLE ROW LEVEL SECURITY")
    before = query(db, "SELECT count(*) FROM pgrollout.history")
    for args in ((), ("--check",)):
        proc = book.run("rollout.yml", *args)
        text = said(proc)
        assert proc.returncode != 0 and "The catalog changed outside any migration since run" in text, text[-3000:]
        for expected in ("policy public.bots.bots_select_own: was", "trigger public.bots.bots_touch added",
                         "function private.owns_run(p_run_id uuid): was function md5",
                         "grants on auth.users: was", "index public.validation_runs_owner_id_idx dropped",
                         "column public.bots.status: was text not null default 'active'::text, is now text not "
                         "null default 'retired'::text", "table public.kb_patterns: was rls on, is now rls off",
                         "Nothing was changed", "pgrollout_accept_drift_reason"):
            assert expected in text, (expected, text[-4000:])
        assert book.evidence()[-1]["outcome"] == "refused"
    status = ok(book.run("status.yml"))  # read-only: the status shows the drift too
    assert "schema drift: policy public.bots.bots_select_own: was" in said(status), said(status)[-3000:]
    assert query(db, "SELECT count(*) FROM pgrollout.lease_events WHERE event = 'acquired'")[0][0] == 1
    assert query(db, "SELECT count(*) FROM pgrollout.history") == before
    # what breaks 003's spec is reverted (an acknowledged drift still has to pass the applied specs)
    execute(db, "ALTER POLICY bots_select_own ON public.bots USING (owner_id = (SELECT auth.uid()));"
                "ALTER TABLE public.kb_patterns ENABLE ROW LEVEL SECURITY;"
                "CREATE INDEX validation_runs_owner_id_idx ON public.validation_runs (owner_id);"
                "CREATE OR REPLACE FUNCTION private.owns_run(p_run_id uuid) RETURNS boolean LANGUAGE sql STABLE "
                "SECURITY DEFINER SET search_path = '' AS $$ SELECT EXISTS (SELECT 1 FROM public.validation_runs r "
                "WHERE r.id = p_run_id AND r.owner_id = (SELECT auth.uid())) $$")
    accepted = ok(book.run("rollout.yml", "-e", json.dumps({"pgrollout_accept_drift_reason": "INC-7 hotfix kept"})))
    assert "acknowledged: INC-7 hotfix kept" in said(accepted)
    assert book.evidence()[-1]["schema_drift"]["accepted"] == "INC-7 hotfix kept"
    assert query(db, "SELECT note FROM pgrollout.catalog_snapshots ORDER BY id DESC LIMIT 1") == \
        [("drift accepted: INC-7 hotfix kept",)]
    again = ok(book.run())
    assert "WARNING: schema drift" not in said(again) and book.evidence()[-1]["schema_drift"]["changes"] == []


def test_no_drift_after_a_rollout_a_rollback_and_a_restore(playbook, db):
    ok(playbook.run())
    record = playbook.evidence()[-1]
    ok(playbook.run("rollback.yml"))
    assert playbook.evidence()[-1]["schema_drift"]["changes"] == []
    ok(playbook.run())
    args = {"pgrollout_restore_archive": record["backup"]["path"],
            "pgrollout_confirm_restore": record["backup"]["sha256"][:12]}
    ok(playbook.run("rollback.yml", "-e", json.dumps(args)))
    for _ in range(2):
        proc = ok(playbook.run())
        assert "WARNING: schema drift" not in said(proc), said(proc)[-3000:]
        assert playbook.evidence()[-1]["schema_drift"]["changes"] == []
    assert query(db, "SELECT count(*) FROM pgrollout.catalog_snapshots WHERE note = 'restore'") == [(1,)]


def test_the_diff_shows_a_new_trigger_and_an_extension_not_its_member_functions(empty_db, tmp_path):
    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "trigram", "CREATE EXTENSION IF NOT EXISTS pg_trgm;\n"
                               'CREATE TABLE "Notes" (id int PRIMARY KEY, body text);\n'
                               "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
                               "$$ BEGIN RETURN NEW; END $$;\n"
                               'CREATE TRIGGER "Notes stamp" BEFORE INSERT ON "Notes" FOR EACH ROW '
                               "EXECUTE FUNCTION stamp();\n",
             'DROP TABLE "Notes";\nDROP FUNCTION stamp();\nDROP EXTENSION pg_trgm;\n')
    book = set_playbook(empty_db, mset, tmp_path / "work")
    text = said(ok(book.run("rollout.yml", "--check", "--diff")))
    assert "no recorded catalog snapshot yet" in text  # a database pgrollout has not changed yet
    assert "extension pg_trgm: version" in text, text[-3000:]
    assert 'trigger public."Notes"."Notes stamp": CREATE TRIGGER "Notes stamp" BEFORE INSERT' in text, text[-3000:]
    assert "similarity" not in text and "gtrgm" not in text  # pg_trgm's member functions


def test_a_generated_spec_checks_definitions_so_a_cascade_file_gets_a_check_that_fails_before_it(empty_db, tmp_path):
    from pgrollout import connection, plan, specgen
    from pgrollout.checks import load_spec
    from pgrollout.checks import run as run_checks

    mset = MigrationSet(tmp_path / "set")
    mset.add("001", "parent_child", 'CREATE TABLE parent (id int PRIMARY KEY);\nCREATE TABLE "Child" (id int '
                                    'PRIMARY KEY, parent_id int CONSTRAINT "Child parent" REFERENCES parent (id));\n',
             'DROP TABLE "Child";\nDROP TABLE parent;\n')
    mset.add("002", "cascade", 'ALTER TABLE "Child" DROP CONSTRAINT "Child parent", ADD CONSTRAINT "Child parent" '
                               "FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE;\n",
             'ALTER TABLE "Child" DROP CONSTRAINT "Child parent", ADD CONSTRAINT "Child parent" '
             "FOREIGN KEY (parent_id) REFERENCES parent (id);\n",
             spec="checks:\n  - name: placeholder\n    sql: SELECT 1\n    expect: {count: 1}\n")
    book = set_playbook(empty_db, mset, tmp_path / "work")
    ok(book.run("rollout.yml", "-e", "pgrollout_target_version=001", "-e", "pgrollout_backup=false"))
    (mset.verification / "002_cascade.yml").unlink()
    layout = plan.Layout(str(mset.migrations), str(mset.rollbacks), str(mset.verification))
    with connection.connect(empty_db) as conn:
        written = specgen.generate(conn, layout, "002")["written"]
    assert [w["checks"] for w in written] == [1, 1], written
    spec = load_spec(str(mset.verification / "002_cascade.yml"))
    (check,) = spec
    assert check["name"] == 'constraint public."Child"."Child parent" as 002_cascade leaves it'
    assert check["expect"] == {"rows": [["FOREIGN KEY (parent_id) REFERENCES parent(id) ON DELETE CASCADE"]]}
    with connection.connect(empty_db) as conn:
        assert [r["status"] for r in run_checks(conn, spec)] == ["failed"]  # before the file
    ok(book.run("rollout.yml", "-e", "pgrollout_backup=false"))
    with connection.connect(empty_db) as conn:
        assert [r["status"] for r in run_checks(conn, spec)] == ["passed"]  # after it
    assert book.evidence()[-1]["verification"]["passed"] >= 1


def test_a_database_without_a_snapshot_gets_one_at_its_next_run_even_with_nothing_pending(playbook, db):
    """An adopted database or an older pgrollout's: a no-op run records the catalog and says so; a dry run not."""
    ok(playbook.run())
    execute(db, "DROP TABLE pgrollout.catalog_snapshots")  # as an older pgrollout left it
    dry = ok(playbook.run("rollout.yml", "--check"))
    assert "no recorded catalog snapshot yet" in said(dry), said(dry)[-3000:]
    assert query(db, "SELECT to_regclass('pgrollout.catalog_snapshots') IS NULL") == [(True,)]
    proc = ok(playbook.run())
    assert "the live catalog is recorded now, and drift is checked from the next run on" in said(proc), \
        said(proc)[-3000:]
    assert query(db, "SELECT run_id, note FROM pgrollout.catalog_snapshots") == \
        [(None, "first snapshot: none was recorded before")]
    assert playbook.evidence()[-1]["outcome"] == "no_change"
    execute(db, POLICY_EDIT)
    caught = playbook.run()
    assert "WARNING: schema drift" in said(caught) and "policy public.bots.bots_select_own: was" in said(caught)
    assert query(db, "SELECT count(*) FROM pgrollout.catalog_snapshots") == [(1,)]  # drift is not recorded over


def test_a_dry_run_with_a_drift_reason_records_nothing(cluster, db, tmp_path):
    book = Playbook(db, tmp_path, group="staging")
    book.set(pgrollout_promotion_environments=[])
    ok(book.run())
    execute(db, "ALTER TABLE public.bots ALTER COLUMN status SET DEFAULT 'retired'")
    proc = ok(book.run("rollout.yml", "--check", "-e", json.dumps({"pgrollout_accept_drift_reason": "INC-8"})))
    assert "a real run records the live catalog" in said(proc), said(proc)[-3000:]
    assert query(db, "SELECT count(*) FROM pgrollout.catalog_snapshots WHERE note LIKE 'drift accepted%'") == [(0,)]
    refused = book.run()
    assert refused.returncode != 0 and "The catalog changed outside any migration" in said(refused)
