"""The status page's two charts, as inline SVG: the loads of the last day, the rows per day.

Pure functions from rows to markup, no I/O, every text escaped. The timeline draws the
loads of the last 24 hours by quarter hour, as the database counted them (`LoadBin`), so
that it is as large for 100,000 loads as for 100: in each quarter hour a mark at the
time they finished, as high as the slowest took (a log scale: a 10 ms load and a 60 s one
on one chart), as large as they had rows, a line down to the fastest, failed ones in
red (a mark of their own, drawn on top, beside the processed one of its quarter hour, not
over it). A quarter hour of one load is that load, named; the few largest marks say how
many loads they stand for (a burst of 200 is one mark, not one load). The rows-per-day
chart draws one column per calendar day up to the latest run date, so a day without
rows is a gap in its place, not a column left out, on a scale of round steps. Each
chart's left margin fits its widest tick label (`left_margin`). Each mark and column
has a `<title>` with its numbers, and the rows per day are also written out below their
chart (`<details>`), so that the numbers are there without the picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape

from filedrop_etl.daemon.warehouse.api import LoadBin

WIDTH, HEIGHT = 640, 220
_BOTTOM, _TOP, _RIGHT = 22, 8, 8
TIMELINE_HOURS = 24
# The timeline's slice: 97 at most in 24 hours (six pixels each). It divides a day, so
# that a slice never straddles midnight (today's figures add up whole slices).
SLICE_SECONDS = 15 * 60
# The size of the charts' text (the page's CSS says the same: `svg text`).
FONT_PX = 11
# Between a tick label and the plot, and between a label and the chart's edge.
_GAP, _EDGE = 4, 2
# A mark's radius: the smallest, and the most its rows add. A slice's processed and
# failed marks sit _SHIFT either side of its time, so that neither hides the other.
_RADIUS, _RADIUS_ROWS, _SHIFT = 2.5, 6.0, 3.0
# A failed mark is never smaller than this (failed loads have no rows): a red dot of 2.5
# beside a blue one of 8.5 was hard to see.
_RADIUS_FAILED = 3.5
# The counts written beside marks: those of the few largest marks of each status (a
# burst, the busiest quarter hours), not of every mark of a steady flow.
COUNTED = 3
# The timeline's right margin: the largest mark of the latest slice stays whole.
_TIMELINE_RIGHT = math.ceil(_RADIUS + _RADIUS_ROWS + _SHIFT) + _EDGE
# Widths in em of the page's sans-serif (DejaVu, Liberation, Arial and the like) at
# their widest: most characters, the wide letters and the narrow punctuation.
_NARROW, _WIDE = frozenset(",.:;'|!ijlI ()[]-"), frozenset("mwMW%@")


def text_width(text: str, size: float = FONT_PX) -> float:
    """A generous estimate of `text`'s width in pixels at `size`: what a chart's margin
    must leave for its labels, which the browser lays out later (no font metrics here)."""
    return size * sum(.4 if c in _NARROW else .95 if c in _WIDE else .66 for c in text)


def left_margin(labels: Sequence[str]) -> int:
    """The left margin that fits the widest of a chart's tick labels, right-aligned
    _GAP before the plot: "300,000" did not fit a fixed 46 px and lost its 3."""
    return math.ceil(_EDGE + max((text_width(t) for t in labels), default=0) + _GAP)


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
    ticks = [(10.0 ** decade, f"{10.0 ** decade:g} s") for decade in range(low, high + 1)]
    left = left_margin([text for _, text in ticks])
    right = WIDTH - _TIMELINE_RIGHT
    plot_w, plot_h = right - left, HEIGHT - _TOP - _BOTTOM
    top_rows = max(b.rows for b in shown) or 1

    def y(seconds: float) -> float:
        decade = min(max(math.log10(max(seconds, 1e-2)), low), high)
        return _TOP + plot_h * (high - decade) / (high - low)

    def at(moment: datetime) -> float:
        return left + plot_w * (moment - start).total_seconds() / (TIMELINE_HOURS * 3600)

    def x(b: LoadBin, both: bool) -> float:
        # The middle of the slice's part within the window (the first and the current
        # one are cut by it); both statuses in the slice: each to its side of it.
        began = datetime.fromtimestamp(b.slice * SLICE_SECONDS, UTC)
        middle = at(max(began, start)) / 2 + at(min(began + timedelta(seconds=SLICE_SECONDS),
                                                     now)) / 2
        return middle + (0.0 if not both else _SHIFT if b.status == "failed" else -_SHIFT)

    axis = []
    for seconds, text in ticks:
        level = y(seconds)
        axis.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{level:.1f}" '
                    f'y2="{level:.1f}"></line><text class="axis" x="{left - _GAP}" '
                    f'y="{level + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    for hours_ago in range(TIMELINE_HOURS, -1, -6):
        where = left + plot_w * (TIMELINE_HOURS - hours_ago) / TIMELINE_HOURS
        axis.append(f'<text class="axis" x="{where:.1f}" y="{HEIGHT - 6}" '
                    f"text-anchor=\"middle\">{'now' if not hours_ago else f'-{hours_ago} h'}"
                    "</text>")
    statuses: dict[int, set[str]] = {}
    for b in shown:
        statuses.setdefault(b.slice, set()).add(_state(b))
    marks = [_Mark(b, x(b, len(statuses[b.slice]) > 1), y(b.slowest), y(b.fastest),
                   max(_RADIUS + _RADIUS_ROWS * math.sqrt(max(b.rows, 0) / top_rows),
                       _RADIUS_FAILED if _state(b) == "failed" else 0.0))
             for b in shown]
    # Failed loads last, so that they are drawn on top: never hidden under a large mark.
    marks.sort(key=lambda m: _state(m.bin) == "failed")
    # Each status' lines from slowest down to fastest as one path: a few bytes a slice.
    ranges = {state: "".join(f"M{m.x:.1f} {m.y:.1f}V{m.low:.1f}" for m in marks
                             if _state(m.bin) == state and m.low > m.y)
              for state in ("processed", "failed")}
    lines = [f'<path class="range {state}" d="{d}"></path>' for state, d in ranges.items() if d]
    dots = [f'<circle class="{_state(m.bin)}" cx="{m.x:.1f}" cy="{m.y:.1f}" r="{m.r:.1f}" '
            f'data-loads="{m.bin.loads}"><title>{escape(_title(m.bin, _state(m.bin)))}</title>'
            "</circle>" for m in marks]
    return _svg(f"the loads of the last {TIMELINE_HOURS} hours by quarter hour: when they "
                "finished and how long they took",
                "".join(axis + lines + dots + _counts(marks, left, right)))


@dataclass(frozen=True)
class _Mark:
    """Where a slice's loads of one status are drawn: at (x, y), down to `low`."""

    bin: LoadBin
    x: float
    y: float
    low: float
    r: float


def _state(b: LoadBin) -> str:
    return "failed" if b.status == "failed" else "processed"


def _counts(marks: Sequence[_Mark], left: float, right: float) -> list[str]:
    """How many loads a mark of several stands for, written beside it: a burst of 200 is
    one mark, which must not read as one load. The `COUNTED` largest marks of each status
    are counted, failed ones first: to the right of their mark, processed ones to the
    left (their marks are shifted so), else on the other side, above or below it. A
    count that would cover another, or leave the chart, is left out (the mark's title
    still has it)."""
    placed: list[tuple[float, float, float, float]] = []
    out = []
    largest = [m for state in ("failed", "processed") for m in sorted(
        (m for m in marks if _state(m.bin) == state and m.bin.loads > 1),
        key=lambda m: -m.bin.loads)[:COUNTED]]
    for m in largest:
        text = f"{m.bin.loads:,}"
        width, half = text_width(text), FONT_PX / 2 + 1
        after, before = m.x + m.r + 2, m.x - m.r - 2 - width
        beside = (after, before) if _state(m.bin) == "failed" else (before, after)
        places = [(x0, m.y) for x0 in beside] + [
            (m.x - width / 2, m.y + dy) for dy in (-m.r - half - 1, m.r + half + 1)]
        for x0, middle in places:
            box = (x0, middle - half, x0 + width, middle + half)
            if box[0] >= left and box[2] <= right + _TIMELINE_RIGHT - _EDGE and not any(
                    box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                    for b in placed):
                placed.append(box)
                out.append(f'<text class="count {_state(m.bin)}" x="{x0:.1f}" '
                           f'y="{middle + 4:.1f}">{escape(text)}</text>')
                break
    return out


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
    ticks = _ticks(max(rows.values()))
    labels = [f"{t:,}" for t in ticks]
    left = left_margin(labels)
    plot_w, plot_h = WIDTH - left - _RIGHT, HEIGHT - _TOP - _BOTTOM
    step, top = plot_w / span, ticks[-1]
    parts = []
    for tick, text in zip(ticks, labels, strict=True):
        level = _TOP + plot_h * (1 - tick / top)
        parts.append(f'<line class="grid" x1="{left}" x2="{WIDTH - _RIGHT}" y1="{level:.1f}" '
                     f'y2="{level:.1f}"></line><text class="axis" x="{left - _GAP}" '
                     f'y="{level + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    for i, day in enumerate(slots):
        x = left + i * step
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


def _ticks(top: int) -> list[int]:
    """The rows axis' ticks from 0: up to four equal steps of 1, 2, 2.5 or 5 times a power
    of ten, the last at or just above `top` (the scale's top): the lowest such top, then
    the most steps."""
    steps = [int(m * 10 ** e) for e in range(len(str(max(top, 1)))) for m in (1, 2, 2.5, 5)
             if m * 10 ** e >= 1]
    scale, _, step = min((math.ceil(top / s) * s, -math.ceil(top / s), s) for s in steps
                         if math.ceil(top / s) <= 4)
    return list(range(0, max(scale, step) + 1, step))
