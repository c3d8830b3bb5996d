"""Declared feeds on a real PostgreSQL server: their tables, merges, replaces and totals.

A composite-key feed with a decimal, a boolean, a timestamp and nullable columns beside
the built-in one: its table in native types with its key as a constraint, new rows
inserted, an unchanged re-run rewriting no row (not even its `xmin`), changed values
updated, replace mode deleting the date's rows the file lacks and no other date's,
decimals and timestamps exact to the cent and the microsecond, and each feed's figures.
Also the general path (a key without its date, a date index) and the key range of a key
that carries its date. PostgreSQL only: without a server these skip (fail under CI).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon.warehouse.api import MergeCounts, Ticket
from filedrop_etl.daemon.warehouse.postgresql import doors, url_of
from tests.backends import books_of
from tests.pg_feeds import (
    ORDERS,
    PARCELS,
    REFUNDS,
    load,
    next_day,
    one,
    opened,
    orders,
    parcels,
    refunds,
    rows,
    with_feeds,
)

DAY = "2026-03-01"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STAMPS = 'SELECT order_date, order_id, xmin::text, loaded_at, load_id FROM fact_orders ' \
         'ORDER BY 1, 2'


def test_a_declared_feeds_table_is_made_in_native_types_with_its_key(
        pg_url: str, tmp_path: Path) -> None:
    with opened(pg_url, tmp_path, TRANSACTIONS, ORDERS, REFUNDS, PARCELS):
        pass
    columns = rows(pg_url, "SELECT attname, format_type(atttypid, atttypmod), attnotnull, "
                           "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN "
                           "pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                           "WHERE attrelid = 'fact_orders'::regclass AND attnum > 0 "
                           "ORDER BY attnum")
    assert columns == [
        ("order_date", "date", True, None), ("order_id", "bigint", True, None),
        ("sku", "text", False, None), ("qty", "bigint", True, None),
        ("price", "numeric(12,2)", True, None), ("paid", "boolean", True, None),
        ("placed_at", "timestamp with time zone", True, None),
        ("note", "text", False, "''::text"),
        ("loaded_at", "timestamp with time zone", True, None), ("load_id", "bigint", False,
                                                                None)]
    assert one(pg_url, "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = 'fact_orders'::regclass AND contype = 'p'") == \
        "PRIMARY KEY (order_date, order_id)"
    indexes = {n for n, in rows(pg_url, "SELECT indexname FROM pg_indexes "
                                        "WHERE schemaname = current_schema()")}
    # A date index only where the key does not find a date's rows; the built-in feed's
    # as before feeds.
    assert {"fact_transactions_run_date", "fact_refunds_day"} <= indexes
    assert not {"fact_orders_order_date", "fact_parcels_day"} & indexes
    assert one(pg_url, "SELECT to_regclass('staging_orders')") is None


def test_a_composite_key_feed_merges_rewrites_nothing_unchanged_and_replaces(
        pg_url: str, tmp_path: Path) -> None:
    with opened(pg_url, tmp_path, TRANSACTIONS, ORDERS) as held:
        day1, day2 = orders(DAY, 30), orders(next_day(DAY), 20, seed=3)
        assert load(held, ORDERS, day1, DAY, "o1") == MergeCounts(30, 30, 0, 0, 0)
        assert load(held, ORDERS, day2, next_day(DAY), "o2") == MergeCounts(20, 20, 0, 0, 0)
        stamps = rows(pg_url, STAMPS)

        # The same file again: no row rewritten, not even a new row version.
        assert load(held, ORDERS, day1, DAY, "o1-again") == MergeCounts(30, 0, 0, 30, 0)
        assert rows(pg_url, STAMPS) == stamps

        # A cent, a flag, a null and a microsecond changed: those rows alone.
        changed = day1.set_column(4, "price", pa.array(
            [Decimal(str(p)) + Decimal("0.01") if i == 0 else p
             for i, p in enumerate(day1.column("price").to_pylist())], pa.decimal128(12, 2)))
        changed = changed.set_column(5, "paid", pa.array(
            [(not v) if i == 1 else v for i, v in enumerate(changed.column("paid").to_pylist())]))
        changed = changed.set_column(2, "sku", pa.array(
            [None if i == 2 else v for i, v in enumerate(changed.column("sku").to_pylist())],
            pa.string()))
        changed = changed.set_column(6, "placed_at", pc.add(
            changed.column("placed_at"), pa.array(
                [1 if i == 3 else 0 for i in range(30)], pa.duration("us"))))
        assert load(held, ORDERS, changed, DAY, "o1-changed") == MergeCounts(30, 0, 4, 26, 0)
        after = rows(pg_url, STAMPS)
        assert [r[1] for r in after if r not in stamps] == [1, 2, 3, 4]

        # Replace: the file is the whole truth for its date; the other date stays.
        kept = changed.slice(0, 25)
        assert load(held, ORDERS, kept, DAY, "o1-replace", replace=True) == MergeCounts(
            25, 0, 0, 25, 5)
        assert one(pg_url, "SELECT count(*) FROM fact_orders WHERE order_date = %s",
                   (DAY,)) == 25
        assert one(pg_url, "SELECT count(*) FROM fact_orders WHERE order_date = %s",
                   (next_day(DAY),)) == 20
        assert load(held, ORDERS, kept, DAY, "o1-replace2", replace=True) == MergeCounts(
            25, 0, 0, 25, 0)

        # Every value read back as it went in: decimals to the cent, times to the µs.
        back = rows(pg_url, "SELECT order_date::text, order_id, sku, qty, price, paid, "
                            "placed_at, note FROM fact_orders WHERE order_date = %s "
                            "ORDER BY order_id", (DAY,))
        assert [tuple(r) for r in back] == [tuple(r.values()) for r in kept.to_pylist()]
        ledger = rows(pg_url, "SELECT claim, feed FROM load_history ORDER BY id")
        assert {f for _, f in ledger} == {"orders"}


def test_exact_decimals_round_trip_and_sum_as_exact_text(pg_url: str,
                                                         tmp_path: Path) -> None:
    prices = [Decimal("9999999999.99"), Decimal("0.01"), Decimal("-0.10"), Decimal("0.00"),
              Decimal("1234567.89"), Decimal("0.07")]
    table = orders(DAY, len(prices))
    table = table.set_column(4, "price", pa.array(prices, pa.decimal128(12, 2)))
    with opened(pg_url, tmp_path, ORDERS) as held:
        load(held, ORDERS, table, DAY, "d1")
        assert load(held, ORDERS, table, DAY, "d1-again") == MergeCounts(6, 0, 0, 6, 0)
    assert [p for p, in rows(pg_url, "SELECT price FROM fact_orders ORDER BY order_id")] == \
        prices
    with doors.reading(url_of(with_feeds(pg_url, tmp_path, ORDERS)), 2.0) as history:
        [total] = history.day_totals(ORDERS)
        assert total.run_date == DAY and total.rows == 6
        assert total.figure("revenue") == str(sum(prices)) == "10001234567.86"
        assert total.figure("units") == sum(int(str(q)) for q in table.column("qty").to_pylist())
        assert [label for label, _ in total.figures] == ["skus", "revenue", "units"]
        assert total.figure("skus") == len({s for s in table.column("sku").to_pylist() if s})
        groups = history.group_totals(ORDERS)
        # Largest revenue first; a null group (orders without a sku) is one of them.
        assert [label for label, _ in groups[0].figures] == ["revenue", "units"]
        revenues = [Decimal(str(g.figure("revenue"))) for g in groups]
        assert revenues == sorted(revenues, reverse=True)
        assert sum(g.rows for g in groups) == 6
        assert None in {g.group for g in groups}
        assert history.has_rows(ORDERS) and not history.has_rows(REFUNDS)
        assert history.day_totals(REFUNDS) == [] and history.rows_per_day(REFUNDS, 7, DAY) == []
        assert [(d.run_date, d.rows) for d in history.rows_per_day(ORDERS, 7, DAY)] == [(DAY, 6)]


def test_repeated_composite_keys_are_counted_with_samples(pg_url: str,
                                                          tmp_path: Path) -> None:
    table = orders(DAY, 6)
    twice = pa.concat_tables([table, table.slice(2, 2), table.slice(2, 1)])
    with opened(pg_url, tmp_path, ORDERS) as held, held.staged(ORDERS,
                                                               twice.to_batches()) as staged:
        assert staged.surplus_rows(ORDERS.key, 1) == (3, [f"{DAY}, 3"])
        assert staged.surplus_rows(ORDERS.key, 5) == (3, [f"{DAY}, 3", f"{DAY}, 4"])
        # Null values repeat nothing: six rows, two skus null.
        total, _ = staged.surplus_rows(("sku",), 5)
        nulls = sum(s is None for s in twice.column("sku").to_pylist())
        distinct = len({s for s in twice.column("sku").to_pylist() if s is not None})
        assert total == twice.num_rows - nulls - distinct


def test_the_general_path_and_a_key_that_carries_its_date(pg_url: str,
                                                          tmp_path: Path) -> None:
    with opened(pg_url, tmp_path, REFUNDS, PARCELS) as held:
        # Refunds: a key of no date; a key of one day may come back on another.
        assert load(held, REFUNDS, refunds(DAY, ["a", "bb", "ccc"]), DAY, "r1") == \
            MergeCounts(3, 3, 0, 0, 0)
        moved = refunds(next_day(DAY), ["bb", "dddd"])
        assert load(held, REFUNDS, moved, next_day(DAY), "r2") == MergeCounts(2, 1, 1, 0, 0)
        assert rows(pg_url, "SELECT ref, day::text, amount FROM fact_refunds ORDER BY ref") == [
            ("a", DAY, Decimal("1.125")), ("bb", next_day(DAY), Decimal("2.125")),
            ("ccc", DAY, Decimal("3.125")), ("dddd", next_day(DAY), Decimal("4.125"))]
        assert load(held, REFUNDS, refunds(DAY, ["a"]), DAY, "r3", replace=True) == \
            MergeCounts(1, 0, 0, 1, 1)
        assert one(pg_url, "SELECT count(*) FROM fact_refunds") == 3

        # Parcels: a date is the range of its keys; replace finds that day's rows alone.
        for i in range(3):
            day = next_day(DAY, i)
            assert load(held, PARCELS, parcels(day, 10), day, f"p{i}") == MergeCounts(
                10, 10, 0, 0, 0)
        assert load(held, PARCELS, parcels(next_day(DAY), 10), next_day(DAY), "p1-again") == \
            MergeCounts(10, 0, 0, 10, 0)
        assert load(held, PARCELS, parcels(next_day(DAY), 4), next_day(DAY), "p1-replace",
                    replace=True) == MergeCounts(4, 0, 0, 4, 6)
        assert rows(pg_url, "SELECT day::text, count(*) FROM fact_parcels GROUP BY 1 "
                            "ORDER BY 1") == [(DAY, 10), (next_day(DAY), 4),
                                              (next_day(DAY, 2), 10)]


def test_the_later_drop_watermark_is_per_feed_and_date(pg_url: str, tmp_path: Path) -> None:
    with opened(pg_url, tmp_path, TRANSACTIONS, ORDERS) as held:
        assert held.latest_drop("orders", DAY, Ticket(1, 1, dropped_ns=500))
        # Another feed's drop of the same date, dropped earlier, is not superseded.
        assert held.latest_drop("transactions", DAY, Ticket(2, 1, dropped_ns=300))
        assert not held.latest_drop("orders", DAY, Ticket(3, 1, dropped_ns=400))
        assert held.latest_drop("orders", next_day(DAY), Ticket(4, 1, dropped_ns=100))
    assert rows(pg_url, "SELECT feed, run_date::text, dropped_at, dropped_nanos "
                f"FROM {books_of(pg_url).drops} ORDER BY 1, 2") == [
        ("orders", DAY, EPOCH, 500), ("orders", next_day(DAY), EPOCH, 100),
        ("transactions", DAY, EPOCH, 300)]
