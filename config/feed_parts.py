"""A declared feed's parts: its columns and its totals, read from TOML, and its problems.

Owns what each column may say (its kind, null, a decimal's precision and scale, a
default), how a value of a column's kind is written (`scalar`), and what a feed totals;
every problem goes into one `Problems` list (the checks', `config.feed_checks`, too), so
that `config.feeds` reports them all at once, each where it is and with what to write
instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from filedrop_etl.config.contract import (
    COLUMN_KINDS,
    Column,
    Scalar,
    Totals,
)

COLUMN_KEYS = ("kind", "nullable", "precision", "scale", "default")
# The fact table's own columns, which the daemon writes beside a feed's.
OWN_COLUMNS = frozenset({"loaded_at", "load_id"})
MAX_PRECISION = 38  # Arrow's decimal128, and far beyond what money needs


class Problems:
    """Every problem of a declaration: where (`feeds.orders.key`), what, what to write."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str, str]] = []

    def add(self, where: str, what: str, instead: str) -> None:
        self.found.append((where, what, instead))

    def __len__(self) -> int:
        return len(self.found)

    def as_data(self) -> tuple[dict[str, str], ...]:
        return tuple({"where": where, "problem": what, "instead": instead}
                     for where, what, instead in self.found)

    def text(self) -> str:
        return "\n".join(f"  {where}: {what}; {instead}" for where, what, instead in self.found)


def listed(items: tuple[str, ...] | list[str]) -> str:
    return ", ".join(items)


def read_columns(at: str, value: object, problems: Problems) -> tuple[Column, ...] | None:
    """The `[feeds.NAME.columns]` table: each column's name and kind (`qty = "integer"`)
    or table (`price = { kind = "decimal", precision = 12, scale = 2 }`). A column with a
    problem is left out (after saying why), so the rest can still be checked; None
    without any column."""
    if not isinstance(value, Mapping) or not value:
        problems.add(f"{at}.columns", "is missing" if value is None else "is not a table "
                     "of columns", f"declare each column and its kind under [{at}.columns]: "
                     "order_id = \"integer\"")
        return None
    columns, seen = [], set()
    for name, spec in value.items():
        where = f"{at}.columns.{name}"
        if name.lower() in seen:
            problems.add(where, "is declared twice (column names are compared in any "
                         "case, as SQLite does)", "declare each column once")
            continue
        seen.add(name.lower())
        if not name or name.lower() in OWN_COLUMNS or len(name.encode()) > 63:
            problems.add(where, f"{name!r} can not name a column (empty, longer than 63 "
                         "bytes, or one the daemon writes itself: loaded_at, load_id)",
                         "rename the column")
            continue
        column = _column(where, name, spec, problems)
        if column is not None:
            columns.append(column)
    return tuple(columns)


def _column(where: str, name: str, spec: object, problems: Problems) -> Column | None:
    table = {"kind": spec} if isinstance(spec, str) else spec
    if not isinstance(table, Mapping):
        problems.add(where, f"is {spec!r}", f"write {name} = \"integer\" (a kind), or a "
                     f"table: {name} = {{ kind = \"string\", nullable = true }}")
        return None
    for key in table:
        if key not in COLUMN_KEYS:
            problems.add(f"{where}.{key}", "is not a key of a column",
                         f"a column's keys are {listed(COLUMN_KEYS)}")
    kind = table.get("kind")
    if kind not in COLUMN_KINDS:
        problems.add(where, "has no kind" if kind is None else f"has the kind {kind!r}",
                     f"write one of {listed(COLUMN_KINDS)}")
        return None
    nullable = table.get("nullable", False)
    if not isinstance(nullable, bool):
        problems.add(f"{where}.nullable", f"is {nullable!r}", "write true or false")
        nullable = False
    precision, scale = table.get("precision"), table.get("scale")
    if kind == "decimal":
        if not isinstance(precision, int) or isinstance(precision, bool) \
                or not 1 <= precision <= MAX_PRECISION:
            problems.add(f"{where}.precision", "is missing" if precision is None else
                         f"is {precision!r}", f"a decimal needs its precision, the digits "
                         f"it holds in all (1 to {MAX_PRECISION}): "
                         f"{name} = {{ kind = \"decimal\", precision = 12, scale = 2 }}")
            return None
        scale = 0 if scale is None else scale
        if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= precision:
            problems.add(f"{where}.scale", f"is {scale!r}", f"write the digits after the "
                         f"point, from 0 to the precision ({precision})")
            return None
    elif precision is not None or scale is not None:
        problems.add(where, f"is a {kind} column with a precision or scale",
                     "only a decimal column has them: drop them, or write kind = \"decimal\"")
    column = Column(name, kind, nullable, precision if kind == "decimal" else None,
                    scale if kind == "decimal" else None)
    if "default" in table:
        default = scalar(f"{where}.default", table["default"], column, problems)
        if default is None:
            return None
        column = Column(name, kind, nullable, column.precision, column.scale, default)
    return column


def scalar(where: str, value: object, column: Column, problems: Problems) -> Scalar | None:
    """`value` as a value of `column`'s kind (a date or a timestamp as ISO text, a decimal
    as its exact text), or None after saying why it is not one."""
    kind = column.kind
    try:
        if isinstance(value, bool) != (kind == "boolean"):
            raise ValueError
        if kind == "boolean" or (kind == "string" and isinstance(value, str)):
            return value  # type: ignore[return-value]
        if kind == "integer" and isinstance(value, int):
            return value
        if kind == "float" and isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        if kind == "decimal" and isinstance(value, int | float | str):
            exact = Decimal(str(value))
            digits = exact.as_tuple()
            scale = column.scale or 0
            if not exact.is_finite() or (isinstance(digits.exponent, int) \
                    and -digits.exponent > scale) \
                    or exact.adjusted() + 1 > (column.precision or 0) - scale:
                raise ValueError
            return str(exact.quantize(Decimal(1).scaleb(-scale)))
        if kind == "date" and isinstance(value, date | str) and not isinstance(value, datetime):
            return date.fromisoformat(str(value)).isoformat()
        if kind == "timestamp" and isinstance(value, datetime | str):
            return datetime.fromisoformat(str(value)).isoformat()
    except (ValueError, InvalidOperation):
        pass
    shown = _described(column)
    article = "an" if shown[0] in "aeiou" else "a"
    problems.add(where, f"{value!r} is not {article} {shown} value",
                 f"write {example(column)}")
    return None


def _described(column: Column) -> str:
    return (f"decimal({column.precision}, {column.scale})" if column.kind == "decimal"
            else column.kind)


def example(column: Column) -> str:
    return {"string": '"text"', "integer": "0", "float": "0.0", "boolean": "true or false",
            "date": '"2026-01-31" (ISO)', "timestamp": '"2026-01-31T12:00:00+00:00" (ISO)',
            "decimal": "a number with at most the declared digits, such as \"12.50\""
            }[column.kind]


def read_totals(at: str, value: object, columns: tuple[Column, ...],
                problems: Problems) -> Totals:
    """`[feeds.NAME.totals]`: what `report` and `show` total; by default the sum of each
    float and decimal column."""
    if value is None:
        return Totals(sums=tuple((c.name, c.name) for c in columns
                                 if c.kind in ("float", "decimal")))
    if not isinstance(value, Mapping):
        problems.add(f"{at}.totals", "is not a table", "write sum = { label = \"column\" }")
        return Totals()
    names = {c.name: c for c in columns}
    figures: dict[str, tuple[tuple[str, str], ...]] = {}
    for part, kinds in (("sum", ("integer", "float", "decimal")), ("distinct", None)):
        table = value.get(part, {})
        if not isinstance(table, Mapping):
            problems.add(f"{at}.totals.{part}", "is not a table",
                         f"write {part} = {{ label = \"column\" }}")
            table = {}
        for label, column in table.items():
            if column not in names or (kinds and names[column].kind not in kinds):
                problems.add(f"{at}.totals.{part}.{label}", f"{column!r} is not a "
                             + ("numeric " if kinds else "") + "column of the feed",
                             "name one of "
                             + listed(tuple(n for n, c in names.items()
                                            if not kinds or c.kind in kinds)))
        figures[part] = tuple((str(k), str(v)) for k, v in table.items())
    group_by = value.get("group_by")
    if group_by is not None and group_by not in names:
        problems.add(f"{at}.totals.group_by", f"{group_by!r} is not a column of the feed",
                     f"name one of {listed(tuple(names))}")
        group_by = None
    for key in value:
        if key not in ("sum", "distinct", "group_by"):
            problems.add(f"{at}.totals.{key}", "is not a key of totals",
                         "a feed's totals take sum, distinct and group_by")
    return Totals(sums=figures["sum"], distinct=figures["distinct"],
                  group_by=None if group_by is None else str(group_by))
