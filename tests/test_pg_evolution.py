"""A feed's declaration changed between two starts, on a real PostgreSQL server.

A column added to the declaration is added to the table, nullable or with its default
(which fills the rows already there), logged `table_columns_added`; files with and
without it load. A column retyped, a column no longer declared, a changed key, or an
added column that may not be absent is refused while the table holds rows, naming the
column and what to do, and nothing changes; an empty table is made again as declared
(`table_recreated`); a new feed's table is made (`table_created`).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from structlog.testing import capture_logs

from filedrop_etl.config.contract import Column, Contract
from filedrop_etl.daemon.errors import SchemaMismatch
from filedrop_etl.daemon.warehouse.api import MergeCounts
from filedrop_etl.daemon.warehouse.postgresql import schema
from filedrop_etl.daemon.warehouse.postgresql.connection import connect
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl
from tests.pg_feeds import ORDERS, load, one, opened, orders, rows

DAY = "2026-03-01"
TYPES = ("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
         "attrelid = 'fact_orders'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")


def declared(*columns: Column, without: tuple[str, ...] = ()) -> Contract:
    """ORDERS with its columns but `without`, each of `columns` replacing its namesake or
    added at the end."""
    named = {c.name: c for c in columns}
    kept = tuple(named.pop(c.name, c) for c in ORDERS.columns if c.name not in without)
    return dataclasses.replace(ORDERS, columns=(*kept, *named.values()))


def migrated(url: str, contract: Contract) -> list[dict[str, Any]]:
    """Migrate for `contract`; the log lines."""
    with capture_logs() as logs, connect(PostgresUrl(url), 2.0) as conn:
        schema.migrate(conn, (contract,))
    return [dict(e) for e in logs]


@pytest.fixture
def loaded(pg_url: str, tmp_path: Path) -> str:
    """`pg_url` with 10 orders loaded."""
    with opened(pg_url, tmp_path, ORDERS) as held:
        load(held, ORDERS, orders(DAY, 10), DAY, "first")
    return pg_url


def test_a_column_added_to_the_declaration_is_added_to_the_table(
        loaded: str, tmp_path: Path) -> None:
    grown = declared(Column("channel", "string", nullable=True),
                     Column("discount", "decimal", precision=5, scale=2, default="0.50"))
    logs = migrated(loaded, grown)
    assert [e for e in logs if e["event"].startswith("table_")] == [{
        "event": "table_columns_added", "log_level": "info", "feed": "orders",
        "table": "fact_orders", "columns": ["channel", "discount"]}]
    assert not [e for e in logs if e["event"] == "schema_migrated"]
    assert rows(loaded, TYPES)[-2:] == [("channel", "text"), ("discount", "numeric(5,2)")]
    # The rows already there hold null, or the default.
    assert rows(loaded, "SELECT DISTINCT channel, discount FROM fact_orders") == [
        (None, Decimal("0.50"))]
    assert not [e for e in migrated(loaded, grown) if e["event"] == "table_columns_added"]

    # A file with the new columns, and one from before them (the reader fills them in).
    with opened(loaded, tmp_path, grown) as held:
        table = orders(DAY, 12)
        newer = table.append_column("channel", pa.array(["web"] * 12)).append_column(
            "discount", pa.array([Decimal("1.25")] * 12, pa.decimal128(5, 2)))
        assert load(held, grown, newer, DAY, "newer") == MergeCounts(12, 2, 10, 0, 0)
        older = table.append_column("channel", pa.nulls(12, pa.string())).append_column(
            "discount", pa.array([Decimal("0.50")] * 12, pa.decimal128(5, 2)))
        assert load(held, grown, older, DAY, "older") == MergeCounts(12, 0, 12, 0, 0)
    assert one(loaded, "SELECT count(*) FROM fact_orders WHERE discount = 0.50") == 12


@pytest.mark.parametrize(("contract", "named"), [
    (declared(Column("qty", "float")), "qty is bigint, declared double precision"),
    (declared(Column("price", "decimal", precision=14, scale=2)),
     "price is numeric(12,2), declared numeric(14,2)"),
    (declared(without=("paid",)), "has the columns ['paid'], which the feed no longer"),
    (declared(without=("sku",)), "has the columns ['sku'], which the feed no longer"),
    (declared(Column("region", "string")), "lacks the columns ['region']"),
    (dataclasses.replace(ORDERS, key=("order_id",)),
     "is keyed on ['order_date', 'order_id'], the feed on ['order_id']"),
], ids=["retyped", "decimal-widened", "removed", "removed-nullable", "added-not-null",
        "rekeyed"])
def test_a_change_that_would_lose_or_recast_data_is_refused(
        loaded: str, contract: Contract, named: str) -> None:
    before = rows(loaded, TYPES), rows(loaded, "SELECT * FROM fact_orders ORDER BY 2")
    with pytest.raises(SchemaMismatch) as refused:
        migrated(loaded, contract)
    assert named in refused.value.message
    assert "feed orders: table fact_orders holds rows" in refused.value.message
    assert refused.value.hint is not None
    assert "ALTER TABLE fact_orders RENAME TO" in refused.value.hint
    assert "empty it" in refused.value.hint
    with connect(PostgresUrl(loaded), 2.0) as conn, pytest.raises(SchemaMismatch,
                                                                  match="holds rows"):
        schema.require_current(conn, (contract,))
    assert (rows(loaded, TYPES), rows(loaded, "SELECT * FROM fact_orders ORDER BY 2")) == before


def test_an_empty_table_is_made_again_as_declared(loaded: str) -> None:
    with psycopg.connect(loaded, autocommit=True) as conn:
        conn.execute("TRUNCATE fact_orders")
    retyped = declared(Column("qty", "float"), without=("paid",))
    logs = migrated(loaded, retyped)
    [again] = [e for e in logs if e["event"] == "table_recreated"]
    assert (again["feed"], again["table"]) == ("orders", "fact_orders")
    assert again["reason"] == "empty, and unlike its declaration"
    types = dict(rows(loaded, TYPES))
    assert types["qty"] == "double precision" and "paid" not in types
    assert migrated(loaded, retyped) == []


def test_a_new_feeds_table_is_made_and_said_so_once(pg_url: str) -> None:
    made = [e for e in migrated(pg_url, ORDERS) if e["event"].startswith("table_")]
    assert made == [{"event": "table_created", "log_level": "info", "feed": "orders",
                     "table": "fact_orders"}]
    assert migrated(pg_url, ORDERS) == []
