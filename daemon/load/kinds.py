"""What each column kind accepts from a producer's file, and how it becomes the kind's type.

Producers use many Parquet writers, so a kind takes every physical type that holds its
values without guessing (any dictionary encoding too), and each array is cast to the
kind's Arrow type (`Column.arrow_type`) here:

- string: string, large string, string view (valid UTF-8).
- integer: any integer width, signed or unsigned (a value past int64 fails the file).
- float: any float width, integers, decimals (through their text: a direct cast can land
  one ulp off).
- decimal: decimals of any width, integers, and text of a decimal (`"12.50"`); a value
  with more digits than the declared precision or scale fails the file, naming the
  column, the row's key and the value (`DecimalOverflow`). Floats are refused: a binary
  float is not the decimal its producer meant (0.1 is not 1/10).
- boolean: booleans only; text and integers are refused, as their conventions vary.
- date: `YYYY-MM-DD` text (as before) and Parquet DATE. A timestamp is refused even at
  midnight: its date depends on a time zone the file does not state; write a date.
  Text that is not a calendar date fails the file (`BadDate`), unless the feed holds the
  column to the file's date (`equals_file_date`), whose samples then name those rows.
- timestamp: any unit; a zoned timestamp is converted to UTC, a naive one is taken as
  UTC; digits finer than a microsecond are dropped (floored); a Parquet DATE is midnight
  UTC.

Also the value a declared column a file lacks is filled with (`filler`) and a declared
value (a bound, a default, a member of a set) in a column's type (`scalar_of`). Reads no
file and knows no database.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.contract import TIMESTAMP_TYPE, Column, ColumnKind, Scalar
from filedrop_etl.daemon.errors import BadInput, ContractError, value_text

# A row of the batch being cast, by its index there: `KEY (row N)` for the messages.
Where = Callable[[int], str]


def is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t))


def _is_date(t: pa.DataType) -> bool:
    return bool(pa.types.is_date32(t) or pa.types.is_date64(t))


# Per kind: how the column diff names what it expects, and the types it takes.
ACCEPTS: dict[ColumnKind, tuple[str, Callable[[pa.DataType], bool]]] = {
    "string": ("a string", is_string),
    "integer": ("an integer", pa.types.is_integer),
    "float": ("a number", lambda t: bool(pa.types.is_floating(t) or pa.types.is_decimal(t)
                                         or pa.types.is_integer(t))),
    "decimal": ("a decimal, an integer or decimal text", lambda t: bool(
        pa.types.is_decimal(t) or pa.types.is_integer(t) or is_string(t))),
    "boolean": ("a boolean", pa.types.is_boolean),
    "date": ("a YYYY-MM-DD string or a date", lambda t: bool(is_string(t) or _is_date(t))),
    "timestamp": ("a timestamp or a date", lambda t: bool(pa.types.is_timestamp(t)
                                                          or _is_date(t))),
}


class DecimalOverflow(BadInput):
    """A decimal value with more digits than its column declares, or text that is not a
    decimal number."""


class BadDate(BadInput):
    """Text in a date column that is not a `YYYY-MM-DD` calendar date."""


def conform(array: pa.Array[Any], column: Column, where: Where, *,
            check_dates: bool = True) -> pa.Array[Any]:
    """`array` as `column.arrow_type`; `where` names a row for a value's message, and
    `check_dates` whether date text is proven a calendar date here."""
    if isinstance(array, pa.DictionaryArray):
        array = array.dictionary_decode()
    source = array.type
    match column.kind:
        case "date" if _is_date(source):
            # A Parquet DATE casts to the ISO form the contract stores.
            return array.cast(pa.date32()).cast(pa.string())
        case "date" if check_dates:
            _refuse_bad_dates(array, column, where)
        case "float" if pa.types.is_decimal(source):
            # Through the decimal's text: a direct cast can land one ulp off (894.06
            # becomes 894.0600000000001), and the same value re-sent as a float would then
            # count as a change.
            array = array.cast(pa.string())
        case "decimal":
            return _to_decimal(array, column, where)
        case "timestamp":
            array = _to_utc(array)
    try:
        # safe=True: an out-of-range integer or a fractional value is an error, not a wrap.
        result = array.cast(column.arrow_type, safe=True)
    except pa.ArrowInvalid as exc:
        raise ContractError([f"column {column.name!r} has values that do not fit "
                             f"{column.arrow_type}: {exc}"]) from exc
    if pa.types.is_string(result.type):
        try:
            # Parquet does not guarantee valid UTF-8; Python needs it for every value.
            result.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise BadInput(f"column {column.name!r} holds text that is not valid UTF-8",
                           hint="have the producer write its strings as UTF-8") from exc
    return result


def _to_utc(array: pa.Array[Any]) -> pa.Array[Any]:
    """A timestamp of any unit and zone (naive: UTC), or a date, as UTC, still in its own
    unit but floored to the microsecond."""
    if _is_date(array.type):
        return array.cast(pa.date32()).cast(TIMESTAMP_TYPE)
    unit = array.type.unit
    # Relabelling as UTC keeps a zoned instant and takes a naive one as UTC; flooring in
    # UTC meets no daylight-saving gap.
    array = array.cast(pa.timestamp(unit, tz="UTC"))
    return pc.floor_temporal(array, unit="microsecond") if unit == "ns" else array


def _to_decimal(array: pa.Array[Any], column: Column, where: Where) -> pa.Array[Any]:
    assert column.precision is not None
    precision, scale = column.precision, column.scale or 0
    if is_string(array.type):
        array = array.cast(pa.string())  # the one text type Arrow parses decimals from
    given = array  # the values as sent, for a message
    if pa.types.is_integer(array.type):
        # Arrow casts an integer only to a decimal that holds its type's every value (21
        # digits for an int64 at scale 2); the narrowing to the column's is checked per
        # value below.
        array = array.cast(pa.decimal128(20 + scale, scale) if scale <= 18
                           else pa.decimal256(20 + scale, scale))
    try:
        return array.cast(column.arrow_type, safe=True)
    except pa.ArrowInvalid as exc:
        failure = exc
    for index, value in enumerate(given.to_pylist()):
        if value is None:
            continue
        number = _decimal_of(value)
        shown = repr(value) if isinstance(value, str) else value_text(value)
        if number is None:
            raise DecimalOverflow(
                f"column {column.name!r} holds {shown} at {where(index)}, which is not a "
                f"decimal number",
                hint=f"have the producer write {column.name} as decimal numbers, then drop "
                "the file again")
        if not _fits(number, precision, scale):
            raise DecimalOverflow(
                f"column {column.name!r} holds {shown} at {where(index)}, more digits than "
                f"its decimal({precision}, {scale}) holds ({precision - scale} before the "
                f"point, {scale} after)",
                hint=f"have the producer round {column.name} to {scale} decimal places "
                "within the declared precision, or declare a larger precision or scale, "
                "then drop the file again")
    # Not a value's digits after all: what the cast said.
    raise ContractError([f"column {column.name!r} has values that do not fit "
                         f"{column.arrow_type}: {failure}"]) from failure


def _decimal_of(value: object) -> decimal.Decimal | None:
    """A value of a decimal, integer or text array as a finite decimal, or None."""
    try:
        number = decimal.Decimal(value) if isinstance(value, str | int) else value
    except decimal.InvalidOperation:
        return None
    if not isinstance(number, decimal.Decimal) or not number.is_finite():
        return None
    return number


def _fits(number: decimal.Decimal, precision: int, scale: int) -> bool:
    """Whether `number` is exact at `scale` places within `precision` digits."""
    with decimal.localcontext(decimal.Context(prec=max(precision, 1) + 100)):
        try:
            exact = number.quantize(decimal.Decimal(1).scaleb(-scale))
        except decimal.InvalidOperation:
            return False
    return exact == number and len(exact.as_tuple().digits) <= precision


_ISO_DATE = r"\A\d{4}-\d{2}-\d{2}\z"  # RE2: \d is ASCII digits only


def _refuse_bad_dates(array: pa.Array[Any], column: Column, where: Where) -> None:
    """`BadDate` for the first text value that is not a `YYYY-MM-DD` calendar date."""
    texts = array.cast(pa.string())
    # A file holds few distinct dates: each is proven once (parsing every row costs 2 s
    # a million rows).
    distinct = cast("pa.Array[Any]", pc.unique(texts)).drop_null()
    # Arrow's strptime rolls 2026-02-30 over into March: a date is one that reads back
    # as written.
    parsed = pc.strptime(distinct, format="%Y-%m-%d", unit="s", error_is_null=True)
    good = pc.and_kleene(pc.match_substring_regex(distinct, pattern=_ISO_DATE),
                         pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), distinct))
    bad = cast(pa.BooleanArray, pc.invert(good).fill_null(True))
    if not bad.true_count:
        return
    wrong = distinct.filter(bad)
    index = pc.index_in(texts, value_set=wrong)  # where each row's text is among them
    first = pc.index(pc.is_valid(index), True).as_py()
    raise BadDate(f"column {column.name!r} holds {texts[first].as_py()!r} at {where(first)}, "
                  "which is not a YYYY-MM-DD date",
                  hint=f"have the producer write {column.name} as YYYY-MM-DD text or as a "
                  "Parquet DATE, then drop the file again")


def scalar_of(column: Column, value: Scalar) -> pa.Scalar[Any]:
    """A declared value in `column`'s terms: a number for a number's column (a decimal
    exactly, in a type of its own), ISO text of a date, a UTC timestamp of ISO text (naive:
    UTC; a date alone: midnight). `ValueError` when it is none of these."""
    match column.kind:
        case "integer" if isinstance(value, int):
            return pa.scalar(value, pa.int64())
        case "integer" | "float":
            return pa.scalar(float(value), pa.float64())
        case "decimal":
            try:
                return pa.scalar(decimal.Decimal(str(value)))
            except decimal.InvalidOperation as exc:
                raise ValueError(f"{value!r} is not a decimal number") from exc
        case "boolean":
            return pa.scalar(bool(value), pa.bool_())
        case "date":
            return pa.scalar(date.fromisoformat(str(value)).isoformat(), pa.string())
        case "timestamp":
            moment = datetime.fromisoformat(str(value))
            moment = (moment.replace(tzinfo=UTC) if moment.tzinfo is None
                      else moment.astimezone(UTC))
            return pa.scalar(moment, TIMESTAMP_TYPE)
        case _:
            return pa.scalar(str(value), pa.string())


def filler(column: Column, rows: int) -> pa.Array[Any]:
    """The values of a declared column a file lacks: its default, else nulls."""
    # Through `Any`: the stubs type these only for a literal type or scalar.
    arrow: Any = column.arrow_type
    if column.default is None:
        return cast("pa.Array[Any]", pa.nulls(rows, arrow))
    value: Any = scalar_of(column, column.default).cast(arrow)
    return cast("pa.Array[Any]", pa.repeat(value, rows))
