"""How SQLite stores each kind of contract column: its declared type, and its values.

The contract names a kind per column ("string", "decimal", ...) and no backend's type;
this is the one place that says how SQLite stores each kind, for the tables `schema`
creates and checks, and the one place that turns the reader's Arrow values into that
form before `staging` hands them to the driver. SQLite has no date, decimal, boolean or
timestamp type, so each is stored in a form that compares exactly and sorts as the kind
does:

- date: ISO text (`2026-03-01`), declared `TEXT` (as the built-in feed always was);
- decimal: its canonical fixed-scale text (`12.50`, `-0.05`), declared
  `DECIMAL_TEXT(p,s)` (TEXT affinity: never turned into a REAL, so an unchanged value
  compares equal and its row is never rewritten; precision and scale in the declared
  type, so a changed scale is seen at start);
- boolean: the integer 0 or 1, declared `BOOLEAN`;
- timestamp: UTC text of fixed width, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, declared
  `TIMESTAMP_TEXT` (TEXT affinity; sorts and compares as the instants do).

A changed kind is seen by its declared type, except string against date (both TEXT).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.contract import Column, ColumnKind, Contract

_TYPES: dict[ColumnKind, str] = {
    "string": "TEXT",
    "integer": "INTEGER",
    "float": "REAL",
    "date": "TEXT",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP_TEXT",
}
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Arrow's `%S` of a microsecond timestamp carries the fraction: `05.123456`.
_ARROW_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def column_type(column: Column) -> str:
    """The SQLite type a column is declared with."""
    if column.kind == "decimal":
        return f"DECIMAL_TEXT({column.precision},{column.scale or 0})"
    return _TYPES[column.kind]


def decimal_text(value: Decimal | int | float | str, scale: int) -> str:
    """The canonical text of a decimal at `scale`: fixed point, never an exponent."""
    return format(Decimal(str(value)).quantize(Decimal(1).scaleb(-scale)), "f")


def literal(column: Column, value: object) -> str:
    """`value` (a column's declared default) as an SQL literal in the column's form."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if column.kind == "decimal":
        assert isinstance(value, (int, float, str, Decimal))
        value = decimal_text(value, column.scale or 0)
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def arrow_type(column: Column) -> pa.DataType:
    """The Arrow type staging receives the column in: SQLite's own form of the kind."""
    if column.kind in ("decimal", "timestamp"):
        return pa.string()
    if column.kind == "boolean":
        return pa.int64()
    return column.arrow_type


def staging_schema(contract: Contract) -> pa.Schema:
    # Nullable, as the reader's batches are: a null must reach staging to be counted.
    return pa.schema([pa.field(c.name, arrow_type(c)) for c in contract.columns])


def in_sqlite_form(batch: pa.RecordBatch, contract: Contract) -> pa.RecordBatch:
    """`batch` (contract-shaped) with each decimal, boolean and timestamp column in the
    form SQLite stores it; the other columns as they are, uncopied."""
    columns = [_converted(column, batch.column(column.name)) for column in contract.columns]
    return pa.RecordBatch.from_arrays(columns, schema=staging_schema(contract))


def _converted(column: Column, values: pa.Array[Any]) -> pa.Array[Any]:
    match column.kind:
        case "decimal":
            text = pc.cast(values, pa.string())
            # Arrow writes an exponent where the value is tiny for its scale (`1E-10`).
            if pc.any(pc.match_substring(text, "E")).as_py():
                scale = column.scale or 0
                text = pa.array([None if v is None else decimal_text(v, scale)
                                 for v in values.to_pylist()], pa.string())
            return text
        case "timestamp":
            return pc.strftime(values, format=_ARROW_TIMESTAMP_FORMAT)
        case "boolean":
            return pc.cast(values, pa.int64())
        case _:
            return values
