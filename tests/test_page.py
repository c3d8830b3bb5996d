"""The status page's markup: escaping, empty states, the chart's numbers.

What a person sees in a real browser is tested against the running daemon in
tests/test_status_page.py; these check the document itself, fast.
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.ops import charts, figures, page, page_style
from filedrop_etl.daemon.ops.folders import FailedFile
from filedrop_etl.daemon.warehouse.api import DayRows, Load, LoadBin, Tally
from filedrop_etl.daemon.warehouse.sql import Tables
from filedrop_etl.daemon.warehouse.sqlite import migrate
from filedrop_etl.daemon.warehouse.sqlite.history import SqliteHistory
from tools.bench import ledger

WELL = page.Health(version="0.1.0", write_mode="merge", observer="auto", ready=True,
                   problems=(), queue_depth=0, last_success="2026-03-01T10:00:00Z")
HOSTILE = '<script>alert(1)</script>&"x".parquet'
ONE_FEED = Feeds((TRANSACTIONS,))


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def failed_file(name: str, stage: str, reason: str, hint: str) -> FailedFile:
    return FailedFile(name, name, reason, stage, hint, "2026-03-01T10:00:00Z", None,
                      Path("failed") / name)


def parsed(document: str) -> _Text:
    parser = _Text()
    parser.feed(document)
    parser.close()
    return parser


def test_names_and_reasons_from_files_are_text_never_markup() -> None:
    failed = [failed_file(HOSTILE, "read", "<b>not parquet</b>", "drop <i>Parquet</i>")]
    # Another file's failed load: its error is shown in the loads' table.
    loads = [Load(1, HOSTILE + "2", "failed", None, None, 0, 0, 0, 0, "read: <img src=x>",
                  "merge", None, None, "2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z",
                  "transactions")]
    # The timeline names the file of a quarter hour of one load.
    now = datetime(2026, 3, 1, 10, 5, tzinfo=UTC)
    one = LoadBin(int(now.timestamp()) // charts.SLICE_SECONDS, "failed", 1, 0, 0.0, 0.0, 0.0,
                  HOSTILE + "3")
    document = page.render(WELL, failed, loads, {}, ONE_FEED, now=now,
                           last_day=figures.LastDay(bins=[one]))
    seen = parsed(document)
    # The one script is the page's own (its refresh), never a name's or a reason's.
    assert seen.tags.count("script") == 1 and f"<script>{page_style.REFRESH}</script>" in document
    assert "img" not in seen.tags and "b" not in seen.tags
    text = "".join(seen.text)
    assert HOSTILE in text and "<b>not parquet</b>" in text and "read: <img src=x>" in text
    assert f"{HOSTILE}3: failed, 0 rows in 0.000 s" in text
    # Such a name can never load: what to do instead, the name escaped there too.
    assert f"`filedrop-etl retry '{HOSTILE}' --as NEW_NAME`" in text


def test_a_retry_is_proposed_only_where_it_can_work() -> None:
    """Audit: a file that failed on its name was shown with `retry NAME`, which sends it
    back under that same name to fail again."""
    good = "transactions_2026-03-01~1.parquet"
    document = page.render(WELL, [failed_file(good, "checks", "r", "h"),
                                  failed_file("2024-01-01.parquet", "name", "r", "h")], [], {},
                           ONE_FEED)
    text = "".join(parsed(document).text)
    assert f"filedrop-etl retry {good}" in text
    # Never under its own name: only `--as` a new one.
    assert "filedrop-etl retry 2024-01-01.parquet`" not in text
    assert "<code>filedrop-etl retry 2024-01-01.parquet" not in document
    assert "its name can never load: retry it under a new name" in text
    assert ("`filedrop-etl retry 2024-01-01.parquet --as NEW_NAME`, NEW_NAME like "
            "transactions_YYYY-MM-DD.parquet") in text


def retry_cells(document: str) -> list[tuple[str, str, str]]:
    """Each failed file's "to retry" cell (the last of its row): its command, the words
    shown beside it, and what a fold (`<details>`) holds, each as text."""
    section = document.split('<section id="failed">')[1].split("</section>")[0]
    cells = []
    for row in section.split("<tr>")[2:]:
        cell = row.rsplit("<td", 1)[1].split(">", 1)[1].rsplit("</td>", 1)[0]
        folded = "".join(re.findall(r"<details>(.*?)</details>", cell, flags=re.S))
        shown = re.sub(r"<details>.*?</details>", "", cell, flags=re.S)
        command = "".join(re.findall(r"<code>(.*?)</code>", shown, flags=re.S))
        words = re.sub(r"<code>.*?</code>", "", shown, flags=re.S)
        cells.append(tuple(html.unescape(re.sub(r"<[^>]+>", "", t)).strip()
                           for t in (command, words, folded)))
    return cells  # type: ignore[return-value]  # three texts each


def test_the_to_retry_cell_is_a_command_or_a_few_words_never_a_paragraph() -> None:
    """Issue 24: a name failure's cell was its refusal and what to do, a paragraph of
    60 words beside the reason that already says what is wrong with the name."""
    names = ["Transactions_2026-01-01.parquet", "transactions_2026-1-1.parquet",
             "transactions_2026-01-02_resent_by_the_vendor_after_the_outage_v2.parquet",
             "transactions_2026-03-01~1.parquet"]
    document = page.render(WELL, [failed_file(n, "name" if i < 3 else "checks", "r", "h")
                                  for i, n in enumerate(names)], [], {}, ONE_FEED)
    cells = retry_cells(document)
    assert len(cells) == 4
    # Where the name it most likely meant is plain, the command that retries it so.
    for (command, words, folded), name in zip(cells[:2], names, strict=False):
        assert (command, words, folded) == (
            f"filedrop-etl retry {name} --as transactions_2026-01-01.parquet", "", "")
    # Where it is not, in a few words why its own name cannot help; what to do, folded.
    command, words, folded = cells[2]
    assert (command, words) == ("", "its name can never load: retry it under a new name")
    assert f"`filedrop-etl retry {names[2]} --as NEW_NAME`" in folded
    # A file a retry can help: the command alone, to copy; the name as it is.
    assert cells[3] == (f"filedrop-etl retry {names[3]}", "", "")
    # Long names may wrap (at `_`, `-` and before `.`), in the failed files only.
    assert ("transactions_<wbr>2026-<wbr>01-<wbr>02_<wbr>resent_<wbr>by_<wbr>the_<wbr>"
            "vendor_<wbr>after_<wbr>the_<wbr>outage_<wbr>v2<wbr>.parquet") in document


def test_a_reader_with_a_fold_open_keeps_it() -> None:
    """The refresh closed "the numbers" (and would close "what to do") under the reader's
    eyes: an open fold, like a scrolled page, holds the reload off."""
    assert "details[open]" in page_style.REFRESH and "scrollY" in page_style.REFRESH


def test_empty_database_says_so_in_each_section() -> None:
    text = "".join(parsed(page.render(WELL, [], [], {}, ONE_FEED)).text)
    for phrase in ("Running", "None.", "No loads yet.", "No rows loaded yet."):
        assert phrase in text


def test_the_header_names_the_worst_state_first() -> None:
    failing = page.render(WELL, [failed_file("a", "checks", "r", "h")], [], {}, ONE_FEED)
    assert "Running; 1 failed file waiting" in failing
    starting = page.Health(**{**WELL.__dict__, "ready": False})
    assert ("Starting: the start-up sweep is not done yet"
            in page.render(starting, [], [], {}, ONE_FEED))
    sick = page.Health(**{**WELL.__dict__, "problems": ("the inbox observer is not running",)})
    assert ("Unhealthy: the inbox observer is not running"
            in page.render(sick, [], [], {}, ONE_FEED))


def test_the_chart_draws_the_last_days_with_their_numbers_and_gaps() -> None:
    days = [DayRows(f"2026-01-{d:02d}", d * 1000) for d in range(1, 32) if d != 20]
    days += [DayRows("2026-02-01", 0), DayRows("2026-02-02", 5_000_000)]
    document = page.render(WELL, [], [], {"transactions": days}, ONE_FEED)
    # One slot a calendar day, up to the latest: the 31 days from 2026-01-03.
    assert document.count('<g class="day"') + document.count('<g class="gap"') \
        == page.CHART_DAYS
    assert 'data-day="2026-01-03"' in document and 'data-day="2026-01-02"' not in document
    # A day without a row is a gap in its place; a day of 0 rows a column of no height.
    assert '<g class="gap" data-day="2026-01-20">' in document
    assert '<g class="day" data-day="2026-02-01" data-rows="0">' in document
    assert ">5,000,000</text>" in document  # the scale's top
    assert "<td>2026-02-02</td><td class=\"n\">5,000,000</td>" in document  # the numbers


def test_the_figures_and_the_timeline_of_the_last_day(any_settings: Settings) -> None:
    """Counted by the database, on each backend: the page reads a few sums, not loads."""
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def load(day: int, status: str, rows: int, finished: str,
             seconds: float) -> tuple[object, ...]:
        end = datetime.fromisoformat(finished)
        return (f"transactions_2026-03-0{day}.parquet", None, 1, status, "merge", None, rows,
                rows, 0, 0, 0, None, ledger.stamp(end - timedelta(seconds=seconds)),
                ledger.stamp(end))

    ledger.insert(any_settings, [
        load(1, "processed", 1000, "2026-03-01T20:00:00Z", 2.0),  # yesterday
        load(2, "processed", 3000, "2026-03-02T10:00:00Z", 0.5),
        load(3, "failed", 0, "2026-03-02T11:00:00Z", 0.01),
        load(4, "processed", 50, "2026-03-01T09:00:00Z", 1.0),  # more than 24 h ago
        load(5, "processed", 70, "2026-03-02T12:00:01Z", 1.0)])  # later than now
    with warehouse.reading(any_settings) as history:
        facts = figures.last_day(history, now)
        # Two loads: the median is the mean of the middle two, as statistics.median's.
        two_hours_ago = figures.last_day(history, now - timedelta(hours=2))
        assert two_hours_ago.median == pytest.approx(1.25, abs=1e-3)
        later = figures.last_day(history, now + timedelta(days=3))
        assert (later.bins, later.median, later.today) == ([], None, Tally(0, 0, 0))
    document = page.render(WELL, [], [], {}, ONE_FEED, last_day=facts, now=now)
    shown = document.split('<dl class="figures">')[1].split("</dl>")[0]
    numbers = dict(zip(re.findall(r"<dt>([^<]+)</dt>", shown),
                       re.findall(r"<dd>([^<]+)</dd>", shown), strict=True))
    # Today's files by their latest attempt since midnight, as `status` counts them; the
    # one recorded later than now (a clock that ran ahead) counts nowhere (issue 21).
    assert numbers == {"processed today": "1", "failed today": "1",
                       "rows loaded today": "3,000", "loads per hour": "0.1",
                       "rows/s while loading": "1,600", "median load": "500 ms",
                       "worst load": "2.0 s"}
    # A mark for each quarter hour and status, the failed one red (by its class); a
    # quarter hour of one load names its file.
    assert document.count('<circle class="processed"') == 2
    assert document.count('<circle class="failed"') == 1
    assert "transactions_2026-03-03.parquet: failed, 0 rows in 0.010 s" in document
    assert "No loads in the last 24 hours." in page.render(WELL, [], [], {}, ONE_FEED, now=now)


def insert_facts(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """Fact rows written by hand, and the rows per day a load would have kept with them."""
    conn.executemany('INSERT INTO "fact_transactions" VALUES (?, ?, ?, ?, ?, ?)', rows)
    migrate.count_days(conn, Tables(TRANSACTIONS))


def test_rows_per_day_counts_the_last_days_up_to_the_latest(
        fresh_db: sqlite3.Connection) -> None:
    """Days older than the window are left out; days with no rows are not invented."""
    rows = [(f"{day.replace('-', '')}-{i}", 1, 1.0, day, "t", None)
            for day, count in (("2026-01-15", 3), ("2026-02-01", 2), ("2026-03-02", 4))
            for i in range(count)]
    insert_facts(fresh_db, rows)
    today = "2026-03-05"
    history = SqliteHistory(fresh_db)
    assert history.rows_per_day(TRANSACTIONS, 31, today) == [DayRows("2026-02-01", 2),
                                                  DayRows("2026-03-02", 4)]
    assert history.rows_per_day(TRANSACTIONS, 1, today) == [DayRows("2026-03-02", 4)]
    assert len(SqliteHistory(fresh_db).rows_per_day(TRANSACTIONS, 365,
                                                                   today)) == 3


def test_rows_per_day_is_not_emptied_by_one_far_future_day(
        fresh_db: sqlite3.Connection) -> None:
    """Guards a found bug: the window ended at the largest run date, so one valid
    `9999-12-31` file left only that day in the chart."""
    days = ("2026-02-27", "2026-02-28", "2026-03-01", "9999-12-31")
    insert_facts(fresh_db, [(f"{d.replace('-', '')}-0", 1, 1.0, d, "t", None) for d in days])
    history = SqliteHistory(fresh_db)
    assert [d.run_date for d in history.rows_per_day(TRANSACTIONS, 31, "2026-03-02")] \
        == list(days[:3])
    # Every run date later than today: the window ends at the newest, as before.
    assert [d.run_date for d in history.rows_per_day(TRANSACTIONS, 31, "2020-01-01")] \
        == ["9999-12-31"]
