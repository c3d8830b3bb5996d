"""Declared feeds for the PostgreSQL tests, and a worker's warehouse opened for them.

`ORDERS` has a composite key leading with its date (held to the file's date: the fast
path of `date_leads_key`), and a column of every kind: decimal, boolean, timestamp,
nullable ones, one with a default. `REFUNDS` is keyed by a reference that does not
carry its date (the general path, with a date index); `PARCELS` by one that does
(`keys_carry_their_date`). Rows are made from a seed, deterministic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa

from filedrop_etl.config.contract import TRANSACTIONS, Check, Column, Contract, Totals
from filedrop_etl.config.file_names import Feeds, name_pattern
from filedrop_etl.daemon import clock
from filedrop_etl.daemon.warehouse.api import Folders, LoadRecord, MergeCounts, MergePlan
from filedrop_etl.daemon.warehouse.postgresql import doors, url_of
from tests.conftest import settings_under
from tests.feed_orders import ORDER_COLUMNS


def feed(name: str, columns: tuple[Column, ...], key: tuple[str, ...], date_column: str,
         checks: tuple[Check, ...] = (), totals: Totals | None = None) -> Contract:
    template = f"{name}_{{date}}.parquet"
    return Contract(name=name, columns=columns, key=key, date_column=date_column,
                    checks=(*checks, Check("unique", key[0], over=key),
                            Check("equals_file_date", date_column)),
                    fact_table=f"fact_{name}", staging_table=f"staging_{name}",
                    file_name_pattern=name_pattern(template), file_name_template=template,
                    totals=totals or Totals())


ORDERS = feed("orders", ORDER_COLUMNS, key=("order_date", "order_id"), date_column="order_date",
    totals=Totals(sums=(("revenue", "price"), ("units", "qty")),
                  distinct=(("skus", "sku"),), group_by="sku"))

REFUNDS = feed("refunds", (
    Column("ref", "string"),
    Column("day", "date"),
    Column("amount", "decimal", precision=10, scale=3),
), key=("ref",), date_column="day")

PARCELS = feed("parcels", (
    Column("parcel", "string"),
    Column("day", "date"),
    Column("weight", "float"),
), key=("parcel",), date_column="day", checks=(Check("file_date_prefix", "parcel"),))


def orders(run_date: str, n: int, seed: int = 0) -> pa.Table:
    """`n` orders of `run_date`: prices with cents, every third unpaid, some skus null."""
    base = datetime.fromisoformat(run_date).replace(tzinfo=UTC)
    rows = [{"order_date": run_date, "order_id": i,
             "sku": None if (i + seed) % 5 == 0 else f"sku-{(i * 7 + seed) % 4}",
             "qty": (i + seed) % 9 + 1,
             "price": Decimal(f"{(i * 37 + seed) % 100000}.{(i * 13 + seed) % 100:02d}"),
             "paid": (i + seed) % 3 != 0,
             "placed_at": base + timedelta(seconds=i * 61, microseconds=i * 7 + 1),
             "note": "" if i % 2 else f"note {i}"} for i in range(1, n + 1)]
    return pa.Table.from_pylist(rows, schema=ORDERS.arrow_schema)


def refunds(run_date: str, refs: list[str]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"ref": r, "day": run_date, "amount": Decimal(f"{len(r)}.125")} for r in refs],
        schema=REFUNDS.arrow_schema)


def parcels(run_date: str, n: int) -> pa.Table:
    prefix = run_date.replace("-", "")
    return pa.Table.from_pylist(
        [{"parcel": f"{prefix}-{i:04d}", "day": run_date, "weight": i / 4} for i in range(n)],
        schema=PARCELS.arrow_schema)


def with_feeds(url: str, root: Path, *feeds: Contract) -> Any:
    """Settings on `url` serving `feeds` (besides none: as given)."""
    return dataclasses.replace(settings_under(root, url), feeds=Feeds(tuple(feeds)))


@contextmanager
def opened(url: str, root: Path, *feeds: Contract) -> Iterator[doors.PostgresWarehouse]:
    settings = with_feeds(url, root, *(feeds or (TRANSACTIONS,)))
    folders = Folders(str(root / "inbox"), str(root / "work"), str(root / "processed"),
                      str(root / "failed"))
    warehouse = doors.open_warehouse(url_of(settings), settings.feeds.all,
                                     settings=settings, folders=folders)
    try:
        yield warehouse
    finally:
        warehouse.close()


def load(warehouse: doors.PostgresWarehouse, contract: Contract, table: pa.Table,
         run_date: str, claim: str, replace: bool = False) -> MergeCounts:
    plan = MergePlan(keys_sorted=False, keys_counted=True,
                     replace_date=run_date if replace else None, run_date=run_date)
    record = LoadRecord(contract.file_name_for(run_date), None, None,
                        "replace" if replace else "merge", run_date, clock.utc_now(),
                        claim, feed=contract.name)
    with warehouse.staged(contract, table.to_batches(max_chunksize=7)) as staged:
        assert staged.rows == table.num_rows
        return staged.commit(record, plan)


def rows(url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query.encode(), params).fetchall()


def one(url: str, query: str, params: tuple[object, ...] = ()) -> Any:
    [(value,)] = rows(url, query, params)
    return value


def next_day(run_date: str, days: int = 1) -> str:
    return (date.fromisoformat(run_date) + timedelta(days=days)).isoformat()
