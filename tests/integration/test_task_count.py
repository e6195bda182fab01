"""What a run costs in tasks (issue 22): the controller pays about the same for each task a run executes,
so the everyday runs stay within a budget - a forward run of a 3-file chain and a run with nothing pending."""
from __future__ import annotations

from conftest import set_playbook
from migsets import chain

# the budgets issue 22 set: 15 tasks with nothing pending, 25 forward (include, argument checks and set_facts count)
NOTHING_PENDING, FORWARD = 15, 25


def executed(proc) -> list[str]:
    return [t["task"] for t in proc.results["tasks"] if t["status"] != "skipped"]


def test_a_rollout_and_a_run_with_nothing_pending_stay_within_their_task_budget(empty_db, tmp_path):
    book = set_playbook(empty_db, chain(tmp_path / "set", 3), tmp_path / "work")
    forward = book.run()
    assert forward.returncode == 0, forward.stdout[-3000:]
    nothing = book.run()
    assert nothing.returncode == 0, nothing.stdout[-3000:]
    records = book.evidence()
    assert [r["outcome"] for r in records] == ["succeeded", "no_change"]
    # the record's Markdown carries its timeline as a Mermaid gantt: a row per step the record timed
    markdown = (book.evidence_dir / f"{records[0]['run_id']}.md").read_text()
    gantt = markdown.split("```mermaid\n", 1)[1].split("```", 1)[0].splitlines()
    assert gantt[0] == "gantt" and [x.split()[0] for x in gantt if ":done," in x] == [
        t["step"] for t in records[0]["timings"]]
    assert {"preflight", "backup", "migrate", "verify"} <= {t["step"] for t in records[0]["timings"]}
    # the versions the version gate read once for the run, in every record of it (no second read per host)
    from pgrollout import tools

    expected = {k: v for k, v in tools.versions().items() if k != "ansible_core"}
    for record in records:
        versions = record["tool_versions"]
        assert {k: versions.get(k) for k in expected} == expected and versions["ansible_core"], versions
    print("forward", len(executed(forward)), executed(forward))
    print("nothing pending", len(executed(nothing)), executed(nothing))
    assert len(executed(nothing)) <= NOTHING_PENDING, executed(nothing)
    assert len(executed(forward)) <= FORWARD, executed(forward)
