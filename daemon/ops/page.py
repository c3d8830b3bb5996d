"""The status page at `/`: one server-rendered HTML document, a few lines of script.

Owns the document and its head (its look, style sheet and script, is
`daemon.ops.page_style`'s). Above the fold on a 1400x1000 screen: whether the daemon is
well, today's counts (files processed and failed, rows loaded) and the last 24 hours'
loads per hour, rows per second while loading and median and worst load duration, then the
two charts of `daemon.ops.charts` side by side. Below: the failed files with their reasons
(and the short command that retries each, or in a few words why not, what to do instead
folded under it: `daemon.ops.page_failed`) and the latest loads, whose errors point at the
failed file's reason rather than repeat it (with the feeds' and the daemons' tables,
`daemon.ops.page_tables`). The page reloads itself every REFRESH_SECONDS (without script,
by a meta refresh). Every value from the database or a file name is escaped where it is
written into the markup, here and in those two. `StatusPage` (made by `source`) gathers
the page's facts: the daemon's own health, and the read side (the history on one read
session of its own, kept across requests and never the worker's; `daemon.ops.folders` for
failed/), at most once a second for all viewers (`daemon.ops.snapshot`); `render` does no
I/O. What the page shows of the last day is a fixed number of values counted by the
database (`daemon.ops.figures`), so that the page is as large and as quick for 100,000
loads a day as for one. Where several feeds are declared, each has its rows-per-day chart
and its line in a table of the feeds (pattern, table, last load), and each recent load
says its feed; with one feed (the built-in one alone) the page is as it was before feeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import Contract
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.config.invocation import CommandLine, command_line
from filedrop_etl.daemon import clock, warehouse
from filedrop_etl.daemon.errors import DatabaseUnavailable, SchemaMismatch
from filedrop_etl.daemon.ops import (
    charts,
    figures,
    fleet,
    folders,
    page_failed,
    page_tables,
    snapshot,
    superseded,
)
from filedrop_etl.daemon.ops.commands.table import when
from filedrop_etl.daemon.ops.folders import FailedFile
from filedrop_etl.daemon.ops.metrics import WorkerState
from filedrop_etl.daemon.ops.page_style import REFRESH, REFRESH_SECONDS, STYLE
from filedrop_etl.daemon.warehouse import api
from filedrop_etl.daemon.warehouse.api import Daemon, DayRows, Load, WarehouseFault

RECENT_LOADS = 20
CHART_DAYS = 31


@dataclass(frozen=True)
class Health:
    """What the header says: the daemon's own view of itself."""

    version: str
    write_mode: str
    observer: str
    ready: bool
    problems: Sequence[str]
    queue_depth: int
    last_success: str | None


class StatusPage:
    """The page as it is now, for the HTTP server's `/`: made at most once a second for
    every viewer of the moment (`Snapshot`), from one kept read session
    (`warehouse.kept_reading`: on PostgreSQL one session for all viewers, not one per
    request). `close` ends that session."""

    def __init__(self, settings: Settings, daemon: WorkerState, version: str, *,
                 fresh_seconds: float = snapshot.FRESH_SECONDS) -> None:
        self.settings, self.daemon, self.version = settings, daemon, version
        # The commands the page suggests find this daemon from any folder (read once:
        # `command_line` reads the config file).
        self._command = command_line(settings)
        self._history = warehouse.kept_reading(settings)
        self._snapshot = snapshot.Snapshot(self._make, fresh_seconds)

    def __call__(self) -> str:
        return self._snapshot()

    def close(self) -> None:
        self._history.close()

    def _make(self) -> str:
        loads: list[Load] = []
        facts = figures.NOTHING
        days: dict[str, list[DayRows]] = {}
        last = None
        last_loads: dict[str, Load | None] = {}
        nodes: list[Daemon] = []
        now = datetime.now(UTC)
        feeds = self.settings.feeds
        failed = folders.failed_files(self.settings.failed)
        stale: dict[str, Load] = {}
        try:
            with self._history.reading() as history:
                stale = superseded.superseded(history, feeds, failed)
                loads = history.recent_loads(api.LoadFilter(limit=RECENT_LOADS))
                facts = figures.last_day(history, now)
                # A day of margin: a producer's day may begin before UTC's.
                latest = (now.date() + timedelta(days=1)).isoformat()
                days = {c.name: history.rows_per_day(c, CHART_DAYS, latest) for c in feeds}
                last = history.last_success(clock.stamp(now))
                nodes = history.daemons()
                if len(feeds) > 1:
                    last_loads = {name: next(iter(history.recent_loads(
                        api.LoadFilter(limit=1, feed=name))), None) for name in feeds.names}
        except (WarehouseFault, DatabaseUnavailable, SchemaMismatch):
            pass  # busy beyond the timeout: the page shows what it has, and refreshes
        settings, daemon = self.settings, self.daemon
        health = Health(self.version, settings.write_mode, settings.observer,
                        daemon.swept.is_set(), daemon.health(), daemon.queue_depth(),
                        last.finished_at if last else None)
        return render(health, failed, loads, days, feeds, last_day=facts, now=now,
                      nodes=nodes, last_loads=last_loads, superseded=stale,
                      command=self._command)


def source(settings: Settings, daemon: WorkerState, version: str) -> StatusPage:
    """A renderer of the page as it is now, for the HTTP server's `/`."""
    return StatusPage(settings, daemon, version)


def render(health: Health, failed: Sequence[FailedFile], loads: Sequence[Load],
           days: Mapping[str, Sequence[DayRows]], feeds: Feeds, *,
           last_day: figures.LastDay = figures.NOTHING, now: datetime | None = None,
           prog: str = "filedrop-etl", nodes: Sequence[Daemon] = (),
           last_loads: Mapping[str, Load | None] | None = None,
           superseded: Mapping[str, Load] | None = None,
           command: CommandLine | None = None) -> str:
    """The whole page; `days` each feed's rows per day, oldest first (the CHART_DAYS up
    to the latest are drawn); `last_day`, the loads of the 24 hours before `now`, for
    the figures and the timeline; `last_loads`, each feed's latest load (several feeds);
    `superseded`, the failed files a later drop's load made stale, by name; `command`,
    what writes the commands it suggests (`config.invocation`)."""
    now = now or datetime.now(UTC)
    stale = superseded or {}
    several = len(feeds) > 1
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS}"></noscript>',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{prog} status</title>",
        f"<style>{STYLE}</style></head><body>",
        _header(health, sum(f.name not in stale for f in failed), prog, nodes),
        figures.line(last_day, now),
        '<div class="charts"><section id="timeline"><h2>Loads, last 24 hours</h2>'
        f"{charts.timeline(last_day.bins, now)}</section>"
        + "".join(_days(c, days.get(c.name, ()), several) for c in feeds) + "</div>",
        *([page_tables.feeds(feeds, last_loads or {})] if several else []),
        page_failed.section(failed, command or CommandLine(prog), feeds, stale),
        page_tables.nodes(nodes),
        page_tables.loads(loads, {f.original for f in failed} | {f.name for f in failed},
                          several),
        f"<script>{REFRESH}</script>",
        "</body></html>",
    ])


def _days(contract: Contract, days: Sequence[DayRows], several: bool) -> str:
    """A feed's rows-per-day chart: the one chart of one feed, titled by feed for several."""
    if not several:
        return ('<section id="days"><h2>Rows per day</h2>'
                f"{charts.rows_per_day([(d.run_date, d.rows) for d in days], CHART_DAYS)}"
                "</section>")
    name = escape(contract.name)
    chart = ("<p>No date column: no rows per day.</p>" if contract.date_column is None else
             charts.rows_per_day([(d.run_date, d.rows) for d in days], CHART_DAYS))
    return (f'<section class="days" id="days-{name}" data-feed="{name}">'
            f"<h2>Rows per day: {name}</h2>{chart}</section>")


def _header(health: Health, failed: int, prog: str, nodes: Sequence[Daemon] = ()) -> str:
    # On a shared warehouse the badge counts the daemons alive of those expected (a node
    # stopped cleanly is not), and is not green while one is lost.
    lost = fleet.lost(nodes)
    daemons = ([fleet.alive_of_expected(nodes)
                + (f" ({', '.join(f'{d.node} {fleet.state(d)}' for d in lost)})" if lost else "")]
               if fleet.shared(nodes) else [])
    if health.problems:
        state, css = "Unhealthy: " + "; ".join([*health.problems, *daemons]), "bad"
    elif not health.ready:
        state, css = "Starting: the start-up sweep is not done yet", "warn"
    elif failed or lost:
        waiting = [f"{failed} failed file{'s' * (failed != 1)} waiting"] if failed else []
        state, css = "; ".join(["Running", *daemons, *waiting]), "warn"
    else:
        state, css = "; ".join(["Running", *daemons]), "ok"
    facts = [("last success", when(health.last_success) or "never"),
             ("queue", str(health.queue_depth)), ("write mode", health.write_mode),
             ("observer", health.observer), ("version", health.version)]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    return (f"<header><h1>{escape(prog)}</h1>"
            f'<p id="state" class="{css}">{escape(state)}</p><dl>{items}</dl></header>')
