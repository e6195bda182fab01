"""Pure logic of the change window and the promotion gate."""
from __future__ import annotations

import json

import pytest
from ansible_collections.pgrollout.postgresql.plugins.module_utils import gates

WEEKDAYS = gates.Window()


@pytest.mark.parametrize("now, inside", [
    ("2026-12-01T10:00:00Z", True),    # Tuesday, the first minute
    ("2026-12-01T11:59:59Z", True),
    ("2026-12-01T12:00:00Z", False),   # the end is not inside
    ("2026-12-01T09:59:59Z", False),
    ("2026-12-05T10:30:00Z", False),   # Saturday
    ("2026-12-01T11:30:00+01:00", True),  # 10:30 UTC, written in another offset
])
def test_the_default_window_is_weekdays_10_to_12_utc(now, inside):
    assert gates.in_window(WEEKDAYS, gates.parse_now(now))[0] is inside


@pytest.mark.parametrize("now, inside", [
    ("2026-01-15T09:30:00Z", True),    # winter: Berlin is UTC+1, 10:30 there
    ("2026-07-15T09:30:00Z", False),   # summer: UTC+2, 11:30 there, after the window
])
def test_a_window_in_a_named_timezone_follows_daylight_saving_time(now, inside):
    window = gates.Window.from_dict({"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "10:00",
                                     "end": "11:00", "timezone": "Europe/Berlin"})
    judged, local = gates.in_window(window, gates.parse_now(now))
    assert judged is inside
    assert local == ("Thu 10:30 Europe/Berlin" if inside else "Wed 11:30 Europe/Berlin")


@pytest.mark.parametrize("bad, message", [
    ({"days": ["funday"]}, "days must be some of"),
    ({"start": "12:00", "end": "10:00"}, "must be before end"),
    ({"start": "ten"}, "is not a time"),
    ({"timezone": "Mars/Olympus"}, "unknown timezone"),
    ({"hours": 2}, "unknown key"),
])
def test_a_bad_window_is_refused_saying_what_to_fix(bad, message):
    with pytest.raises(gates.GateError, match=message):
        gates.Window.from_dict(bad)


def test_a_time_without_an_offset_is_refused():
    with pytest.raises(gates.GateError, match="has no UTC offset"):
        gates.parse_now("2026-12-01T10:30:00")


def record(folder, name, kind, checksum, outcome="succeeded", changed=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({
        "kind": kind, "outcome": outcome, "run_id": name, "finished_at": name,
        "migrations": [{"version": "003", "checksum": checksum, "changed": changed, "dry_run": False}]}))


def test_promotion_needs_a_rollout_and_a_rehearsal_of_the_same_file_in_each_environment(tmp_path):
    migration = {"version": "003", "name": "bots", "checksum": "a" * 64}
    record(tmp_path / "dev", "1", "rollout", "a" * 64)
    record(tmp_path / "dev", "2", "rehearsal", "b" * 64)           # another version of the file
    record(tmp_path / "dev", "3", "rehearsal", "a" * 64, outcome="failed")
    record(tmp_path / "staging", "4", "rollout", "a" * 64, changed=False)  # already applied: proves nothing
    missing = gates.promotion_missing(str(tmp_path), ["dev", "staging"], [migration])
    assert missing == [
        f"003_bots (aaaaaaaaaaaa) was not rehearsed in dev (no succeeded rehearsal record in {tmp_path}/dev): "
        "run `ansible-playbook rehearse.yml -i inventories/dev` from a clean checkout first",
        f"003_bots (aaaaaaaaaaaa) was not rolled out and verified in staging "
        f"(no succeeded rollout record in {tmp_path}/staging): "
        "run `ansible-playbook rollout.yml -i inventories/staging` from a clean checkout first",
        f"003_bots (aaaaaaaaaaaa) was not rehearsed in staging (no succeeded rehearsal record in {tmp_path}/staging): "
        "run `ansible-playbook rehearse.yml -i inventories/staging` from a clean checkout first",
    ]
    record(tmp_path / "dev", "5", "rehearsal", "a" * 64)
    assert gates.promotion_missing(str(tmp_path), ["dev"], [migration]) == []


def test_evidence_from_a_dirty_work_tree_counts_for_promotion_only_when_allowed(tmp_path):
    migration = {"version": "003", "name": "bots", "checksum": "a" * 64}
    for name, kind in (("1", "rollout"), ("2", "rehearsal")):
        record(tmp_path / "dev", name, kind, "a" * 64)
        path = tmp_path / "dev" / f"{name}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "git_dirty": True}))
    missing = gates.promotion_missing(str(tmp_path), ["dev"], [migration])
    assert len(missing) == 2 and all("git_dirty" in m and "pgrollout_promotion_allow_dirty" in m for m in missing)
    assert gates.promotion_missing(str(tmp_path), ["dev"], [migration], allow_dirty=True) == []
    record(tmp_path / "dev", "3", "rollout", "a" * 64)  # a clean one (git_dirty absent or false) counts
    assert [m for m in gates.promotion_missing(str(tmp_path), ["dev"], [migration]) if "rolled out" in m] == []


def _write_record(folder, name: str, record: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_with_a_signing_key_only_records_whose_signature_verifies_are_promotion_evidence(tmp_path):
    from ansible_collections.pgrollout.postgresql.plugins.module_utils import evidence

    wanted = [{"version": "003", "name": "x", "checksum": "c" * 64}]
    applied = {"migrations": [{"version": "003", "checksum": "c" * 64, "changed": True}], "outcome": "succeeded"}
    for kind in ("rollout", "rehearsal"):
        _write_record(tmp_path / "dev", kind, evidence.sign({**applied, "kind": kind, "run_id": kind}, "k3y"))
    assert gates.promotion_missing(str(tmp_path), ["dev"], wanted, signing_key="k3y") == []
    assert len(gates.promotion_missing(str(tmp_path), ["dev"], wanted, signing_key="another key")) == 2
    # forged: a failed run edited to look succeeded, keeping the signature it had
    failed = evidence.sign({**applied, "kind": "rollout", "run_id": "rollout", "outcome": "failed_rolled_back"}, "k3y")
    _write_record(tmp_path / "dev", "rollout", {**failed, "outcome": "succeeded"})
    (missing,) = gates.promotion_missing(str(tmp_path), ["dev"], wanted, signing_key="k3y")
    assert "was not rolled out and verified in dev (no succeeded rollout record signed with this key" in missing
    # unsigned records: evidence only where no key is set
    _write_record(tmp_path / "dev", "rollout", {**applied, "kind": "rollout", "run_id": "rollout"})
    assert len(gates.promotion_missing(str(tmp_path), ["dev"], wanted, signing_key="k3y")) == 1
    assert gates.promotion_missing(str(tmp_path), ["dev"], wanted) == []
