"""A column's nullability changed in a feed's declaration between two starts, both backends.

Declared nullable where the table holds it NOT NULL: relaxed at start (PostgreSQL drops
the NOT NULL; SQLite, which can not alter a column, makes the table again as declared,
WITHOUT ROWID, its rows copied, in the start's transaction), logged
`table_columns_relaxed`; a file with nulls there then loads. Declared NOT NULL where the
table holds it nullable: tightened if the table holds no null there
(`table_columns_tightened`), refused naming the column and what to do if it does, and
nothing changes. Real SQLite files, the real PostgreSQL server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import MutableMapping
from contextlib import closing
from dataclasses import replace
from typing import Any

import psycopg
import pytest
import structlog

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import Column, Contract
from filedrop_etl.daemon.errors import SchemaMismatch
from tests.backends import on_postgresql
from tests.conftest import on_both_backends
from tests.test_warehouse_feeds import (
    COLUMNS,
    DAY1,
    LOOSE,
    ORDERS,
    load,
    open_on,
    order,
    with_feeds,
)

pytestmark = on_both_backends
Row = tuple[Any, ...]


def declared(feed: Contract, **nullable: bool) -> Contract:
    return replace(feed, columns=tuple(replace(c, nullable=nullable.get(c.name, c.nullable))
                                       for c in COLUMNS))


def sql(settings: Settings, query: str) -> list[Row]:
    if on_postgresql(settings):
        with psycopg.connect(settings.db) as conn:
            return conn.execute(query.encode()).fetchall()
    with closing(sqlite3.connect(settings.db_file)) as conn:
        return conn.execute(query).fetchall()


def nullable(settings: Settings, table: str) -> dict[str, bool]:
    """Each column of `table`: whether it may hold a null, as the database holds it."""
    if on_postgresql(settings):
        return {str(n): not bool(nn) for n, nn in sql(
            settings, "SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = "
            f"'{table}'::regclass AND attnum > 0 AND NOT attisdropped")}
    return {str(n): not bool(nn) for _, n, _, nn, _, _ in
            sql(settings, f'PRAGMA table_info("{table}")')}


def facts(settings: Settings, feed: Contract) -> list[Row]:
    return sql(settings, f'SELECT "order_id", "sku", "qty", "note" FROM "{feed.fact_table}" '
                         'ORDER BY "order_id"')


def started(settings: Settings, feed: Contract) -> list[MutableMapping[str, Any]]:
    """Open the warehouse on `feed` as now declared; the schema's log lines."""
    with structlog.testing.capture_logs() as logs:
        open_on(with_feeds(settings, feed)).close()
    return [e for e in logs if e["event"].startswith("table_")]


def loaded(settings: Settings, feed: Contract, *rows: Row) -> None:
    held = open_on(with_feeds(settings, feed))
    try:
        load(held, feed, rows, DAY1)
    finally:
        held.close()


@pytest.mark.parametrize("feed", [ORDERS, LOOSE], ids=["date-leads-key", "loose-key"])
def test_a_column_declared_nullable_is_relaxed_and_its_nulls_then_load(
        settings: Settings, feed: Contract) -> None:
    loaded(settings, feed, order(DAY1, 1, qty=3), order(DAY1, 2, sku=None, note="x"))
    before = facts(settings, feed)
    relaxed = declared(feed, qty=True)
    assert started(settings, relaxed) == [
        {"event": "table_columns_relaxed", "feed": feed.name, "table": feed.fact_table,
         "columns": ["qty"], "log_level": "info"}]
    assert nullable(settings, feed.fact_table)["qty"]
    assert facts(settings, feed) == before
    assert started(settings, relaxed) == []  # as declared now
    if not on_postgresql(settings):
        [(ddl,)] = sql(settings, "SELECT sql FROM sqlite_master WHERE name = "
                                 f"'{feed.fact_table}'")
        assert ddl.startswith(f'CREATE TABLE "{feed.fact_table}" (') and \
            ddl.endswith(") WITHOUT ROWID") and '"qty" INTEGER,' in ddl
        # The general path's date index is made again with the table.
        assert bool(sql(settings, "SELECT 1 FROM sqlite_master WHERE name = "
                                  f"'{feed.fact_table}_order_date'")) == (feed is LOOSE)
    row = order(DAY1, 3)
    loaded(settings, relaxed, (*row[:3], None, *row[4:]))
    assert facts(settings, feed)[-1] == (3, "A", None, None)


def test_a_column_relaxed_and_one_added_in_one_start(settings: Settings) -> None:
    loaded(settings, ORDERS, order(DAY1, 1))
    grown = replace(declared(ORDERS, paid=True),
                    columns=(*declared(ORDERS, paid=True).columns,
                             Column("channel", "string", default="web")))
    assert [(e["event"], e["columns"]) for e in started(settings, grown)] == [
        ("table_columns_added", ["channel"]), ("table_columns_relaxed", ["paid"])]
    assert sql(settings, 'SELECT "channel" FROM "fact_orders"') == [("web",)]
    assert nullable(settings, "fact_orders")["paid"]


def test_a_column_declared_not_null_is_tightened_where_it_holds_no_null(
        settings: Settings) -> None:
    loaded(settings, ORDERS, order(DAY1, 1), order(DAY1, 2, sku="B"))
    assert started(settings, declared(ORDERS, sku=False)) == [
        {"event": "table_columns_tightened", "feed": "orders", "table": "fact_orders",
         "columns": ["sku"], "log_level": "info"}]
    assert not nullable(settings, "fact_orders")["sku"]
    assert [r[:2] for r in facts(settings, ORDERS)] == [(1, "A"), (2, "B")]


def test_a_column_declared_not_null_that_holds_nulls_is_refused_and_nothing_changes(
        settings: Settings) -> None:
    loaded(settings, ORDERS, order(DAY1, 1), order(DAY1, 2, sku=None))
    before = nullable(settings, "fact_orders"), facts(settings, ORDERS)
    with pytest.raises(SchemaMismatch) as refused:
        open_on(with_feeds(settings, declared(ORDERS, sku=False, qty=True))).close()
    assert refused.value.message == (
        "feed orders: table fact_orders holds rows and has nulls in the columns ['sku'], "
        "which the feed now declares NOT NULL")
    assert "declare sku nullable = true again, or fill the nulls" in (refused.value.hint or "")
    assert "move it aside" in (refused.value.hint or "")
    # Not even the column it could relax: a refused start changes nothing.
    assert (nullable(settings, "fact_orders"), facts(settings, ORDERS)) == before


def test_an_empty_table_is_made_again_with_the_declared_nullability(
        settings: Settings) -> None:
    started(settings, ORDERS)
    assert [(e["event"], e["reason"]) for e in started(settings, declared(ORDERS, sku=False,
                                                                          qty=True))] == [
        ("table_recreated", "empty, and unlike its declaration")]
    held = nullable(settings, "fact_orders")
    assert (held["sku"], held["qty"]) == (False, True)
