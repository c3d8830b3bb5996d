"""The status page at `/`: one server-rendered HTML document, no script, no build step.

Owns the markup only: a header saying whether the daemon is well, the failed files with
their reasons (and the command that retries each, or what to do instead where a retry
cannot help), the latest loads, and the rows per day as an inline SVG bar chart with its
numbers written out, so the page reads the same without colour, without pictures and in
a text browser. Every value from the database
or a file name is escaped here. `source` gathers one page's facts per request: the
daemon's own health, and the read side (`daemon.queries` on a read-only connection of
its own, never the worker's; `daemon.folders` for failed/); `render` does no I/O.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Protocol

from config import Settings
from daemon import folders, ledger, queries, store
from daemon.commands.table import when
from daemon.folders import FailedFile
from daemon.queries import DayRows, Load
from daemon.retries import name_refusal

RECENT_LOADS = 20
# The page refreshes itself: an operator leaves it open on a screen.
REFRESH_SECONDS = 15
CHART_DAYS = 31
_BAR_HEIGHT, _BAR_GAP, _LABEL_WIDTH, _CHART_WIDTH = 18, 4, 96, 640


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


class _Daemon(Protocol):
    swept: threading.Event

    def health(self) -> list[str]: ...

    def queue_depth(self) -> int: ...


def source(settings: Settings, daemon: _Daemon, version: str) -> Callable[[], str]:
    """A renderer of the page as it is now, for the HTTP server's `/`."""

    def current() -> str:
        loads: list[Load] = []
        days: list[DayRows] = []
        last = None
        try:
            with closing(store.connect_readonly(settings.db)) as conn:
                loads = queries.recent_loads(conn, queries.LoadFilter(limit=RECENT_LOADS))
                # A day of margin: a producer's day may begin before UTC's.
                latest = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
                days = queries.rows_per_day(conn, CHART_DAYS, latest)
                last = queries.last_success(conn, ledger.utc_now())
        except sqlite3.OperationalError:
            pass  # busy beyond the timeout: the page shows what it has, and refreshes
        health = Health(version, settings.write_mode, settings.observer,
                        daemon.swept.is_set(), daemon.health(), daemon.queue_depth(),
                        last.finished_at if last else None)
        return render(health, folders.failed_files(settings.failed), loads, days)

    return current


def render(health: Health, failed: Sequence[FailedFile], loads: Sequence[Load],
           days: Sequence[DayRows], *, prog: str = "filedrop-etl") -> str:
    """The whole page; `days` oldest first (only the last CHART_DAYS are drawn)."""
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{prog} status</title>",
        f"<style>{_STYLE}</style></head><body>",
        _header(health, len(failed), prog),
        _failed(failed, prog),
        _loads(loads),
        _chart(days[-CHART_DAYS:]),
        "</body></html>",
    ])


def _header(health: Health, failed: int, prog: str) -> str:
    if health.problems:
        state, css = "Unhealthy: " + "; ".join(health.problems), "bad"
    elif not health.ready:
        state, css = "Starting: the start-up sweep is not done yet", "warn"
    elif failed:
        state, css = f"Running; {failed} failed file{'s' * (failed != 1)} waiting", "warn"
    else:
        state, css = "Running", "ok"
    facts = [("last success", when(health.last_success) or "never"),
             ("queue", str(health.queue_depth)), ("write mode", health.write_mode),
             ("observer", health.observer), ("version", health.version)]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    return (f"<header><h1>{escape(prog)}</h1>"
            f'<p id="state" class="{css}">{escape(state)}</p><dl>{items}</dl></header>')


def _failed(failed: Sequence[FailedFile], prog: str) -> str:
    if not failed:
        return '<section id="failed"><h2>Failed files</h2><p>None.</p></section>'
    rows = "".join(
        f"<tr><td>{escape(f.name)}</td><td>{escape(f.stage or '')}</td><td>{escape(f.reason)}"
        f'<div class="hint">{escape(f.hint or "")}</div></td>'
        f"<td class=\"t\">{escape(when(f.attempted_at) or '')}</td>"
        f"<td>{_to_retry(f, prog)}</td></tr>"
        for f in failed)
    return (f'<section id="failed"><h2>Failed files ({len(failed)})</h2><table>'
            "<thead><tr><th>file</th><th>stage</th><th>reason</th><th>failed at</th>"
            f"<th>to retry</th></tr></thead><tbody>{rows}</tbody></table></section>")


def _to_retry(failed: FailedFile, prog: str) -> str:
    """The command that retries the file, or, when its name can never load (so a retry
    would fail it again), what to do instead."""
    refusal = name_refusal(failed)
    if refusal is None:
        return f"<code>{escape(prog)} retry {escape(failed.name)}</code>"
    return f'not by retry: {escape(refusal[0])}<div class="hint">{escape(refusal[1])}</div>'


def _loads(loads: Sequence[Load]) -> str:
    if not loads:
        return '<section id="loads"><h2>Recent loads</h2><p>No loads yet.</p></section>'
    numbers = ("rows", "inserted", "updated", "unchanged", "deleted")
    head = "".join(f'<th class="n">{n}</th>' for n in numbers)
    rows = "".join(
        f'<tr class="{escape(load.status)}"><td class="n">{load.id}</td>'
        f"<td>{escape(load.file_name)}</td><td>{escape(load.status)}</td>"
        + "".join(f'<td class="n">{_count(getattr(load, n))}</td>' for n in numbers)
        + f'<td class="t">{escape(when(load.finished_at) or "")}</td>'
        + f"<td>{escape(load.error or '')}</td></tr>"
        for load in loads)
    return ('<section id="loads"><h2>Recent loads</h2><table><thead><tr>'
            f'<th class="n">id</th><th>file</th><th>status</th>{head}<th>finished</th>'
            f"<th>error</th></tr></thead><tbody>{rows}</tbody></table></section>")


def _chart(days: Sequence[DayRows]) -> str:
    if not days:
        return ('<section id="days"><h2>Rows per day</h2>'
                "<p>No rows loaded yet.</p></section>")
    top = max(day.rows for day in days) or 1
    span = _CHART_WIDTH - _LABEL_WIDTH - 80
    height = len(days) * (_BAR_HEIGHT + _BAR_GAP)
    bars = []
    for i, day in enumerate(days):
        y = i * (_BAR_HEIGHT + _BAR_GAP)
        width = max(1, round(span * day.rows / top)) if day.rows else 0
        label = f"{day.run_date}: {day.rows:,} rows"
        bars.append(
            f'<g class="bar"><title>{escape(label)}</title>'
            f'<text x="0" y="{y + 13}">{escape(day.run_date)}</text>'
            f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{width}" height="{_BAR_HEIGHT}"></rect>'
            f'<text x="{_LABEL_WIDTH + width + 6}" y="{y + 13}">{day.rows:,}</text></g>')
    return ('<section id="days"><h2>Rows per day</h2>'
            f'<svg role="img" aria-label="rows loaded per run date" width="{_CHART_WIDTH}" '
            f'height="{height}" viewBox="0 0 {_CHART_WIDTH} {height}">'
            + "".join(bars) + "</svg></section>")


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin:0 0 .2em}h2{margin:1.4em 0 .4em;font-size:1.1em}
dl{display:flex;flex-wrap:wrap;gap:1.5em;margin:.4em 0}dt{color:#666;font-size:.85em}dd{margin:0}
#state{font-weight:600;padding:.3em .6em;display:inline-block;border-radius:4px}
.ok{background:#e3f5e1}.warn{background:#fff3cd}.bad{background:#f8d7da}
table{border-collapse:collapse}th,td{padding:.2em .6em;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}.n{text-align:right}tr.failed td{color:#a11}
.hint{color:#666;font-size:.9em}.t{white-space:nowrap}svg text{font-size:12px}svg rect{fill:#4a78b5}
""".strip()
