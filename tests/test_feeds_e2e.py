"""Two declared feeds in one inbox, the real daemon on each backend: what a team sees.

The built-in transactions feed (merged) beside an orders feed declared in a config file:
a composite key led by the date, decimal, boolean, timestamp and nullable columns, its
own write mode (replace). New days, identical and corrected re-drops, a bad file of each
feed and a file matching no feed; after each, both fact tables must equal what a model
computed here independently says.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from filedrop_etl.config import Settings
from tests.backends import on_postgresql, server_of
from tests.conftest import (
    DaemonProcess,
    day_table,
    drop,
    on_both_backends,
    replaced_at,
    wait_until,
)
from tests.feed_orders import orders_toml

Start = Callable[..., DaemonProcess]
DAY1, DAY2 = "2026-02-10", "2026-02-11"
CONFIG = "[feeds.transactions]\n" + orders_toml(write_mode="replace")
Order = tuple[str, int, str | None, int, Decimal, bool, datetime]
PARIS = "Europe/Paris"


def orders(day: str, ids: range, *, bump: int | None = None) -> list[Order]:
    """Deterministic orders of `day`: every seventh without a sku; `bump` raises one
    order's quantity (a correction)."""
    start = datetime.fromisoformat(f"{day}T08:00:00+00:00")
    return [(day, i, None if i % 7 == 0 else f"SKU-{i % 5}", i % 4 + (bump == i),
             Decimal(f"{i * 3}.{i % 100:02d}"), i % 2 == 0, start + timedelta(minutes=i))
            for i in ids]


def orders_file(rows: list[Order]) -> pa.Table:
    """As another writer would send them: a Parquet DATE, a 32-bit id, a narrower
    decimal, and times in Paris at millisecond precision."""
    columns = list(zip(*rows, strict=True))
    return pa.table({
        "order_date": pa.array([date.fromisoformat(d) for d in columns[0]], pa.date32()),
        "order_id": pa.array(columns[1], pa.int32()),
        "sku": pa.array(columns[2], pa.string()),
        "qty": pa.array(columns[3], pa.int64()),
        "price": pa.array(columns[4], pa.decimal128(9, 2)),
        "paid": pa.array(columns[5], pa.bool_()),
        "placed_at": pa.array(columns[6], pa.timestamp("ms", tz="UTC")).cast(
            pa.timestamp("ms", tz=PARIS)),
    })


class Model:
    """The fact tables as the declarations say they must be, computed without the daemon:
    transactions merged by key, orders replaced by date."""

    def __init__(self) -> None:
        self.transactions: dict[str, tuple[Any, ...]] = {}
        self.orders: dict[tuple[str, int], Order] = {}

    def merge_transactions(self, table: pa.Table) -> None:
        for row in table.to_pylist():
            self.transactions[row["txn_id"]] = (row["txn_id"], row["customer_id"],
                                                row["amount"], row["run_date"])

    def replace_orders(self, day: str, rows: list[Order]) -> None:
        self.orders = {k: v for k, v in self.orders.items() if k[0] != day}
        self.orders.update({(r[0], r[1]): r for r in rows})


def _rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    if on_postgresql(settings):
        with psycopg.connect(server_of(settings)) as server:
            return [tuple(r) for r in server.execute(query.encode())]
    conn = sqlite3.connect(settings.db_file)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def _order(row: tuple[Any, ...]) -> Order:
    """A fact row of either backend as the model keeps it."""
    day, order_id, sku, qty, price, paid, placed = row
    when = placed if isinstance(placed, datetime) else datetime.fromisoformat(placed)
    return (str(day), order_id, sku, qty, Decimal(str(price)), bool(paid),
            when.astimezone(UTC))


def check_facts(settings: Settings, model: Model) -> None:
    transactions = _rows(settings, 'SELECT "txn_id", "customer_id", "amount", '
                         '"run_date" FROM "fact_transactions"')
    assert {r[0]: (r[0], r[1], r[2], str(r[3])) for r in transactions} == model.transactions
    rows = _rows(settings, 'SELECT "order_date", "order_id", "sku", "qty", "price", "paid", '
                 '"placed_at" FROM "fact_orders"')
    assert {(str(r[0]), r[1]): _order(r) for r in rows} == model.orders
    if not on_postgresql(settings):
        # Decimals are kept as their exact text at the declared scale, never as REAL.
        prices = _rows(settings, 'SELECT DISTINCT typeof("price") FROM "fact_orders"')
        assert prices == [("text",)]


def put(tmp_path: Path, settings: Settings, name: str, table: pa.Table) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    pq.write_table(table, outbox / name)
    drop(outbox / name, settings.inbox)


@on_both_backends
def test_two_feeds_in_one_inbox_load_as_declared(tmp_path: Path, start_daemon: Start) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(CONFIG)
    daemon = start_daemon("--config", str(config))
    settings, model = daemon.settings, Model()
    outcomes = 0

    def step(name: str, table: pa.Table, outcome: str = "file_processed") -> dict[str, Any]:
        nonlocal outcomes
        put(tmp_path, settings, name, table)
        outcomes += 1
        line = _outcomes(daemon, outcomes)[-1]
        assert line["file"] == name, line
        assert line["event"] == outcome, line
        return line

    # Day 1 of each feed.
    step("transactions_2026-02-10.parquet", day_table(DAY1))
    model.merge_transactions(day_table(DAY1))
    day1 = orders(DAY1, range(1, 41))
    first = step("orders_2026-02-10.parquet", orders_file(day1))
    model.replace_orders(DAY1, day1)
    assert (first["feed"], first["inserted"]) == ("orders", 40)
    check_facts(settings, model)

    # The same orders again: nothing changes, nothing is rewritten.
    again = step("orders_2026-02-10.parquet", orders_file(day1))
    assert (again["inserted"], again["updated"], again["unchanged"], again["deleted"]) == (
        0, 0, 40, 0)
    # Corrected: two orders gone, one quantity changed (replace mode).
    fixed = orders(DAY1, range(3, 41), bump=10)
    corrected = step("orders_2026-02-10.parquet", orders_file(fixed))
    model.replace_orders(DAY1, fixed)
    assert (corrected["updated"], corrected["deleted"]) == (1, 2)
    # A corrected transactions day merges (the daemon's write mode).
    changed = replaced_at(day_table(DAY1), "amount", 3, 999.5)
    merged = step("transactions_2026-02-10.parquet", changed)
    model.merge_transactions(changed)
    assert (merged["feed"], merged["updated"], merged["deleted"]) == ("transactions", 1, 0)
    check_facts(settings, model)

    # Day 2 of each; then a bad file of each feed, and one of no feed.
    step("transactions_2026-02-11.parquet", day_table(DAY2))
    model.merge_transactions(day_table(DAY2))
    day2 = orders(DAY2, range(1, 31))
    step("orders_2026-02-11.parquet", orders_file(day2))
    model.replace_orders(DAY2, day2)
    step("transactions_2026-02-12.parquet",
         replaced_at(day_table("2026-02-12"), "amount", 0, -5.0), "file_failed")
    too_wide = orders_file(orders("2026-02-12", range(1, 5))).set_column(
        4, "price", pa.array([Decimal("12345678901.00")] * 4, pa.decimal128(15, 2)))
    overflow = step("orders_2026-02-12.parquet", too_wide, "file_failed")
    assert "price" in overflow["reason"] and "12345678901.00" in overflow["reason"]
    stranger = step("refunds_2026-02-12.parquet", orders_file(day2), "file_failed")
    assert "orders_YYYY-MM-DD.parquet" in stranger["reason"]
    assert "transactions_YYYY-MM-DD.parquet" in stranger["reason"]
    check_facts(settings, model)

    sidecar = json.loads((settings.failed / "orders_2026-02-12.parquet.error.json").read_text())
    assert "price" in json.dumps(sidecar)
    assert daemon.stop() == 0
    assert sorted(p.name for p in settings.failed.iterdir() if p.suffix == ".parquet") == [
        "orders_2026-02-12.parquet", "refunds_2026-02-12.parquet",
        "transactions_2026-02-12.parquet"]


def _outcomes(daemon: DaemonProcess, count: int) -> list[dict[str, Any]]:
    """The first `count` outcome lines (a file processed or failed), waited for."""
    def outcomes() -> list[dict[str, Any]]:
        return [e for e in daemon.events() if e["event"] in ("file_processed", "file_failed")]

    wait_until(lambda: len(outcomes()) >= count, f"{count} outcomes")
    return outcomes()[:count]


RATES = """
[feeds.rates]
pattern = "rates-{date}.parquet"
date_format = "%Y%m%d"
key = ["day", "currency"]
date_column = "day"

[feeds.rates.columns]
day = "date"
currency = "string"
rate = { kind = "decimal", precision = 10, scale = 4 }
"""


def rates_file(day: str, extra: dict[str, pa.Array[Any]] | None = None) -> pa.Table:
    return pa.table({"day": pa.array([day] * 2), "currency": pa.array(["CHF", "USD"]),
                     "rate": pa.array([Decimal("0.9412"), Decimal("1.0831")],
                                      pa.decimal128(10, 4)), **(extra or {})})


@on_both_backends
def test_a_feed_declaration_changed_between_runs(tmp_path: Path, settings: Settings,
                                                  start_daemon: Start) -> None:
    """A column added between two runs is added to the table (earlier files still load);
    a column's kind changed while its table holds rows refuses the start, naming it."""
    config = tmp_path / "feeds.toml"
    config.write_text(RATES)
    put(tmp_path, settings, "rates-20260210.parquet", rates_file(DAY1))
    first = start_daemon("--config", str(config), "--once", wait_started=False)
    assert first.proc.wait(timeout=60) == 0
    assert first.matching("file_processed", feed="rates", inserted=2)

    # Added: a nullable source column, and a fee with a default the rows there take.
    config.write_text(RATES + 'source = { kind = "string", nullable = true }\n'
                      'fee = { kind = "integer", default = 0 }\n')
    put(tmp_path, settings, "rates-20260211.parquet", rates_file(DAY2))
    put(tmp_path, settings, "rates-20260212.parquet", rates_file(
        "2026-02-12", {"source": pa.array(["ECB", None]), "fee": pa.array([3, 4])}))
    second = start_daemon("--config", str(config), "--once", wait_started=False)
    assert second.proc.wait(timeout=60) == 0
    [added] = second.matching("table_columns_added")
    assert added["table"] == "fact_rates" and "source" in str(added) and "fee" in str(added)
    assert len(second.matching("file_processed", feed="rates")) == 2
    rows = _rows(settings, 'SELECT "day", "currency", "source", "fee" FROM "fact_rates"')
    assert sorted((str(r[0]), *r[1:]) for r in rows) == [
        ("2026-02-10", "CHF", None, 0), ("2026-02-10", "USD", None, 0),
        ("2026-02-11", "CHF", None, 0), ("2026-02-11", "USD", None, 0),
        ("2026-02-12", "CHF", "ECB", 3), ("2026-02-12", "USD", None, 4)]

    # Retyped while the table holds rows: refused at start, the table untouched.
    config.write_text(RATES.replace('rate = { kind = "decimal", precision = 10, scale = 4 }',
                                    'rate = "float"'))
    third = start_daemon("--config", str(config), "--once", wait_started=False)
    assert third.proc.wait(timeout=60) == 2
    [refused] = third.matching("database_unavailable")
    assert "rate" in refused["reason"] and refused["hint"]
    assert len(_rows(settings, 'SELECT * FROM "fact_rates"')) == 6
