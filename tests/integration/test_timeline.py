"""The evidence's timeline picture: valid SVG that renders to PNG."""
from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from pgrollout import timeline

RECORD = {
    "kind": "rollout", "run_id": "20261129T100000Z-prod-main-3f2a", "outcome": "failed",
    "timings": [{"step": "preflight", "seconds": 1.2}, {"step": "backup", "seconds": 4.1},
                {"step": "migrate", "seconds": 16.4}, {"step": "watch", "seconds": 600.0}],
    "migrations": [{"version": "004", "lock_hold_ms": 16000,
                    "locks": [{"relation": "public.kb_patterns", "mode": "ShareLock"},
                              {"relation": 'public.a "quoted" <name>', "mode": "AccessExclusiveLock"}]}],
    "watch": {"series": [{"rollbacks_per_second": v} for v in (0.1, 0.2, 35.0, 40.0, 0.3)],
              "baseline": {"rollbacks_per_second": 0.4}},
}


def test_the_timeline_is_valid_svg_with_a_row_per_step_and_lock():
    root = ET.fromstring(timeline.svg(RECORD))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "step migrate" in texts and "up 004 public.kb_patterns" in texts
    assert 'up 004 public.a "quoted" <name>' in texts  # escaped in the file, intact once parsed
    assert len(list(root.iter("{http://www.w3.org/2000/svg}polyline"))) == 1


def test_the_timeline_renders_to_png(tmp_path):
    converter = shutil.which("rsvg-convert")
    if converter is None:
        pytest.skip("rsvg-convert is not installed (.ci/run installs librsvg2-bin)")
    for name, record in (("run", RECORD), ("failed", FAILED)):
        source, target = tmp_path / f"{name}.svg", tmp_path / f"{name}.png"
        source.write_text(timeline.svg(record))
        subprocess.run([converter, "-o", str(target), str(source)], check=True)
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 1000


FAILED = {**RECORD, "outcome": "failed_rolled_back",
          "timings": [{"step": "preflight", "seconds": 1.2, "started_at": "2026-11-29T10:00:00.000+00:00"},
                      {"step": "migrate", "seconds": 3.5, "started_at": "2026-11-29T10:00:01.200+00:00"},
                      {"step": "rollback", "seconds": 2.0, "started_at": "2026-11-29T10:00:04.700+00:00"}],
          "migrations": [{"version": "004", "lock_hold_ms": 2, "direction": "up",
                          "locks": [{"relation": "public.bots", "mode": "AccessExclusiveLock"}]},
                         {"version": "004", "lock_hold_ms": 900, "direction": "down",
                          "locks": [{"relation": "public.bots", "mode": "AccessExclusiveLock"}]}],
          "failure": {"task": "Stop when a check failed", "msg": "Verification failed (004.yml): 1 of 3 checks failed"},
          "watch": {}}


def _texts(record):
    root = ET.fromstring(timeline.svg(record))
    return root, [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_the_timeline_has_a_time_axis_a_legend_and_the_failed_step_with_its_message():
    root, texts = _texts(FAILED)
    # a time axis: ticks in seconds from 0 past the run's length (6.7 s: ticks of 1 s)
    assert {"0 s", "1 s", "6 s"} <= set(texts) and "time since the run started" in texts
    assert "legend" in texts and "step the run stopped in" in texts
    assert "lock AccessExclusive (up)" in texts and "lock held rolling back (down)" in texts
    # the step it stopped in is outlined and its message is said in full
    said = " ".join(t for t in texts if t)
    assert "failed_rolled_back in step rollback: Verification failed (004.yml): 1 of 3 checks failed" in said
    rects = list(root.iter("{http://www.w3.org/2000/svg}rect"))
    assert any(r.get("stroke") == timeline.FAILED_COLOUR for r in rects)
    # a 2 ms lock hold is still a readable bar; up and down are told apart (colour against hatching)
    bars = [r for r in rects if (r.find("{http://www.w3.org/2000/svg}title") is not None
                                 and "public.bots" in r.find("{http://www.w3.org/2000/svg}title").text)]
    assert len(bars) == 2 and all(float(r.get("width")) >= timeline.MIN_BAR for r in bars)
    assert {r.get("fill") for r in bars} == {timeline.LOCK_COLOURS["AccessExclusiveLock"], "url(#down)"}
    # a run that succeeded marks no step
    _, fine = _texts({**FAILED, "outcome": "succeeded"})
    assert "step the run stopped in" not in fine


def test_the_timeline_as_a_mermaid_gantt():
    lines = timeline.mermaid(FAILED)
    assert lines[0] == "```mermaid" and lines[1] == "gantt" and lines[-1] == "```"
    assert "    dateFormat x" in lines
    start = int(__import__("datetime").datetime.fromisoformat("2026-11-29T10:00:04.700+00:00").timestamp() * 1000)
    assert f"    rollback 2.00 s :crit, s2, {start}, {start + 2000}" in lines
    assert any(x.startswith("    down 004 public.bots AccessExclusive :l1, ") for x in lines)
    assert not any(":" in x.split(" :")[0] for x in lines[5:-1])  # no ':' inside a task's name
    assert timeline.mermaid({**FAILED, "timings": []}) == []
