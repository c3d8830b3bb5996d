"""Declared feeds in the SQLite warehouse: their tables, values, merges, totals and changes.

A feed with a composite key (its date leading it, as `date_leads_key` finds a date's
rows by the key's own B-tree), decimal, boolean, timestamp and nullable columns, served
beside the built-in one; and the same columns keyed so that the date does not lead (the
general path, by the date index). Each case drives the worker's role (`staged`,
`commit`) as a load does and reads the tables back with plain SQL: the values in
SQLite's exact forms, the counts against a model, an unchanged re-run writing nothing,
replace mode, the rows per date, the feed's figures, and the table following its
declaration from one start to the next.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import structlog

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS, Check, Column, Contract, Totals
from filedrop_etl.config.file_names import Feeds, name_pattern
from filedrop_etl.daemon import clock, warehouse
from filedrop_etl.daemon.errors import SchemaMismatch
from filedrop_etl.daemon.warehouse.api import (
    FOLDER_NAMES,
    Folders,
    LoadFilter,
    LoadRecord,
    MergeCounts,
    MergePlan,
    Warehouse,
)
from tests.conftest import settings_under
from tests.feed_orders import ORDER_COLUMNS

DAY1, DAY2, DAY3 = "2026-03-01", "2026-03-02", "2026-03-03"
Row = tuple[Any, ...]
COLUMNS = ORDER_COLUMNS
ORDERS = Contract(
    name="orders", columns=COLUMNS, key=("order_date", "order_id"), date_column="order_date",
    checks=(Check("equals_file_date", "order_date"),), fact_table="fact_orders",
    staging_table="staging_orders", file_name_pattern=name_pattern("orders_{date}.parquet"),
    file_name_template="orders_{date}.parquet",
    totals=Totals(sums=(("revenue", "price"), ("units", "qty")), distinct=(("skus", "sku"),),
                  group_by="sku"))
# The same columns keyed with the date second, and no check holding it to the file's: a
# date's rows are found by the date index (the general path).
LOOSE = replace(ORDERS, name="loose", key=("order_id", "order_date"), checks=(),
                fact_table="fact_loose", staging_table="staging_loose",
                file_name_pattern=name_pattern("loose_{date}.parquet"),
                file_name_template="loose_{date}.parquet")
START = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)


def with_feeds(settings: Settings, *feeds: Contract) -> Settings:
    return replace(settings, feeds=Feeds((TRANSACTIONS, *feeds)))


def open_on(settings: Settings) -> Warehouse:
    inbox, work, processed, failed = (str(getattr(settings, n)) for n in FOLDER_NAMES)
    return warehouse.open_warehouse(settings, Folders(inbox, work, processed, failed))


@pytest.fixture
def feeds(settings: Settings) -> Settings:
    return with_feeds(settings, ORDERS, LOOSE)


@pytest.fixture
def opened(feeds: Settings) -> Iterator[Warehouse]:
    held = open_on(feeds)
    yield held
    held.close()


def order(day: str, order_id: int, *, sku: str | None = "A", qty: int = 1,
          price: str = "9.99", paid: bool = True, seconds: float = 0.0,
          note: str | None = None) -> Row:
    return (day, order_id, sku, qty, Decimal(price), paid,
            START + timedelta(seconds=seconds), note)


def table_of(feed: Contract, rows: Sequence[Row]) -> pa.Table:
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in feed.columns])
    return pa.Table.from_pylist([dict(zip(feed.column_names, r, strict=True)) for r in rows],
                                schema=schema)


def load(held: Warehouse, feed: Contract, rows: Sequence[Row], run_date: str,
         replace_date: str | None = None, keys_sorted: bool = False) -> MergeCounts:
    plan = MergePlan(keys_sorted=keys_sorted, keys_counted=False, replace_date=replace_date,
                     run_date=run_date)
    record = LoadRecord(feed.file_name_for(run_date), "ab" * 32, 100,
                        "replace" if replace_date else "merge", run_date, clock.utc_now(),
                        feed=feed.name)
    with held.staged(feed, table_of(feed, rows).to_batches(max_chunksize=3)) as staged:
        assert staged.rows == len(rows)
        return staged.commit(record, plan)


def sql(settings: Settings, query: str) -> list[Row]:
    with closing(sqlite3.connect(settings.db_file)) as conn:
        return conn.execute(query).fetchall()


def facts(settings: Settings, feed: Contract) -> list[Row]:
    return sql(settings, f'SELECT * FROM "{feed.fact_table}" ORDER BY "order_date", '
                         '"order_id"')


def test_each_feed_gets_its_tables_and_the_built_in_ones_stay_as_they_were(
        feeds: Settings, tmp_path: Path) -> None:
    alone = settings_under(tmp_path / "alone")  # the built-in feed alone
    for each in (alone, feeds):
        open_on(each).close()

    def shape(of: Settings) -> dict[str, str]:
        return dict(sql(of, "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))

    both, builtin = shape(feeds), shape(alone)
    assert {n: d for n, d in both.items() if n in builtin} == builtin
    assert both["fact_orders"] == (
        'CREATE TABLE "fact_orders" ("order_date" TEXT NOT NULL, "order_id" INTEGER NOT '
        'NULL, "sku" TEXT, "qty" INTEGER NOT NULL, "price" DECIMAL_TEXT(12,2) NOT NULL, '
        '"paid" BOOLEAN NOT NULL, "placed_at" TIMESTAMP_TEXT NOT NULL, "note" TEXT DEFAULT '
        "'', \"loaded_at\" TEXT NOT NULL, \"load_id\" INTEGER REFERENCES \"load_history\" "
        '("id"), PRIMARY KEY ("order_date", "order_id")) WITHOUT ROWID')
    assert both["fact_orders_days"].startswith('CREATE TABLE "fact_orders_days" ("order_date"')
    # The date leads the orders' key: no date index; the loose feed's key does not.
    assert set(both) - set(builtin) == {"fact_orders", "fact_orders_days", "fact_loose",
                                        "fact_loose_days", "fact_loose_order_date"}
    assert "staging_orders" not in both


def test_values_are_stored_in_sqlites_exact_forms(feeds: Settings, opened: Warehouse) -> None:
    rows = [order(DAY1, 1, price="12.5", seconds=0.5),
            order(DAY1, 2, sku=None, price="-0.05", paid=False, note="late"),
            order(DAY1, 3, price="0", seconds=86400 * 365 * 3)]
    assert load(opened, ORDERS, rows, DAY1) == MergeCounts(3, 3, 0, 0, 0)
    stored = [r[:8] for r in facts(feeds, ORDERS)]
    assert stored == [
        (DAY1, 1, "A", 1, "12.50", 1, "2026-03-01T08:30:15.623456Z", None),
        (DAY1, 2, None, 1, "-0.05", 0, "2026-03-01T08:30:15.123456Z", "late"),
        (DAY1, 3, "A", 1, "0.00", 1, "2029-02-28T08:30:15.123456Z", None)]
    assert sql(feeds, 'SELECT typeof("price"), typeof("paid"), typeof("placed_at") '
                      'FROM "fact_orders" LIMIT 1') == [("text", "integer", "text")]
    [entry] = sql(feeds, 'SELECT "feed", "file_name" FROM "load_history"')
    assert entry == ("orders", "orders_2026-03-01.parquet")


@pytest.mark.parametrize("feed", [ORDERS, LOOSE], ids=["date-leads-key", "loose-key"])
def test_an_unchanged_rerun_writes_nothing_and_a_change_is_one_update(
        feeds: Settings, opened: Warehouse, feed: Contract) -> None:
    rows = [order(DAY1, i, price=f"{i}.10", seconds=i) for i in range(1, 6)]
    load(opened, feed, rows, DAY1)
    before = facts(feeds, feed)
    # The same decimals written another way (0.1 as 0.10): equal, never rewritten.
    again = [(*r[:4], Decimal(str(r[4]).rstrip("0")), *r[5:]) for r in rows]
    assert load(opened, feed, again, DAY1) == MergeCounts(5, 0, 0, 5, 0)
    assert facts(feeds, feed) == before  # loaded_at and load_id included
    changed = [*rows[:2], order(DAY1, 3, price="3.11", seconds=3), *rows[3:]]
    assert load(opened, feed, changed, DAY1) == MergeCounts(5, 0, 1, 4, 0)
    after = facts(feeds, feed)
    assert after[2][4] == "3.11" and after[:2] + after[3:] == before[:2] + before[3:]
    load(opened, feed, rows, DAY1)
    for column, value in (("paid", False), ("placed_at", START), ("note", "x"),
                          ("sku", None)):
        index = feed.column_names.index(column)
        edited = [list(r) for r in rows]
        edited[0][index] = value
        assert load(opened, feed, [tuple(r) for r in edited], DAY1).updated == 1, column
        load(opened, feed, rows, DAY1)


@pytest.mark.parametrize("feed", [ORDERS, LOOSE], ids=["date-leads-key", "loose-key"])
def test_merges_keep_their_counts_and_the_rows_per_day_true(
        feeds: Settings, opened: Warehouse, feed: Contract) -> None:
    """Random drops (new, corrected and partial days, merged or replaced, sorted or not)
    against a model: each merge's counts, the fact table and the rows per date."""
    rng = random.Random(5)
    model: dict[tuple[str, int], Row] = {}
    for step in range(40):
        day = rng.choice([DAY1, DAY2, DAY3])
        ids = sorted(rng.sample(range(12), rng.randint(1, 12)))
        rows = [order(day, i, sku=rng.choice(["A", "B", None]), qty=rng.randint(1, 3),
                      price=rng.choice(["1.00", "2.50", "0.01"]), paid=rng.random() < 0.5)
                for i in ids]
        replace_date = day if rng.random() < 0.4 else None
        unsorted = rng.random() < 0.3
        if unsorted:
            rng.shuffle(rows)
        gone = [k for k in model if k[0] == day and k[1] not in ids] if replace_date else []
        stored = [(*r[:4], f"{r[4]:.2f}", int(r[5]), *r[6:]) for r in rows]
        expected = MergeCounts(
            rows=len(rows), inserted=sum(r[:2] not in model for r in stored),
            updated=sum(r[:2] in model and model[r[:2]] != r for r in stored),
            unchanged=sum(model.get(r[:2]) == r for r in stored), deleted=len(gone))
        counts = load(opened, feed, rows, day, replace_date, keys_sorted=not unsorted)
        assert counts == expected, step
        for k in gone:
            del model[k]
        model.update(((r[0], r[1]), r) for r in stored)
        table = {(r[0], r[1]): r[:6] for r in facts(feeds, feed)}
        assert table == {k: v[:6] for k, v in model.items()}, step
        per_day: dict[str, int] = dict(sql(feeds, f'SELECT * FROM "{feed.fact_table}_days"'))
        assert per_day == dict(Counter(k[0] for k in model)), step


# Keyed by the order alone, the date a plain column: a key may move to another date.
MOVING = replace(ORDERS, name="moving", key=("order_id",), checks=(),
                 fact_table="fact_moving", staging_table="staging_moving",
                 file_name_pattern=name_pattern("moving_{date}.parquet"),
                 file_name_template="moving_{date}.parquet")


def test_a_key_moving_to_another_date_keeps_the_rows_per_date_true(settings: Settings) -> None:
    """Where the key holds no date, a later file may carry a key first loaded under another
    date: the row moves, and both dates' counts follow (the one it left, too)."""
    feeds = with_feeds(settings, MOVING)
    held = open_on(feeds)
    try:
        first = load(held, MOVING, [order(DAY1, i) for i in range(1, 6)], DAY1)
        assert (first.inserted, first.updated) == (5, 0)
        # Orders 4 and 5 were re-dated to the second day, which also brings 6 to 8.
        moved = load(held, MOVING, [order(DAY2, i) for i in range(4, 9)], DAY2)
        assert (moved.inserted, moved.updated, moved.unchanged) == (3, 2, 0)
        per_day: dict[str, int] = dict(sql(feeds, 'SELECT * FROM "fact_moving_days"'))
        assert per_day == {DAY1: 3, DAY2: 5}
        again = load(held, MOVING, [order(DAY2, i) for i in range(4, 9)], DAY2)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)
        # The second day replaced by orders 6 to 8 alone: 4 and 5 are gone for good.
        replaced = load(held, MOVING, [order(DAY2, i) for i in range(6, 9)], DAY2,
                        replace_date=DAY2)
        assert (replaced.unchanged, replaced.deleted) == (3, 2)
        assert dict(sql(feeds, 'SELECT * FROM "fact_moving_days"')) == {DAY1: 3, DAY2: 3}
        assert [r[:2] for r in facts(feeds, MOVING)] == [
            (DAY1, 1), (DAY1, 2), (DAY1, 3), (DAY2, 6), (DAY2, 7), (DAY2, 8)]
    finally:
        held.close()


def test_the_feeds_figures_per_date_and_per_group(feeds: Settings, opened: Warehouse) -> None:
    load(opened, ORDERS, [order(DAY1, 1, sku="A", qty=2, price="0.10"),
                          order(DAY1, 2, sku="B", qty=1, price="0.10"),
                          order(DAY1, 3, sku=None, qty=5, price="0.10")], DAY1)
    load(opened, ORDERS, [order(DAY2, 1, sku="B", qty=1, price="1234567.89")], DAY2)
    with warehouse.reading(feeds) as history:
        days = history.day_totals(ORDERS)
        assert [(d.run_date, d.rows, d.figures) for d in days] == [
            (DAY1, 3, (("skus", 2), ("revenue", "0.30"), ("units", 8))),
            (DAY2, 1, (("skus", 1), ("revenue", "1234567.89"), ("units", 1)))]
        assert [d.run_date for d in history.day_totals(ORDERS, since=DAY2)] == [DAY2]
        groups = history.group_totals(ORDERS)
        assert [(g.group, g.rows, g.figures) for g in groups] == [
            ("B", 2, (("revenue", "1234567.99"), ("units", 2))),
            ("A", 1, (("revenue", "0.10"), ("units", 2))),
            (None, 1, (("revenue", "0.10"), ("units", 5)))]
        assert [(d.run_date, d.rows) for d in history.rows_per_day(ORDERS, 31, DAY3)] == [
            (DAY1, 3), (DAY2, 1)]
        assert history.has_rows(ORDERS) and not history.has_rows(LOOSE)
        assert history.day_totals(TRANSACTIONS) == []


@pytest.mark.parametrize("precision", [18, 38])
def test_a_decimal_sum_beyond_sqlites_integers_is_exact(settings: Settings,
                                                        precision: int) -> None:
    big = replace(ORDERS, columns=tuple(
        replace(c, precision=precision, scale=0) if c.name == "price" else c for c in COLUMNS))
    feeds = with_feeds(settings, big)
    held = open_on(feeds)
    try:
        price = "9" * 18
        load(held, big, [order(DAY1, i, price=price) for i in range(20)], DAY1)
    finally:
        held.close()
    with warehouse.reading(feeds) as history:
        [day] = history.day_totals(big)
    assert day.figure("revenue") == str(int(price) * 20)


def test_the_ledger_is_asked_per_feed(feeds: Settings, opened: Warehouse) -> None:
    load(opened, ORDERS, [order(DAY1, 1)], DAY1)
    load(opened, LOOSE, [order(DAY1, 1)], DAY1)
    opened.record_failure(LoadRecord("orders_2026-03-02.parquet", None, 1, "merge", DAY2,
                                     clock.utc_now(), feed="orders"), rows=None, error="x")
    now = clock.utc_now()
    with warehouse.reading(feeds) as history:
        assert [x.feed for x in history.recent_loads(LoadFilter())] == ["orders", "loose",
                                                                         "orders"]
        assert [x.file_name for x in history.recent_loads(LoadFilter(feed="orders"))] == [
            "orders_2026-03-02.parquet", "orders_2026-03-01.parquet"]
        assert history.tally(feed="orders") == history.tally(feed="orders", until=now)
        assert (history.tally(feed="orders").failed, history.tally(feed="loose").loads,
                history.tally(feed="transactions").loads, history.tally().loads) == (1, 1, 0, 3)
        last = history.last_success(now, feed="orders")
        assert last is not None and last.file_name == "orders_2026-03-01.parquet"
        assert history.last_success(now, feed="transactions") is None
        assert sum(b.loads for b in history.load_bins("2000-01-01", now, 60, "loose")) == 1
        assert history.median_load("2000-01-01", now, "transactions") is None
    assert opened.last_success(now, "loose") is not None


def evolved(settings: Settings, feed: Contract) -> list[MutableMapping[str, Any]]:
    """Open the warehouse on `feed` as now declared; the schema's log lines."""
    with structlog.testing.capture_logs() as logs:
        open_on(with_feeds(settings, feed)).close()
    return [e for e in logs if e["event"].startswith("table_")]


def test_a_column_added_to_the_declaration_is_added_to_the_table(settings: Settings) -> None:
    assert evolved(settings, ORDERS) == [
        {"event": "table_created", "feed": "orders", "table": "fact_orders",
         "log_level": "info"}]
    held = open_on(with_feeds(settings, ORDERS))
    load(held, ORDERS, [order(DAY1, 1)], DAY1)
    held.close()
    grown = replace(ORDERS, columns=(*COLUMNS, Column("channel", "string", nullable=True),
                                     Column("tax", "decimal", precision=5, scale=1,
                                            default=0)))
    assert evolved(settings, grown) == [
        {"event": "table_columns_added", "feed": "orders", "table": "fact_orders",
         "columns": ["channel", "tax"], "log_level": "info"}]
    # Added after the daemon's own columns (`loaded_at`, `load_id`).
    assert [r[10:] for r in facts(settings, ORDERS)] == [(None, "0.0")]
    assert evolved(settings, grown) == []  # the next start finds it as declared
    held = open_on(with_feeds(settings, grown))
    try:
        row = (*order(DAY1, 2), "web", Decimal("1.5"))
        assert load(held, grown, [row], DAY1) == MergeCounts(1, 1, 0, 0, 0)
    finally:
        held.close()
    assert [r[10:] for r in facts(settings, ORDERS)] == [(None, "0.0"), ("web", "1.5")]


@pytest.mark.parametrize(("declared", "named", "hint"), [
    (replace(ORDERS, columns=COLUMNS[:-1]), "['note'], which the feed no longer declares",
     "restore the declaration of note"),
    (replace(ORDERS, columns=tuple(replace(c, kind="float") if c.name == "qty" else c
                                   for c in COLUMNS)), "qty is INTEGER, declared REAL",
     "declare those columns as they were"),
    (replace(ORDERS, columns=tuple(replace(c, scale=3) if c.name == "price" else c
                                   for c in COLUMNS)),
     "price is DECIMAL_TEXT(12,2), declared DECIMAL_TEXT(12,3)", "as they were"),
    (replace(ORDERS, key=("order_id",)), "keyed on ['order_date', 'order_id']",
     "declare the key as it was"),
    (replace(ORDERS, columns=(*COLUMNS, Column("region", "string"))), "['region']",
     "nullable or with a default"),
], ids=["removed", "retyped", "rescaled", "rekeyed", "not-null-added"])
def test_a_declaration_the_rows_no_longer_fit_is_refused_and_nothing_changes(
        settings: Settings, declared: Contract, named: str, hint: str) -> None:
    held = open_on(with_feeds(settings, ORDERS))
    load(held, ORDERS, [order(DAY1, 1)], DAY1)
    held.close()
    shape = sql(settings, "SELECT sql FROM sqlite_master ORDER BY name")
    with pytest.raises(SchemaMismatch) as refused:
        open_on(with_feeds(settings, declared)).close()
    assert "feed orders: table fact_orders holds rows" in refused.value.message
    assert named in refused.value.message
    assert hint in (refused.value.hint or "") and "move it aside" in (refused.value.hint or "")
    assert sql(settings, "SELECT sql FROM sqlite_master ORDER BY name") == shape
    assert len(facts(settings, ORDERS)) == 1


def test_an_empty_table_unlike_its_declaration_is_made_again(settings: Settings) -> None:
    open_on(with_feeds(settings, ORDERS)).close()
    rekeyed = replace(ORDERS, key=("order_id",), checks=(), columns=COLUMNS[:-1])
    assert evolved(settings, rekeyed) == [
        {"event": "table_recreated", "feed": "orders", "table": "fact_orders",
         "reason": "empty, and unlike its declaration", "log_level": "info"}]
    [(ddl,)] = sql(settings, "SELECT sql FROM sqlite_master WHERE name = 'fact_orders'")
    assert '"order_id" INTEGER NOT NULL PRIMARY KEY' in ddl and '"note"' not in ddl
    # Not dated any more: its date is found by an index.
    assert sql(settings, "SELECT name FROM sqlite_master WHERE name = "
                         "'fact_orders_order_date'") == [("fact_orders_order_date",)]


def test_the_history_of_a_database_before_feeds_reads_every_load_as_the_built_in_feeds(
        settings: Settings) -> None:
    """A version-4 ledger has no feed column: the commands read it before the daemon
    migrates it."""
    from tests.test_upgrade import RELEASE_4, copied

    old = with_feeds(copied(settings, RELEASE_4), ORDERS)
    with warehouse.reading(old) as history:
        assert history.schema_version() == 4
        assert history.tally(feed="transactions") == history.tally()
        assert history.tally(feed="orders").loads == 0
        loads = history.recent_loads(LoadFilter(limit=100))
        assert len(loads) == 7 and {x.feed for x in loads} == {"transactions"}
        assert history.recent_loads(LoadFilter(feed="orders")) == []
        assert history.day_totals(ORDERS) == [] and not history.has_rows(ORDERS)
