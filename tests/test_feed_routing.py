"""Which feed a file is loaded by: two feeds in one inbox, and names that match none.

A second feed (`ORDERS`: its own pattern with a day-first date format, its own table, and
replace mode in a daemon that merges) sits beside the built-in one. A real watcher loads
both from one inbox; in-process turns cover a name of no feed under `unmatched = "fail"`
(failed/, naming every pattern and the nearest) and `"leave"` (left in the inbox, logged
once, not waiting, taken once renamed). Log lines are asserted as dicts, the metrics by
their `feed` label.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS, Check, Column, Contract
from filedrop_etl.config.file_names import Feeds, UnmatchedPolicy, name_pattern
from filedrop_etl.daemon import routing
from filedrop_etl.daemon.app.service import feeds_shown
from filedrop_etl.daemon.app.worker import Worker, build
from filedrop_etl.daemon.errors import FileNameError
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.ops.folders import waiting
from filedrop_etl.daemon.warehouse.sqlite import schema
from filedrop_etl.daemon.watch.inbox import Inbox
from tests.conftest import as_warehouse, day_table, drop, ledger, table_rows, wait_until
from tests.http_client import Scrape

_ORDER_COLUMNS = (Column("order_id", "string"), Column("sku", "string"),
                  Column("qty", "integer"), Column("order_date", "date"))
ORDERS = Contract(
    name="orders", columns=_ORDER_COLUMNS, key=("order_id",), date_column="order_date",
    checks=(*(Check("not_null", c.name) for c in _ORDER_COLUMNS), Check("unique", "order_id"),
            Check("min", "qty", 0), Check("equals_file_date", "order_date")),
    fact_table="fact_orders", staging_table="staging_orders",
    file_name_pattern=name_pattern("orders_{date}.parquet", "%d-%m-%Y"),
    file_name_template="orders_{date}.parquet", date_format="%d-%m-%Y",
    write_mode="replace")
TX_DAY, ORDER_DAY = "2026-03-05", "2026-03-02"
TX_NAME = TRANSACTIONS.file_name_for(TX_DAY)
ORDER_NAME = ORDERS.file_name_for(ORDER_DAY)  # orders_02-03-2026.parquet
TYPO = "order_02-03-2026.parquet"  # no feed's, nearest to orders'


def orders_table(run_date: str, rows: int) -> pa.Table:
    return pa.table({"order_id": [f"o-{i}" for i in range(rows)],
                     "sku": [f"sku-{i % 2}" for i in range(rows)],
                     "qty": pa.array(range(rows), pa.int64()),
                     "order_date": [run_date] * rows})


def written(directory: Path, table: pa.Table, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, directory / name)
    return directory / name


def with_feeds(settings: Settings, unmatched: UnmatchedPolicy = "fail") -> Settings:
    return replace(settings, feeds=Feeds((TRANSACTIONS, ORDERS), unmatched))


def by_file(logs: list[MutableMapping[str, Any]], event: str) -> dict[object, object]:
    return {e["file"]: e["feed"] for e in logs if e["event"] == event}


@pytest.fixture
def orders_db(fresh_db: sqlite3.Connection) -> sqlite3.Connection:
    """`fresh_db` with the orders feed's tables too."""
    schema.init_schema(fresh_db, ORDERS)
    return fresh_db


def test_two_feeds_in_one_inbox_each_load_by_their_own_feed(
        tmp_path: Path, settings: Settings, orders_db: sqlite3.Connection) -> None:
    two = replace(with_feeds(settings), rescan_seconds=3600.0)
    worker = build(two, as_warehouse(orders_db))
    watcher = worker.watcher
    watcher.start()
    try:
        assert watcher.swept.wait(timeout=30), "the start-up sweep"
        with capture_logs() as logs:
            drop(written(tmp_path / "out", day_table(TX_DAY), TX_NAME), settings.inbox)
            drop(written(tmp_path / "out", orders_table(ORDER_DAY, 3), ORDER_NAME),
                 settings.inbox)
            wait_until(lambda: watcher.outcomes["processed"] == 2, "both files to load")
            # Replace mode (the feed's own, the daemon merges): the day is the new file's.
            drop(written(tmp_path / "out", orders_table(ORDER_DAY, 2), ORDER_NAME),
                 settings.inbox)
            wait_until(lambda: watcher.outcomes["processed"] == 3, "the re-drop to load")
    finally:
        watcher.request_stop()
        watcher.join()
    feeds = {TX_NAME: "transactions", ORDER_NAME: "orders"}
    for event in ("file_detected", "file_claimed", "file_processed"):
        assert by_file(logs, event) == feeds, event
    processed = [e for e in logs if e["event"] == "file_processed"]
    assert [(e["file"], e["write_mode"], e["run_date"], e["rows"], e["deleted"])
            for e in sorted(processed, key=lambda e: str(e["archived_as"]))] == [
        (ORDER_NAME, "replace", ORDER_DAY, 3, 0), (ORDER_NAME, "replace", ORDER_DAY, 2, 1),
        (TX_NAME, "merge", TX_DAY, 25, 0)]
    assert sorted(r["order_id"] for r in table_rows(settings.db_file, "fact_orders")) == [
        "o-0", "o-1"]
    assert len(table_rows(settings.db_file, TRANSACTIONS.fact_table)) == 25
    assert sorted(r["write_mode"] for r in ledger(settings.db_file)) == [
        "merge", "replace", "replace"]

    scrape = Scrape(worker.metrics.exposition().decode())
    assert scrape.by("etl_files_total", "feed", outcome="processed") == {
        "transactions": 1, "orders": 2}
    assert scrape.by("etl_rows_total", "feed", change="inserted") == {
        "transactions": 25, "orders": 3}
    assert scrape.by("etl_rows_total", "feed", change="deleted") == {
        "transactions": 0, "orders": 1}
    assert scrape.by("etl_file_duration_seconds_count", "feed", outcome="processed") == {
        "transactions": 1, "orders": 2}


@pytest.fixture
def turns(settings: Settings, orders_db: sqlite3.Connection,
          request: pytest.FixtureRequest) -> Iterator[Worker]:
    """A worker on both feeds whose loop the test turns (no threads): files are complete
    once seen. `unmatched` is the test's parameter, else "fail"."""
    unmatched: UnmatchedPolicy = getattr(request, "param", "fail")
    worker = build(replace(with_feeds(settings, unmatched), settle_seconds=0.0),
                   as_warehouse(orders_db))
    worker.watcher.prepare()
    worker.watcher.begin()
    yield worker
    worker.watcher.locks.release()


def rescan(worker: Worker) -> None:
    """Rescan the inbox, and turn until no work is left."""
    worker.watcher.request_rescan("test")
    while worker.watcher.turn() == 0.0:
        pass


def test_a_name_of_no_feed_fails_naming_every_pattern_and_the_nearest(
        tmp_path: Path, settings: Settings, turns: Worker) -> None:
    drop(written(tmp_path / "out", orders_table(ORDER_DAY, 3), TYPO), settings.inbox)
    with capture_logs() as logs:
        rescan(turns)
    [failed] = [e for e in logs if e["event"] == "file_failed"]
    assert {k: failed[k] for k in ("file", "feed", "stage", "error_type")} == {
        "file": TYPO, "feed": "", "stage": "name", "error_type": "FileNameError"}
    assert failed["reason"].startswith(
        f"file name '{TYPO}' does not match any feed's pattern "
        "(transactions_YYYY-MM-DD.parquet, orders_DD-MM-YYYY.parquet); "
        "the nearest is orders_DD-MM-YYYY.parquet; it most likely meant "
        "orders_02-03-2026.parquet (rename the file")
    # Issue 24: the name it most likely meant, as data, and the retry that gives it.
    assert failed["suggested_name"] == "orders_02-03-2026.parquet"
    assert by_file(logs, "file_detected") == by_file(logs, "file_claimed") == {TYPO: ""}
    sidecar = json.loads((settings.failed / f"{TYPO}.error.json").read_text())
    assert (sidecar["feed"], sidecar["stage"]) == ("", "name")
    assert sidecar["suggested_name"] == "orders_02-03-2026.parquet"
    assert sidecar["hint"].endswith(f" {TYPO} --as orders_02-03-2026.parquet`")
    assert "`filedrop-etl retry --" in sidecar["hint"]
    assert "the nearest feed, orders, takes orders_DD-MM-YYYY.parquet with the run date of " \
        "its rows" in sidecar["hint"]
    [row] = ledger(settings.db_file)
    assert (row["status"], row["file_name"]) == ("failed", TYPO)
    assert row["sha256"] is not None  # hashed before its name was read, as every file
    scrape = Scrape(turns.metrics.exposition().decode())
    assert scrape.value("etl_files_total", feed="", outcome="failed") == 1
    assert scrape.value("etl_files_total", feed="orders", outcome="failed") == 0


@pytest.mark.parametrize("turns", ["leave"], indirect=True)
def test_a_name_of_no_feed_is_left_in_the_inbox_logged_once_and_taken_once_renamed(
        tmp_path: Path, settings: Settings, turns: Worker) -> None:
    typo = drop(written(tmp_path / "out", orders_table(ORDER_DAY, 3), TYPO), settings.inbox)
    notes = settings.inbox / "notes.txt"
    notes.write_text("not for the daemon")
    with capture_logs() as logs:
        for _ in range(3):
            rescan(turns)
    assert [e for e in logs if e["event"] == "file_unmatched"] == [
        {"event": "file_unmatched", "log_level": "info", "file": name, "feed": "",
         "patterns": ["transactions_YYYY-MM-DD.parquet", "orders_DD-MM-YYYY.parquet"],
         "nearest": None if name == "notes.txt" else "orders_DD-MM-YYYY.parquet",
         "hint": "the file stays in the inbox untouched (unmatched = \"leave\"); rename it "
         "to a feed's pattern, or declare a feed for it, to load it"}
        for name in ("notes.txt", TYPO)]
    assert not [e for e in logs if e["event"] in ("file_detected", "file_claimed")]
    assert sorted(p.name for p in settings.inbox.iterdir()) == ["notes.txt", TYPO]
    assert turns.report.queue_depth() == 0 and ledger(settings.db_file) == []
    # `status` counts what the daemon will take: not these.
    assert (waiting(settings.inbox, turns.watcher.settings.feeds), waiting(settings.inbox)) \
        == (0, 2)

    typo.rename(settings.inbox / ORDER_NAME)  # the producer's fix
    notes.unlink()
    with capture_logs() as logs:
        rescan(turns)
        notes.write_text("dropped again")  # a new file under the name: said again
        rescan(turns)
    assert [(e["event"], e["file"], e["feed"]) for e in logs
            if e["event"] in ("file_processed", "file_unmatched")] == [
        ("file_processed", ORDER_NAME, "orders"), ("file_unmatched", "notes.txt", "")]
    assert list(settings.inbox.iterdir()) == [notes]


def test_a_claimed_file_of_no_feed_fails_even_where_such_files_are_left(
        tmp_path: Path, settings: Settings, orders_db: sqlite3.Connection) -> None:
    """Left in the work directory by an earlier run (or another config), it is out of
    the inbox already: it fails on its name rather than waiting forever."""
    leave = with_feeds(settings, "leave")
    for directory in (settings.work, settings.processed, settings.failed):
        directory.mkdir(parents=True, exist_ok=True)
    claimed = written(settings.work, orders_table(ORDER_DAY, 3), TYPO)
    outcome = Pipeline(leave, as_warehouse(orders_db)).process(claimed)
    assert (outcome.status, outcome.feed) == ("failed", "")
    assert (settings.failed / TYPO).exists()


def test_the_inbox_takes_files_in_run_date_order_whatever_the_feeds_date_format(
        tmp_path: Path) -> None:
    inbox_dir = tmp_path / "inbox"
    later, earlier = ORDERS.file_name_for("2026-04-01"), ORDERS.file_name_for("2026-03-02")
    assert later < earlier  # by name, April's file would go first
    names = [later, earlier, TRANSACTIONS.file_name_for("2026-03-05"), "zz.parquet"]
    for name in names:
        written(inbox_dir, orders_table("2026-03-02", 1), name)
    inbox = Inbox(inbox_dir, 0.0, feeds=Feeds((TRANSACTIONS, ORDERS)))
    found = inbox.scan("sweep")
    assert [(c.path.name, c.feed, c.run_date) for c in found] == [
        ("zz.parquet", "", ""),  # fails on its name, first
        (earlier, "orders", "2026-03-02"),
        ("transactions_2026-03-05.parquet", "transactions", "2026-03-05"),
        (later, "orders", "2026-04-01")]
    assert [p.name for p in inbox.due()[0]] == [c.path.name for c in found]


def test_a_name_is_read_by_its_feed_and_a_name_of_none_is_told_every_pattern() -> None:
    feeds = Feeds((TRANSACTIONS, ORDERS))
    assert routing.feed_of("orders_01-04-2026~2.parquet", feeds) is ORDERS
    assert routing.run_date_from_name("orders_01-04-2026~2.parquet", ORDERS) == "2026-04-01"
    with pytest.raises(FileNameError, match="not a calendar date"):
        routing.run_date_from_name("orders_31-02-2026.parquet", ORDERS)
    with pytest.raises(FileNameError) as caught:
        routing.feed_of("transaction_2026-03-05.parquet", feeds)
    assert caught.value.message.endswith("the nearest is transactions_YYYY-MM-DD.parquet; "
                                         "it most likely meant transactions_2026-03-05.parquet")
    assert "transactions, takes transactions_YYYY-MM-DD.parquet with" in caught.value.hint
    # A daemon of one feed says what it always said.
    with pytest.raises(FileNameError) as alone:
        routing.feed_of(TYPO, Feeds((TRANSACTIONS,)))
    assert alone.value.message == \
        f"file name '{TYPO}' does not match transactions_YYYY-MM-DD.parquet"
    with pytest.raises(FileNameError) as unlike:
        routing.feed_of("notes.txt", feeds)
    assert unlike.value.message.endswith("(transactions_YYYY-MM-DD.parquet, "
                                         "orders_DD-MM-YYYY.parquet)")
    assert routing.feed_name(TYPO, feeds) == "" and routing.feed_name(ORDER_NAME, feeds) == "orders"
    assert not routing.left_unmatched(TYPO, feeds)
    assert routing.left_unmatched(TYPO, Feeds(feeds.all, "leave"))
    assert not routing.left_unmatched(ORDER_NAME, Feeds(feeds.all, "leave"))


def test_daemon_started_shows_the_feeds_as_data(settings: Settings) -> None:
    shown = feeds_shown(with_feeds(settings))
    assert json.loads(json.dumps(shown)) == [
        {"name": "transactions", "pattern": "transactions_{date}.parquet",
         "date_format": "%Y-%m-%d", "table": "fact_transactions", "key": ["txn_id"],
         "date_column": "run_date", "write_mode": "merge",
         "columns": {"txn_id": "string", "customer_id": "integer", "amount": "float",
                     "run_date": "date"}},
        {"name": "orders", "pattern": "orders_{date}.parquet", "date_format": "%d-%m-%Y",
         "table": "fact_orders", "key": ["order_id"], "date_column": "order_date",
         "write_mode": "replace",
         "columns": {"order_id": "string", "sku": "string", "qty": "integer",
                     "order_date": "date"}}]
