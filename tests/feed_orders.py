"""A declared feed for the tests, as a `Contract` value: every kind, nullable columns and a
composite key led by the date (what `[feeds.orders]` in a config declares)."""

from __future__ import annotations

from dataclasses import replace

from filedrop_etl.config.contract import Check, Column, Contract
from filedrop_etl.config.file_names import name_pattern

RUN_DATE = "2026-02-10"

# The orders of the README's example: every kind, nullable columns, a default. The other
# test modules' orders feeds are made of these too.
ORDER_COLUMNS = (
    Column("order_date", "date"),
    Column("order_id", "integer"),
    Column("sku", "string", nullable=True),
    Column("qty", "integer"),
    Column("price", "decimal", precision=12, scale=2),
    Column("paid", "boolean"),
    Column("placed_at", "timestamp"),
    Column("note", "string", nullable=True, default=""),
)
COLUMNS = (*ORDER_COLUMNS[:-1], Column("weight", "float", nullable=True), ORDER_COLUMNS[-1])

ORDERS = Contract(
    name="orders",
    columns=COLUMNS,
    key=("order_date", "order_id"),
    date_column="order_date",
    checks=(
        *(Check("not_null", c.name) for c in COLUMNS if not c.nullable),
        Check("unique", "order_date", over=("order_date", "order_id")),
        Check("equals_file_date", "order_date"),
        Check("min", "qty", 0),
    ),
    fact_table="fact_orders",
    staging_table="staging_orders",
    file_name_pattern=name_pattern("orders_{date}.parquet"),
    file_name_template="orders_{date}.parquet",
)


def orders_toml(write_mode: str | None = None) -> str:
    """An orders feed as a config file declares it (the README's, all but its note):
    a composite key led by the date, every kind, a nullable column, two checks."""
    mode = "" if write_mode is None else f'write_mode = "{write_mode}"\n'
    return f"""
[feeds.orders]
pattern = "orders_{{date}}.parquet"
key = ["order_date", "order_id"]
date_column = "order_date"
{mode}
[feeds.orders.columns]
order_date = "date"
order_id = "integer"
sku = {{ kind = "string", nullable = true }}
qty = "integer"
price = {{ kind = "decimal", precision = 12, scale = 2 }}
paid = "boolean"
placed_at = "timestamp"

[[feeds.orders.checks]]
rule = "min"
column = "qty"
value = 0

[[feeds.orders.checks]]
rule = "equals_file_date"
column = "order_date"
"""


def orders(**changes: object) -> Contract:
    """`ORDERS` with some fields changed (`checks=...`, `undeclared_columns=...`)."""
    return replace(ORDERS, **changes)  # type: ignore[arg-type]  # fields by keyword
