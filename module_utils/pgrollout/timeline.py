"""A picture of a run for its evidence: steps, each migration's lock hold per table, the watch against its baseline.

Plain SVG written here (no library): one row per step and per (migration,
table) lock, to scale in seconds on a time axis, a legend, the step a failed
or refused run stopped in marked with its message, and the watch's rollbacks
per second as a line over the band its baseline allowed. The same rows as a
Mermaid gantt block (`mermaid`), which GitHub and GitLab draw in Markdown.
"""
from __future__ import annotations

import datetime
import math
from typing import Any
from xml.sax.saxutils import escape

WIDTH, LABEL, ROW, RIGHT = 960, 300, 24, 150
MIN_BAR = 4.0  # px: a lock held for a millisecond is still a bar you can see
STEP_COLOUR, FAILED_COLOUR = "#4c78a8", "#d62728"
# PostgreSQL's table lock modes, weakest to strongest: the stronger, the warmer
LOCK_COLOURS = {
    "AccessShareLock": "#9ecae1", "RowShareLock": "#6baed6", "RowExclusiveLock": "#74c476",
    "ShareUpdateExclusiveLock": "#31a354", "ShareLock": "#e6b800", "ShareRowExclusiveLock": "#ff7f0e",
    "ExclusiveLock": "#e6550d", "AccessExclusiveLock": "#a50f15",
}
FAILED_OUTCOMES = ("refused", "failed_rolled_back", "failed_not_rolled_back", "failed")


def _failed_step(record: dict[str, Any]) -> str | None:
    """The step the run stopped in: the last one it reached, where it did not end well."""
    timings = record.get("timings") or []
    return timings[-1]["step"] if timings and record.get("outcome") in FAILED_OUTCOMES else None


def _lock_rows(record: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(m, lk) for m in record.get("migrations") or [] if m.get("lock_hold_ms") is not None
            for lk in m.get("locks") or []]


def _tick(total: float) -> float:
    """A round interval (1, 2 or 5 times a power of ten) giving about eight ticks."""
    raw = max(total / 8, 1e-3)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _wrap(text: str, width: int = 120) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


class _Canvas:
    def __init__(self, total: float) -> None:
        self.scale = (WIDTH - LABEL - RIGHT) / total
        self.parts: list[str] = []
        self.y = 30

    def draw_bar(self, label: str, start: float, seconds: float, fill: str, note: str, stroke: str = "") -> None:
        x, width = LABEL + start * self.scale, max(seconds * self.scale, MIN_BAR)
        outline = f' stroke="{stroke}" stroke-width="3"' if stroke else ""
        self.parts += [f'<text x="4" y="{self.y + 16}">{escape(label[:44])}</text>',
                       f'<rect x="{x:.1f}" y="{self.y + 3}" width="{width:.1f}" height="{ROW - 6}" '
                       f'fill="{fill}"{outline}><title>{escape(label)}: {escape(note)}</title></rect>',
                       f'<text x="{x + width + 4:.1f}" y="{self.y + 16}">{escape(note)}</text>']
        self.y += ROW

    def axis(self, total: float) -> None:
        top, step = self.y + 4, _tick(total)
        self.parts.append(f'<line x1="{LABEL}" y1="{top}" x2="{LABEL + total * self.scale:.1f}" y2="{top}" '
                          'stroke="black"/>')
        for i in range(int(total / step + 1e-9) + 1):
            x = LABEL + i * step * self.scale
            value = f"{i * step:g}"
            # the grid line behind the bars (drawn first), the tick and its label on the axis
            self.parts.insert(0, f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{top}" stroke="#dddddd"/>')
            self.parts += [f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + 5}" stroke="black"/>',
                           f'<text x="{x:.1f}" y="{top + 18}" text-anchor="middle">{value} s</text>']
        self.parts.append(f'<text x="4" y="{top + 18}">time since the run started</text>')
        self.y = top + 30

    def legend(self, entries: list[tuple[str, str]]) -> None:
        x = 4.0
        self.parts.append(f'<text x="{x}" y="{self.y + 14}" font-weight="bold">legend</text>')
        x += 60
        for fill, label in entries:
            width = 14 + 7 * len(label) + 16
            if x + width > WIDTH:
                x, self.y = 64.0, self.y + 20
            self.parts += [f'<rect x="{x:.1f}" y="{self.y + 3}" width="14" height="14" {fill}/>',
                           f'<text x="{x + 18:.1f}" y="{self.y + 14}">{escape(label)}</text>']
            x += width
        self.y += 26


def svg(record: dict[str, Any]) -> str:
    timings = record.get("timings") or []
    holds = _lock_rows(record)
    total = max([sum(t["seconds"] for t in timings)] + [m["lock_hold_ms"] / 1000 for m, _unused in holds] + [0.001])
    canvas = _Canvas(total)
    failed = _failed_step(record)
    title = (f'<text x="4" y="18" font-weight="bold">{escape(record.get("kind", "run"))} '
             f'{escape(record.get("run_id", ""))}: {escape(record.get("outcome", ""))}</text>')
    offset, starts = 0.0, {}
    for step in timings:
        starts[step["step"]] = offset
        stopped = step["step"] == failed
        canvas.draw_bar(f"step {step['step']}", offset, step["seconds"], STEP_COLOUR,
                        f"{step['seconds']:.2f} s" + (" (stopped here)" if stopped else ""),
                        stroke=FAILED_COLOUR if stopped else "")
        offset += step["seconds"]
    modes = []
    for migration, lock in holds:
        seconds = migration["lock_hold_ms"] / 1000
        down = migration.get("direction") == "down"
        # drawn from the start of the step that ran the file
        begin = starts.get("rollback" if down else "migrate", 0.0)
        colour = LOCK_COLOURS.get(lock["mode"], "#9e9e9e")
        modes.append(lock["mode"])
        canvas.draw_bar(f"{'down' if down else 'up'} {migration['version']} {lock['relation']}", begin, seconds,
                        "url(#down)" if down else colour, f"{lock['mode'].removesuffix('Lock')} {seconds:.2f} s",
                        stroke=colour if down else "")
    canvas.axis(total)
    if failed:
        message = (record.get("failure") or {}).get("msg") or record.get("outcome") or ""
        for i, line in enumerate(_wrap(f"{record.get('outcome')} in step {failed}: {message}")[:6]):
            weight = ' font-weight="bold"' if i == 0 else ""
            canvas.parts.append(f'<text x="4" y="{canvas.y + 14}" fill="{FAILED_COLOUR}"{weight}>{escape(line)}</text>')
            canvas.y += 16
        canvas.y += 6
    _watch(canvas, record.get("watch") or {})
    entries = [(f'fill="{STEP_COLOUR}"', "step")]
    if failed:
        entries.append((f'fill="{STEP_COLOUR}" stroke="{FAILED_COLOUR}" stroke-width="3"', "step the run stopped in"))
    entries += [(f'fill="{LOCK_COLOURS.get(m, "#9e9e9e")}"', f"lock {m.removesuffix('Lock')} (up)")
                for m in dict.fromkeys(modes)]
    if any(m.get("direction") == "down" for m, _unused in holds):
        entries.append(('fill="url(#down)" stroke="#555555"', "lock held rolling back (down)"))
    if (record.get("watch") or {}).get("series"):
        entries += [('fill="#c7e9c0"', "watch: baseline band"), (f'fill="{FAILED_COLOUR}"', "watch: rollbacks/s")]
    canvas.legend(entries)
    defs = ('<defs><pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="6" height="6" fill="#eeeeee"/>'
            '<line x1="0" y1="0" x2="0" y2="6" stroke="#555555" stroke-width="3"/></pattern></defs>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{canvas.y + 10}" '
            f'font-family="sans-serif" font-size="12">\n{defs}\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join([title, *canvas.parts]) + "\n</svg>\n")


def _watch(canvas: _Canvas, watch: dict[str, Any]) -> None:
    series = [p.get("rollbacks_per_second", 0.0) for p in watch.get("series") or []]
    if not series:
        return
    height, top = 120, canvas.y + 10
    base = (watch.get("baseline") or {}).get("rollbacks_per_second", 0.0)
    peak = max(series + [base, 0.001])
    step_x = (WIDTH - LABEL - 20) / max(len(series) - 1, 1)
    band = height * min(base / peak, 1.0)
    canvas.parts += [f'<text x="4" y="{top + 15}">watch: rollbacks/s (band: baseline)</text>',
                     f'<text x="4" y="{top + 31}">peak {peak:g}/s, baseline {base:g}/s</text>',
                     f'<rect x="{LABEL}" y="{top + height - band:.1f}" width="{WIDTH - LABEL - 20}" '
                     f'height="{band:.1f}" fill="#c7e9c0"/>',
                     f'<polyline fill="none" stroke="{FAILED_COLOUR}" stroke-width="2" points="'
                     + " ".join(f"{LABEL + i * step_x:.1f},{top + height - height * v / peak:.1f}"
                                for i, v in enumerate(series)) + '"/>']
    canvas.y = top + height + 10


def _mermaid_name(text: str) -> str:
    # a task name ends at ':' and '#' starts a comment in Mermaid's gantt syntax
    return " ".join(text.replace(":", " ").replace("#", " ").replace(";", " ").split())[:60] or "?"


def _ms(iso: str) -> int:
    return int(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def mermaid(record: dict[str, Any]) -> list[str]:
    """The timeline as a Mermaid gantt block (Markdown lines), or no line without step timings."""
    timings = [t for t in record.get("timings") or [] if t.get("started_at")]
    if not timings:
        return []
    failed = _failed_step(record)
    lines = ["```mermaid", "gantt", f"    title {_mermaid_name(record.get('kind', 'run'))} "
             f"{_mermaid_name(record.get('run_id', ''))} - {_mermaid_name(record.get('outcome', ''))}",
             "    dateFormat x", "    axisFormat %H:%M:%S", "    section steps"]
    starts = {}
    for i, step in enumerate(timings):
        begin = _ms(step["started_at"])
        starts[step["step"]] = begin
        tag = "crit, " if step["step"] == failed else "done, "
        lines.append(f"    {_mermaid_name(step['step'])} {step['seconds']:.2f} s :{tag}s{i}, {begin}, "
                     f"{begin + max(int(step['seconds'] * 1000), 1)}")
    holds = _lock_rows(record)
    if holds:
        lines.append("    section locks")
    for i, (migration, lock) in enumerate(holds):
        down = migration.get("direction") == "down"
        begin = starts.get("rollback" if down else "migrate", _ms(timings[0]["started_at"]))
        end = begin + max(int(migration["lock_hold_ms"]), 1)
        lines.append(f"    {'down' if down else 'up'} {_mermaid_name(migration['version'])} "
                     f"{_mermaid_name(lock['relation'])} {lock['mode'].removesuffix('Lock')} "
                     f":{'' if down else 'active, '}l{i}, {begin}, {end}")
    return [*lines, "```"]
