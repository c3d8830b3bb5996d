"""The status page's two charts, as inline SVG: the loads of the last day, the rows per day.

Pure functions from rows to markup, no I/O, every text escaped. The timeline draws the
loads of the last 24 hours by quarter hour, as the database counted them (`LoadBin`), so
that it is as large for 100,000 loads as for 100: in each quarter hour a mark at the
time they finished, as high as the slowest took (a log scale: a 10 ms load and a 60 s one
on one chart), as large as they had rows, a line down to the fastest, failed ones in
red (a mark of their own, drawn on top). A quarter hour of one load is that load, named.
The rows-per-day chart draws one column per calendar day up to the latest run date, so
a day without rows is a gap in its place, not a column left out. Each mark and column
has a `<title>` with its numbers, and the rows per day are also written out below their
chart (`<details>`), so that the numbers are there without the picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from html import escape

from filedrop_etl.daemon.warehouse.api import LoadBin

WIDTH, HEIGHT = 640, 220
_LEFT, _BOTTOM, _TOP = 46, 22, 8
TIMELINE_HOURS = 24
# The timeline's slice: 97 at most in 24 hours (six pixels each). It divides a day, so
# that a slice never straddles midnight (today's figures add up whole slices).
SLICE_SECONDS = 15 * 60


def _svg(label: str, body: str) -> str:
    return (f'<svg role="img" aria-label="{escape(label)}" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}">{body}</svg>')


def timeline(bins: Sequence[LoadBin], now: datetime) -> str:
    """The loads finished in the `TIMELINE_HOURS` before `now`, by slice and status."""
    start = now - timedelta(hours=TIMELINE_HOURS)
    shown = [b for b in bins if b.loads]
    if not shown:
        return f"<p>No loads in the last {TIMELINE_HOURS} hours.</p>"
    # Decades of seconds from 10 ms up to the slowest load (at least 10 s).
    low = -2
    high = max(1, math.ceil(math.log10(max(max(b.slowest for b in shown), 1e-2))))
    plot_w, plot_h = WIDTH - _LEFT - 8, HEIGHT - _TOP - _BOTTOM
    top_rows = max(b.rows for b in shown) or 1

    def y(seconds: float) -> float:
        decade = min(max(math.log10(max(seconds, 1e-2)), low), high)
        return _TOP + plot_h * (high - decade) / (high - low)

    def x(slice_: int) -> float:
        # The slice's middle, within the window (the first and last are cut by it).
        middle = datetime.fromtimestamp((slice_ + 0.5) * SLICE_SECONDS, UTC)
        middle = min(max(middle, start), now)
        return _LEFT + plot_w * (middle - start).total_seconds() / (TIMELINE_HOURS * 3600)

    axis = []
    for decade in range(low, high + 1):
        at = y(10.0 ** decade)
        text = f"{10.0 ** decade:g} s"
        axis.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - 8}" y1="{at:.1f}" '
                    f'y2="{at:.1f}"></line><text class="axis" x="{_LEFT - 4}" '
                    f'y="{at + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    for hours_ago in range(TIMELINE_HOURS, -1, -6):
        at = _LEFT + plot_w * (TIMELINE_HOURS - hours_ago) / TIMELINE_HOURS
        axis.append(f'<text class="axis" x="{at:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                    f"{'now' if not hours_ago else f'-{hours_ago} h'}</text>")
    ranges: dict[int, tuple[float, float]] = {}
    for b in shown:
        fastest, slowest = ranges.get(b.slice, (b.fastest, b.slowest))
        ranges[b.slice] = (min(fastest, b.fastest), max(slowest, b.slowest))
    lines = [f'<line class="range" x1="{x(n):.1f}" x2="{x(n):.1f}" y1="{y(hi):.1f}" '
             f'y2="{y(lo):.1f}"></line>' for n, (lo, hi) in ranges.items() if hi > lo]
    dots = []
    # Failed loads last, so that they are drawn on top: never hidden under a large mark.
    for b in sorted(shown, key=lambda b: b.status == "failed"):
        radius = 2.5 + 6 * math.sqrt(max(b.rows, 0) / top_rows)
        state = "failed" if b.status == "failed" else "processed"
        dots.append(f'<circle class="{state}" cx="{x(b.slice):.1f}" cy="{y(b.slowest):.1f}" '
                    f'r="{radius:.1f}" data-loads="{b.loads}"><title>{escape(_title(b, state))}'
                    "</title></circle>")
    return _svg(f"the loads of the last {TIMELINE_HOURS} hours by quarter hour: when they "
                "finished and how long they took", "".join(axis + lines + dots))


def _title(b: LoadBin, state: str) -> str:
    began = datetime.fromtimestamp(b.slice * SLICE_SECONDS, UTC)
    when = f"finished {began:%Y-%m-%d %H:%M}-{began + timedelta(seconds=SLICE_SECONDS):%H:%M}Z"
    if b.file_name is not None:
        return f"{b.file_name}: {state}, {b.rows:,} rows in {b.slowest:.3f} s, {when}"
    return (f"{b.loads:,} loads {state}, {b.rows:,} rows, {b.fastest:.3f} s to "
            f"{b.slowest:.3f} s each, {when}")


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
