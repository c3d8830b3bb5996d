"""The status page at `/`: one server-rendered HTML document, a few lines of script.

Owns the markup only (its look, style sheet and script, is `daemon.ops.page_style`'s).
Above the fold on a 1400x1000 screen: whether the daemon is well,
today's counts (files processed and failed, rows loaded) and the last 24 hours' loads per
hour, rows per second while loading and median and worst load duration, then the two
charts of `daemon.ops.charts` side by side. Below: the failed files with their reasons (and
the short command that retries each, or in a few words why not, what to do instead
folded under it) and the latest loads, whose errors point at the failed file's reason
rather than repeat it. The page reloads itself every REFRESH_SECONDS (without script, by
a meta refresh). Every value from the database or a file name
is escaped here. `StatusPage` (made by `source`) gathers the page's facts: the daemon's
own health, and the read side (the history on one read session of its own, kept across
requests and never the worker's; `daemon.ops.folders` for failed/), at most once a second
for all viewers (`daemon.ops.snapshot`); `render` does no I/O. What the page shows of the
last day is a fixed number of values counted by the database (`daemon.ops.figures`), so
that the page is as large and as quick for 100,000 loads a day as for one. Where several
feeds are declared, each has its rows-per-day chart and its line in a table of the feeds
(pattern, table, last load), and each recent load says its feed; with one feed (the
built-in one alone) the page is as it was before feeds.
"""

from __future__ import annotations

import re
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
from filedrop_etl.daemon.ops import charts, figures, fleet, folders, snapshot, superseded
from filedrop_etl.daemon.ops.commands.table import when
from filedrop_etl.daemon.ops.folders import FailedFile
from filedrop_etl.daemon.ops.metrics import WorkerState
from filedrop_etl.daemon.ops.page_style import REFRESH, REFRESH_SECONDS, STYLE
from filedrop_etl.daemon.ops.retries import name_refusal, suggested_name
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
        *([_feeds(feeds, last_loads or {})] if several else []),
        _failed(failed, command or CommandLine(prog), feeds, stale),
        _nodes(nodes),
        _loads(loads, {f.original for f in failed} | {f.name for f in failed}, several),
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


def _feeds(feeds: Feeds, last_loads: Mapping[str, Load | None]) -> str:
    """The declared feeds, each with its pattern, its table and its latest load."""
    rows = []
    for c in feeds:
        last = last_loads.get(c.name)
        load = ("<td>never</td><td></td><td></td>" if last is None else
                f'<td class="t">{escape(when(last.finished_at) or "")}</td>'
                f'<td class="f">{escape(last.file_name)}</td>'
                f'<td class="{escape(last.status)}">{escape(last.status)}</td>')
        rows.append(f"<tr><td>{escape(c.name)}</td><td class=\"f\">"
                    f"{escape(c.file_name_example)}</td><td>{escape(c.fact_table)}</td>"
                    f"{load}</tr>")
    return ('<section id="feeds"><h2>Feeds</h2><table><thead><tr><th>feed</th>'
            "<th>pattern</th><th>table</th><th>last load</th><th>file</th><th>status</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


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


def _failed(failed: Sequence[FailedFile], command: CommandLine, feeds: Feeds,
            stale: Mapping[str, Load]) -> str:
    """The failed files, each with its reason and what to do; the cells wrap, and below
    `page_style.NARROW_PX` each file is a block whose cells say what they are."""
    if not failed:
        return '<section id="failed"><h2>Failed files</h2><p>None.</p></section>'
    rows = "".join(
        ('<tr class="superseded">' if f.name in stale else "<tr>")
        + f'<td class="f">{breakable(f.name)}</td>'
        f'<td class="stage" data-label="stage">{escape(f.stage or "")}</td>'
        f'<td class="reason">{escape(f.reason)}<div class="hint">{escape(f.hint or "")}</div>'
        f"</td><td class=\"t\" data-label=\"failed at\">{escape(when(f.attempted_at) or '')}"
        f'</td><td class="retry">{_to_retry(f, command, feeds, stale.get(f.name))}</td></tr>'
        for f in failed)
    return (f'<section id="failed"><h2>Failed files ({len(failed)})</h2><table>'
            "<thead><tr><th>file</th><th>stage</th><th>reason</th><th>failed at</th>"
            f"<th>to retry</th></tr></thead><tbody>{rows}</tbody></table></section>")


def _to_retry(failed: FailedFile, command: CommandLine, feeds: Feeds,
              load: Load | None) -> str:
    """The command that retries the file (as the name it most likely meant, where its
    own can never load), why not in a few words with what to do folded under it where a
    retry would fail it again, or, for a file superseded by a later drop's load, the
    command that dismisses it; each command as it runs from any folder."""
    if load is not None:
        return retry_cell(command("dismiss", files=[failed.name]),
                          f"superseded by load {load.id}: no retry needed")
    refusal = name_refusal(failed, feeds)
    if refusal is None:
        return retry_cell(command("retry", files=[failed.name]))
    likely = suggested_name(failed, feeds)
    if likely is not None:
        return retry_cell(command("retry", files=[failed.name], then=("--as", likely)))
    why, _, _ = refusal[0].partition(": ")
    return retry_cell(None, f"{why}: retry it under a new name", refusal[1])


def retry_cell(command: str | None, why: str | None = None, how: str | None = None) -> str:
    """A "to retry" cell: a short command to copy (as it is: the style sheet lets it
    wrap), a compact reason, and the longer what-to-do folded (`<details>`): never a
    paragraph."""
    return "".join([
        f"<code>{escape(command)}</code>" if command else "",
        f'<div class="why">{escape(why)}</div>' if why else "",
        f"<details><summary>what to do</summary>{escape(how)}</details>" if how else ""])


def breakable(text: str) -> str:
    """`text` escaped, a line break allowed after each `/`, `_` and `-` and before each `.`
    (`<wbr>`): a long file name wraps where it reads well, and copies as it is."""
    return re.sub(r"([/_-])", r"\1<wbr>", escape(text)).replace(".", "<wbr>.")


def _loads(loads: Sequence[Load], waiting: set[str], several: bool) -> str:
    """The latest loads, each with its feed where several are declared. The error of a
    load whose file waits in failed/ is its reason in the table above: it is pointed at,
    not said twice."""
    if not loads:
        return '<section id="loads"><h2>Recent loads</h2><p>No loads yet.</p></section>'
    numbers = ("rows", "inserted", "updated", "unchanged", "deleted")
    head = "".join(f'<th class="n">{n}</th>' for n in numbers)
    rows = "".join(
        f'<tr><td class="n">{load.id}</td>'
        + (f"<td>{escape(load.feed or '-')}</td>" if several else "")
        + f'<td class="f">{escape(load.file_name)}</td>'
        f'<td class="{escape(load.status)}">{escape(load.status)}</td>'
        + "".join(f'<td class="n">{_count(getattr(load, n))}</td>' for n in numbers)
        + f'<td class="t">{escape(when(load.finished_at) or "")}</td>'
        + f"<td>{_error(load, waiting)}</td></tr>"
        for load in loads)
    return ('<section id="loads"><h2>Recent loads</h2><table><thead><tr>'
            f'<th class="n">id</th>{"<th>feed</th>" if several else ""}<th>file</th>'
            f"<th>status</th>{head}<th>finished</th>"
            f"<th>error</th></tr></thead><tbody>{rows}</tbody></table></section>")


def _nodes(nodes: Sequence[Daemon]) -> str:
    """The daemons sharing the warehouse (PostgreSQL), with their heartbeats; nothing
    for a warehouse of one daemon."""
    if not fleet.shared(nodes):
        return ""
    rows = "".join(
        f"<tr><td>{escape(d.node)}</td><td class=\"{_NODE_CLASS.get(d.state or '', '')}\">"
        f"{escape(fleet.state(d))}</td>"
        f'<td class="t">{escape(when(d.heartbeat_at) or "-")}</td>'
        f'<td class="f">{escape(d.file_in_hand or "-")}</td></tr>' for d in nodes)
    return ('<section id="nodes"><h2>Daemons</h2><table><thead><tr><th>node</th>'
            "<th>state</th><th>last heartbeat</th><th>file in hand</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></section>")


# A lost node in red; one stopped on purpose is no alarm.
_NODE_CLASS = {"alive": "processed", "lost": "failed"}


def _error(load: Load, waiting: set[str]) -> str:
    if not load.error:
        return ""
    if load.file_name in waiting:
        return '<span class="hint">see Failed files</span>'
    return escape(load.error)


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"

