"""The status page's two charts, as inline SVG: the loads of the last day, the rows per day.

Pure functions from rows to markup, no I/O, every text escaped. The timeline draws each
load of the last 24 hours as a mark at the time it finished, as high as it took long (a
log scale: a 10 ms load and a 60 s one on one chart), as large as it had rows, failed
ones in red. The rows-per-day chart draws one column per calendar day up to the latest
run date, so a day without rows is a gap in its place, not a column left out. Each mark
and column has a `<title>` with its numbers, and the rows per day are also written out
below their chart (`<details>`), so that the numbers are there without the picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

WIDTH, HEIGHT = 640, 220
_LEFT, _BOTTOM, _TOP = 46, 22, 8
TIMELINE_HOURS = 24


@dataclass(frozen=True)
class Mark:
    """One load on the timeline."""

    file_name: str
    failed: bool
    rows: int
    finished: datetime
    seconds: float


def _svg(label: str, body: str) -> str:
    return (f'<svg role="img" aria-label="{escape(label)}" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}">{body}</svg>')


def timeline(marks: Sequence[Mark], now: datetime) -> str:
    """Every load finished in the `TIMELINE_HOURS` before `now`."""
    start = now - timedelta(hours=TIMELINE_HOURS)
    shown = [m for m in marks if start <= m.finished <= now]
    if not shown:
        return f"<p>No loads in the last {TIMELINE_HOURS} hours.</p>"
    # Decades of seconds from 10 ms up to the slowest load (at least 10 s).
    low = -2
    high = max(1, math.ceil(math.log10(max(max(m.seconds for m in shown), 1e-2))))
    plot_w, plot_h = WIDTH - _LEFT - 8, HEIGHT - _TOP - _BOTTOM
    top_rows = max(m.rows for m in shown) or 1

    def y(seconds: float) -> float:
        decade = min(max(math.log10(max(seconds, 1e-2)), low), high)
        return _TOP + plot_h * (high - decade) / (high - low)

    axis = []
    for decade in range(low, high + 1):
        at = y(10.0 ** decade)
        text = f"{10.0 ** decade:g} s"
        axis.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - 8}" y1="{at:.1f}" '
                    f'y2="{at:.1f}"></line><text class="axis" x="{_LEFT - 4}" '
                    f'y="{at + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    for hours_ago in range(TIMELINE_HOURS, -1, -6):
        x = _LEFT + plot_w * (TIMELINE_HOURS - hours_ago) / TIMELINE_HOURS
        axis.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                    f"{'now' if not hours_ago else f'-{hours_ago} h'}</text>")
    dots = []
    # Failed loads last, so that they are drawn on top: never hidden under a large mark.
    for mark in sorted(shown, key=lambda m: m.failed):
        x = _LEFT + plot_w * (mark.finished - start).total_seconds() / (TIMELINE_HOURS * 3600)
        radius = 2.5 + 6 * math.sqrt(max(mark.rows, 0) / top_rows)
        state = "failed" if mark.failed else "processed"
        title = (f"{mark.file_name}: {state}, {mark.rows:,} rows in {mark.seconds:.3f} s, "
                 f"finished {mark.finished:%Y-%m-%d %H:%M:%S}Z")
        dots.append(f'<circle class="{state}" cx="{x:.1f}" cy="{y(mark.seconds):.1f}" '
                    f'r="{radius:.1f}"><title>{escape(title)}</title></circle>')
    return _svg(f"the loads of the last {TIMELINE_HOURS} hours: when each finished and how "
                "long it took", "".join(axis) + "".join(dots))


def rows_per_day(days: Sequence[tuple[str, int]], span: int) -> str:
    """Rows per run date, one column per calendar day of the `span` days up to the latest
    of `days` (oldest first); days without rows stay empty."""
    if not days:
        return "<p>No rows loaded yet.</p>"
    last = date.fromisoformat(days[-1][0])
    rows = dict(days)
    slots = [(last - timedelta(days=span - 1 - i)).isoformat() for i in range(span)]
    top = max(rows.values()) or 1
    plot_w, plot_h = WIDTH - _LEFT - 8, HEIGHT - _TOP - _BOTTOM
    step = plot_w / span
    parts = [f'<text class="axis" x="{_LEFT - 4}" y="{_TOP + 8}" text-anchor="end">'
             f"{top:,}</text>",
             f'<text class="axis" x="{_LEFT - 4}" y="{_TOP + plot_h}" text-anchor="end">0'
             "</text>"]
    for i, day in enumerate(slots):
        x = _LEFT + i * step
        if i % 5 == span % 5 - 1 or i == span - 1:  # a date every five days, and the last
            parts.append(f'<text class="axis" x="{x + step / 2:.1f}" y="{HEIGHT - 6}" '
                         f'text-anchor="middle">{escape(day[5:])}</text>')
        count = rows.get(day)
        if count is None:
            parts.append(f'<g class="gap" data-day="{escape(day)}"><title>{escape(day)}: no '
                         "rows</title></g>")
            continue
        height = max(1.0, plot_h * count / top) if count else 0.0
        parts.append(
            f'<g class="day" data-day="{escape(day)}" data-rows="{count}"><title>'
            f"{escape(day)}: {count:,} rows</title><rect x=\"{x + 1:.1f}\" "
            f'y="{_TOP + plot_h - height:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{height:.1f}"></rect></g>')
    numbers = "".join(f"<tr><td>{escape(d)}</td><td class=\"n\">{n:,}</td></tr>"
                      for d, n in days)
    return (_svg(f"rows loaded per run date, the {span} days up to {last.isoformat()}",
                 "".join(parts))
            + f'<details><summary>the numbers</summary><table>{numbers}</table></details>')
