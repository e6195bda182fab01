"""A picture of a run for its evidence: steps, each migration's lock hold per table, the watch against its baseline.

Plain SVG written here (no library): one row per step and per (migration,
table) lock, to scale in seconds, and the watch's rollbacks per second as a
line over the band its baseline allowed.
"""
from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

WIDTH, LABEL, ROW = 900, 330, 22
COLOURS = {"AccessExclusiveLock": "#d62728", "ShareRowExclusiveLock": "#ff7f0e", "ShareLock": "#e6b800"}


def _bar(y: int, label: str, start: float, seconds: float, scale: float, colour: str, note: str) -> list[str]:
    x = LABEL + start * scale
    width = max(seconds * scale, 1.5)
    return [f'<text x="4" y="{y + 15}">{escape(label[:48])}</text>',
            f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{ROW - 6}" fill="{colour}"/>',
            f'<text x="{x + width + 4:.1f}" y="{y + 15}">{escape(note)}</text>']


def svg(record: dict[str, Any]) -> str:
    timings = record.get("timings") or []
    holds = [(m, lk) for m in record.get("migrations") or [] if m.get("lock_hold_ms") is not None
             for lk in m.get("locks") or []]
    total = max([sum(t["seconds"] for t in timings)] + [m["lock_hold_ms"] / 1000 for m, _ in holds] + [0.001])
    scale = (WIDTH - LABEL - 120) / total
    parts, y = [f'<text x="4" y="16" font-weight="bold">{escape(record.get("kind", "run"))} '
                f'{escape(record.get("run_id", ""))}: {escape(record.get("outcome", ""))}</text>'], 26
    offset, starts = 0.0, {}
    for step in timings:
        starts[step["step"]] = offset
        parts += _bar(y, f"step {step['step']}", offset, step["seconds"], scale, "#4c78a8", f"{step['seconds']:.2f} s")
        offset += step["seconds"]
        y += ROW
    for migration, lock in holds:
        seconds = migration["lock_hold_ms"] / 1000
        # drawn from the start of the step that ran the file
        begin = starts.get("rollback" if migration.get("direction") == "down" else "migrate", 0.0)
        parts += _bar(y, f"{migration['version']} {lock['relation']}", begin, seconds,
                      scale, COLOURS.get(lock["mode"], "#9e9e9e"),
                      f"{lock['mode'].removesuffix('Lock')} {seconds:.2f} s")
        y += ROW
    watch = record.get("watch") or {}
    series = [p.get("rollbacks_per_second", 0.0) for p in watch.get("series") or []]
    if series:
        height, top = 120, y + 10
        base = (watch.get("baseline") or {}).get("rollbacks_per_second", 0.0)
        peak = max(series + [base, 0.001])
        step_x = (WIDTH - LABEL - 20) / max(len(series) - 1, 1)
        band = height * min(base / peak, 1.0)
        parts += [f'<text x="4" y="{top + 15}">watch: rollbacks/s (band: baseline)</text>',
                  f'<rect x="{LABEL}" y="{top + height - band:.1f}" width="{WIDTH - LABEL - 20}" '
                  f'height="{band:.1f}" fill="#c7e9c0"/>',
                  '<polyline fill="none" stroke="#d62728" stroke-width="2" points="'
                  + " ".join(f"{LABEL + i * step_x:.1f},{top + height - height * v / peak:.1f}"
                             for i, v in enumerate(series)) + '"/>']
        y = top + height + 10
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 10}" '
            f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(parts) + "\n</svg>\n")
