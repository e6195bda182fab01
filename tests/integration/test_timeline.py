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
    assert "step migrate" in texts and "004 public.kb_patterns" in texts
    assert '004 public.a "quoted" <name>' in texts  # escaped in the file, intact once parsed
    assert len(list(root.iter("{http://www.w3.org/2000/svg}polyline"))) == 1


def test_the_timeline_renders_to_png(tmp_path):
    converter = shutil.which("rsvg-convert")
    if converter is None:
        pytest.skip("rsvg-convert is not installed (.ci/run installs librsvg2-bin)")
    source, target = tmp_path / "run.svg", tmp_path / "run.png"
    source.write_text(timeline.svg(RECORD))
    subprocess.run([converter, "-o", str(target), str(source)], check=True)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 1000
