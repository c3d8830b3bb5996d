"""The feeds the benchmark loads besides transactions, as `Contract` values.

Two declared feeds of the same columns (the README's orders: a date, an integer id, text,
an integer, a decimal, a boolean, a timestamp, a nullable text), differing in their key:
- `orders`: key (order_date, order_id), the date leading and held to the file's date, so
  that a date's rows are the key's leading range (`Contract.date_leads_key`: no date index);
- `order_lines`: key (order_id, line), which does not carry the date (the general path:
  the fact has a date index). The generator numbers each day's orders after its date, so
  each day's file adds rows, as a transactions day does.
`named` finds any of them, and the built-in transactions, by name (the floor's argv).
"""

from __future__ import annotations

from filedrop_etl.config.contract import TRANSACTIONS, Check, Column, Contract, Totals
from filedrop_etl.config.file_names import name_pattern

_ORDER_COLUMNS = (
    Column("order_date", "date"),
    Column("order_id", "integer"),
    Column("sku", "string"),
    Column("qty", "integer"),
    Column("price", "decimal", precision=12, scale=2),
    Column("paid", "boolean"),
    Column("placed_at", "timestamp"),
    Column("note", "string", nullable=True),
)


def _feed(name: str, columns: tuple[Column, ...], key: tuple[str, ...]) -> Contract:
    template = f"{name}_{{date}}.parquet"
    return Contract(
        name=name, columns=columns, key=key, date_column="order_date",
        checks=(
            *(Check("not_null", c.name) for c in columns if not c.nullable),
            Check("unique", key[0], over=key),
            Check("min", "qty", 1),
            Check("max", "qty", 50),
            Check("min", "price", 0),
            Check("equals_file_date", "order_date"),
        ),
        fact_table=f"fact_{name}", staging_table=f"staging_{name}",
        file_name_pattern=name_pattern(template), file_name_template=template,
        totals=Totals(sums=(("revenue", "price"),), distinct=(("skus", "sku"),)),
    )


ORDERS = _feed("orders", _ORDER_COLUMNS, ("order_date", "order_id"))
ORDER_LINES = _feed("order_lines", (*_ORDER_COLUMNS, Column("line", "integer")),
                    ("order_id", "line"))
FEEDS: dict[str, Contract] = {f.name: f for f in (TRANSACTIONS, ORDERS, ORDER_LINES)}


def named(name: str) -> Contract:
    """The benchmark's feed called `name`; `KeyError` naming the known ones."""
    if name not in FEEDS:
        raise KeyError(f"no benchmark feed {name!r}: {', '.join(FEEDS)}")
    return FEEDS[name]
