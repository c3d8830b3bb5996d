"""The status page's numbers for the last 24 hours, and the line of figures they make.

What the page shows of the last day is read as a fixed number of values that the
database counted (`LastDay`, read by `last_day`): the loads by quarter hour and status
(`LoadBin`), their median duration, and today's files by their latest attempt. Never
one value per load: at 100,000 loads a day the page fetched every one of them, and was
17 MB and 2.4 s. `line` makes the figures of the page's header from them: today's files
processed and failed and rows loaded (UTC), and the last 24 hours' loads per hour, rows
per second while loading, median and worst load duration. No I/O in `line`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from filedrop_etl.daemon import clock
from filedrop_etl.daemon.ops import charts
from filedrop_etl.daemon.warehouse.api import History, LoadBin, Tally

NO_FILES = Tally(0, 0, 0)


@dataclass(frozen=True)
class LastDay:
    """The last 24 hours' loads as the database counted them: the timeline's slices
    (`charts.SLICE_SECONDS`), their median duration, and today's files, each by its
    latest attempt since 00:00 UTC."""

    bins: Sequence[LoadBin] = ()
    median: float | None = None
    today: Tally = NO_FILES


# A day of no loads (or not read: the database was busy).
NOTHING = LastDay()


def last_day(history: History, now: datetime) -> LastDay:
    """What the figures and the timeline show at `now`: a fixed number of values, however
    many loads there were, each counted by the database."""
    since, until = clock.stamp(now - timedelta(hours=charts.TIMELINE_HOURS)), clock.stamp(now)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return LastDay(history.load_bins(since, until, charts.SLICE_SECONDS),
                   history.median_load(since, until),
                   history.tally(clock.stamp(midnight), until))


def line(facts: LastDay, now: datetime) -> str:
    """Today's counts (UTC) and the last 24 hours' pace, as the header's second line."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = int(midnight.timestamp()) // charts.SLICE_SECONDS  # slices never straddle it
    processed = [b for b in facts.bins if b.status == "processed"]
    busy = sum(b.busy for b in processed)
    figures = [
        ("processed today", f"{facts.today.processed:,}"),
        ("failed today", f"{facts.today.failed:,}"),
        ("rows loaded today", f"{sum(b.rows for b in processed if b.slice >= today):,}"),
        ("loads per hour", f"{sum(b.loads for b in facts.bins) / charts.TIMELINE_HOURS:,.1f}"),
        ("rows/s while loading", f"{sum(b.rows for b in processed) / busy:,.0f}"
         if busy else "-"),
        ("median load", _seconds(facts.median) if facts.median is not None else "-"),
        ("worst load", _seconds(max(b.slowest for b in facts.bins)) if facts.bins else "-"),
    ]
    cells = "".join(f"<div><dd>{escape(v)}</dd><dt>{escape(k)}</dt></div>" for k, v in figures)
    return (f'<section id="figures"><dl class="figures">{cells}</dl>'
            f'<p class="hint">today: since 00:00 UTC; the rest: the last '
            f"{charts.TIMELINE_HOURS} hours</p></section>")


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
