"""A feed's declaration changed between two starts, on a real PostgreSQL server.

A column added to the declaration is added to the table, nullable or with its default
(which fills the rows already there), logged `table_columns_added`; files with and
without it load. A column retyped, a NOT NULL column no longer declared, or an added
column that may not be absent is refused while the table holds rows, naming the column
and what to do, and nothing changes; a nullable column no longer declared is left with
a warning; an empty table is made again as declared (`table_recreated`).
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
    assert [e for e in logs if e["event"] == "table_columns_added"] == [{
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
    (declared(Column("qty", "float")), "qty is bigint where the declaration says double"),
    (declared(Column("price", "decimal", precision=14, scale=2)),
     "price is numeric(12,2) where the declaration says numeric(14,2)"),
    (declared(without=("paid",)), "paid (NOT NULL) is no longer declared"),
    (declared(Column("region", "string")),
     "the added column region is neither nullable nor has a default"),
], ids=["retyped", "decimal-widened", "removed", "added-not-null"])
def test_a_change_that_would_lose_or_recast_data_is_refused(
        loaded: str, contract: Contract, named: str) -> None:
    before = rows(loaded, TYPES), rows(loaded, "SELECT * FROM fact_orders ORDER BY 2")
    with pytest.raises(SchemaMismatch) as refused:
        migrated(loaded, contract)
    assert named in refused.value.message
    assert "table fact_orders holds rows" in refused.value.message
    assert refused.value.hint is not None
    assert "RENAME TO" in refused.value.hint and "TRUNCATE" in refused.value.hint
    with connect(PostgresUrl(loaded), 2.0) as conn, pytest.raises(SchemaMismatch,
                                                                  match="holds rows"):
        schema.require_current(conn, (contract,))
    assert (rows(loaded, TYPES), rows(loaded, "SELECT * FROM fact_orders ORDER BY 2")) == before


def test_a_nullable_column_no_longer_declared_stays_with_a_warning(
        loaded: str, tmp_path: Path) -> None:
    shrunk = declared(without=("sku",))
    logs = migrated(loaded, shrunk)
    [extra] = [e for e in logs if e["event"] == "table_columns_extra"]
    assert (extra["table"], extra["columns"]) == ("fact_orders", ["sku"])
    with opened(loaded, tmp_path, shrunk) as held:
        table = orders("2026-03-02", 3).drop_columns(["sku"])
        assert load(held, shrunk, table, "2026-03-02", "no-sku") == MergeCounts(3, 3, 0, 0, 0)
    assert rows(loaded, "SELECT DISTINCT sku FROM fact_orders WHERE order_date = %s",
                ("2026-03-02",)) == [(None,)]


def test_an_empty_table_is_made_again_as_declared(loaded: str) -> None:
    with psycopg.connect(loaded, autocommit=True) as conn:
        conn.execute("TRUNCATE fact_orders")
    retyped = declared(Column("qty", "float"), without=("paid",))
    logs = migrated(loaded, retyped)
    [again] = [e for e in logs if e["event"] == "table_recreated"]
    assert (again["feed"], again["table"]) == ("orders", "fact_orders")
    assert "qty is bigint" in again["reason"]
    types = dict(rows(loaded, TYPES))
    assert types["qty"] == "double precision" and "paid" not in types
    assert migrated(loaded, retyped) == []
