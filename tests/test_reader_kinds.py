"""The reader on a declared feed (`tests.feed_orders`): every kind as the producers' many
Parquet writers send it, absent and undeclared columns, and values that do not fit."""

from __future__ import annotations

import decimal
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filedrop_etl.config import contract
from filedrop_etl.config.contract import TIMESTAMP_TYPE, Contract, Scalar
from filedrop_etl.daemon import files
from filedrop_etl.daemon.errors import BadInput, ContractError
from filedrop_etl.daemon.load import kinds, reader
from tests.feed_orders import ORDERS, RUN_DATE, orders

D = decimal.Decimal
DAY = date(2026, 2, 10)
PLACED = [datetime(2026, 2, 10, 8, 30, tzinfo=UTC), datetime(2026, 2, 10, 12, 0, 1, tzinfo=UTC),
          datetime(2026, 2, 10, 23, 59, 59, tzinfo=UTC)]
# What the reader yields for the base file, column by column.
EXPECTED: dict[str, list[Any]] = {
    "order_date": [RUN_DATE] * 3,
    "order_id": [1, 2, 3],
    "sku": ["A-1", None, "C-3"],
    "qty": [5, 0, 12],
    "price": [D("12.50"), D("0.99"), D("1000.00")],
    "paid": [True, False, True],
    "placed_at": PLACED,
    "weight": [1.5, None, 0.25],
    "note": ["", "gift", None],
}

Columns: TypeAlias = "dict[str, pa.Array[Any]]"


def base() -> Columns:
    return {name: pa.array(values, ORDERS.column(name).arrow_type)
            for name, values in EXPECTED.items()}


def write(path: Path, table: pa.Table, **options: Any) -> Path:
    pq.write_table(table, path, **options)
    return path


def read(path: Path, feed: Contract = ORDERS) -> tuple[reader.ParquetSource, pa.Table]:
    with files.open_no_follow(path) as handle:
        source = reader.open_parquet(handle, feed)
        table = pa.Table.from_batches(list(source.batches()))
    assert table.schema.names == list(feed.column_names)
    assert table.schema.types == feed.arrow_schema.types
    return source, table


def stamps(unit: Literal["s", "ms", "us", "ns"], tz: str | None) -> pa.Array[Any]:
    """`PLACED` as a producer's timestamps: in `unit`, zoned `tz` or naive UTC wall time."""
    utc = pa.array(PLACED, pa.timestamp(unit, tz="UTC"))
    return utc.cast(pa.timestamp(unit, tz=tz)) if tz else pa.array(
        [p.replace(tzinfo=None) for p in PLACED], pa.timestamp(unit))


# Each case: the columns a producer wrote instead of the base ones, and the values the
# reader must yield where they differ from `EXPECTED`.
VARIANTS: list[Any] = [
    pytest.param({}, {}, id="the-contract's-types"),
    *(pytest.param({"order_id": pa.array([1, 2, 3], t), "qty": pa.array([5, 0, 12], t)}, {},
                   id=f"integers-{t}")
      for t in (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16(), pa.uint32(),
                pa.uint64())),
    pytest.param({"order_id": pa.array([1, 2, 3]).dictionary_encode()}, {},
                 id="integer-dictionary"),
    *(pytest.param({"weight": pa.array([1.5, None, 0.25], t)}, {}, id=f"float-{t}")
      for t in (pa.float16(), pa.float32())),
    pytest.param({"weight": pa.array([1, None, 0], pa.int32())}, {"weight": [1.0, None, 0.0]},
                 id="float-from-int32"),
    pytest.param({"weight": pa.array([D("1.50"), None, D("0.25")], pa.decimal128(6, 2))}, {},
                 id="float-from-decimal"),
    *(pytest.param({"price": pa.array(EXPECTED["price"], t)}, {}, id=f"decimal-{t}")
      for t in (pa.decimal32(7, 2), pa.decimal64(12, 2), pa.decimal128(10, 2),
                pa.decimal128(38, 2), pa.decimal256(40, 2))),
    pytest.param({"price": pa.array([D("12.5000"), D("0.9900"), D("1000")],
                                    pa.decimal128(20, 4))}, {}, id="decimal-wider-scale-exact"),
    pytest.param({"price": pa.array([D("12.5"), D("1.0"), D("999.9")], pa.decimal128(4, 1))},
                 {"price": [D("12.50"), D("1.00"), D("999.90")]}, id="decimal-narrower-scale"),
    *(pytest.param({"price": pa.array([12, 0, 1000], t)},
                   {"price": [D("12.00"), D("0.00"), D("1000.00")]}, id=f"decimal-from-{t}")
      for t in (pa.int16(), pa.int64(), pa.uint64())),
    pytest.param({"price": pa.array(["12.50", "0.99", "1000"])}, {}, id="decimal-from-text"),
    pytest.param({"price": pa.array(["12.5", "0.99", "1e3"], pa.large_string())}, {},
                 id="decimal-from-large-text"),
    pytest.param({"price": pa.array(["12.50", "0.99", "1000.00"]).dictionary_encode()}, {},
                 id="decimal-from-dictionary-text"),
    pytest.param({"paid": pa.array([True, False, True]).dictionary_encode()}, {},
                 id="boolean-dictionary"),
    pytest.param({"order_date": pa.array([DAY] * 3, pa.date32())}, {}, id="date-date32"),
    pytest.param({"order_date": pa.array([DAY] * 3, pa.date64())}, {}, id="date-date64"),
    pytest.param({"order_date": pa.array([RUN_DATE] * 3, pa.large_string())}, {},
                 id="date-large-text"),
    pytest.param({"order_date": pa.array([RUN_DATE] * 3).dictionary_encode()}, {},
                 id="date-dictionary"),
    *(pytest.param({"placed_at": stamps(unit, tz)}, {}, id=f"timestamp-{unit}-{tz or 'naive'}")
      for unit in ("s", "ms", "us", "ns") for tz in (None, "UTC", "Europe/Paris", "+05:30")),
    pytest.param({"placed_at": pa.array([DAY] * 3, pa.date32())},
                 {"placed_at": [datetime(2026, 2, 10, tzinfo=UTC)] * 3},
                 id="timestamp-from-date32"),
    pytest.param({"sku": pa.array(EXPECTED["sku"], pa.large_string())}, {},
                 id="string-large"),
    pytest.param({"sku": pa.array(EXPECTED["sku"], pa.string_view())}, {}, id="string-view"),
    pytest.param({"sku": pa.array(EXPECTED["sku"]).dictionary_encode(),
                  "note": pa.array(EXPECTED["note"], pa.large_string()).dictionary_encode()},
                 {}, id="string-dictionary"),
]


@pytest.mark.parametrize(("columns", "expected"), VARIANTS)
@pytest.mark.parametrize("options", [
    pytest.param({}, id="default"),
    pytest.param({"version": "1.0", "use_dictionary": False}, id="version-1.0"),
    pytest.param({"store_schema": False, "row_group_size": 1}, id="no-arrow-schema"),
])
def test_each_producer_variant_reads_as_the_feed(
        tmp_path: Path, columns: Columns, expected: dict[str, list[Any]],
        options: dict[str, Any]) -> None:
    table = pa.table({**base(), **columns})
    source, read_back = read(write(tmp_path / "orders.parquet", table, **options))
    assert (source.rows, source.extra_columns, source.filled_columns) == (3, (), ())
    assert read_back.to_pydict() == {**EXPECTED, **expected}


def test_a_pandas_file_with_an_index_reads_as_the_feed(tmp_path: Path) -> None:
    """pandas is the most common producer: its own dtypes, categoricals, nanosecond
    timestamps in a zone, Python decimals as objects, and a named index."""
    frame = pd.DataFrame({
        "order_date": pd.to_datetime([RUN_DATE] * 3).date,
        "order_id": pd.array([1, 2, 3], dtype="int32"),
        "sku": pd.array(EXPECTED["sku"], dtype="string"),
        "qty": pd.array([5, 0, 12], dtype="uint8"),
        "price": EXPECTED["price"],
        "paid": [True, False, True],
        "placed_at": pd.to_datetime(PLACED).tz_convert("America/New_York"),
        "weight": pd.array([1.5, None, 0.25], dtype="Float32"),
        "note": pd.Categorical(EXPECTED["note"]),
    }, index=pd.Index(["l0", "l1", "l2"], name="line"))
    frame.to_parquet(tmp_path / "orders.parquet")
    source, table = read(tmp_path / "orders.parquet", orders(undeclared_columns="fail"))
    # The index is pandas' packaging: reported, never an undeclared column that fails.
    assert source.extra_columns == ("line",)
    assert table.to_pydict() == EXPECTED


@pytest.mark.parametrize(("column", "values", "found"), [
    pytest.param("order_date", pa.array([datetime(2026, 2, 10)] * 3, pa.timestamp("ms")),
                 "timestamp[ms]", id="date-from-timestamp"),
    pytest.param("paid", pa.array(["true", "false", "true"]), "string", id="boolean-text"),
    pytest.param("paid", pa.array([1, 0, 1], pa.int8()), "int8", id="boolean-int"),
    pytest.param("price", pa.array([12.5, 0.99, 1000.0]), "double", id="decimal-float"),
    pytest.param("placed_at", pa.array(["2026-02-10T08:30:00Z"] * 3), "string",
                 id="timestamp-text"),
    pytest.param("qty", pa.array([5.0, 0.0, 12.0]), "double", id="integer-float"),
    pytest.param("sku", pa.array([1, 2, 3]), "int64", id="string-int"),
])
def test_a_type_that_does_not_hold_the_kind_is_refused_by_name(
        tmp_path: Path, column: str, values: pa.Array[Any], found: str) -> None:
    path = write(tmp_path / "orders.parquet", pa.table({**base(), column: values}))
    with pytest.raises(ContractError) as refused:
        read(path)
    expected = kinds.ACCEPTS[ORDERS.column(column).kind][0]
    assert refused.value.problems == [f"column {column!r} is {found}, expected {expected}"]


def test_timestamps_finer_than_a_microsecond_are_floored(tmp_path: Path) -> None:
    nanos = pa.array([1_770_712_200_123_456_789, -1, 0], pa.timestamp("ns"))
    path = write(tmp_path / "orders.parquet", pa.table({**base(), "placed_at": nanos}),
                 version="2.6")
    _, table = read(path)
    assert table.column("placed_at").type == TIMESTAMP_TYPE
    assert table.column("placed_at").to_pylist() == [
        datetime(2026, 2, 10, 8, 30, 0, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC)]


def test_a_zoned_timestamp_is_the_same_instant_in_utc(tmp_path: Path) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    local = [datetime(2026, 2, 10, 14, 0, tzinfo=india)] * 3
    path = write(tmp_path / "orders.parquet", pa.table(
        {**base(), "placed_at": pa.array(local, pa.timestamp("ms", tz="+05:30"))}))
    _, table = read(path)
    assert table.column("placed_at").to_pylist() == [
        datetime(2026, 2, 10, 8, 30, tzinfo=UTC)] * 3


# --- decimals with more digits than declared ----------------------------------------------


@pytest.mark.parametrize(("values", "shown"), [
    pytest.param(pa.array([D("1.000"), D("12.345"), D("2.000")], pa.decimal128(12, 3)),
                 "12.345", id="a-third-decimal-place"),
    pytest.param(pa.array([D("1"), D("12345678901.00"), D("2")], pa.decimal128(20, 2)),
                 "12345678901.00", id="eleven-digits-before-the-point"),
    pytest.param(pa.array([1, 10**10, 2], pa.int64()), "10000000000", id="a-large-integer"),
    pytest.param(pa.array([2**64 - 1, 10**10, 2], pa.uint64()), "18446744073709551615",
                 id="the-first-of-two"),
    pytest.param(pa.array(["1", "12.345", "2"]), "'12.345'", id="text"),
])
def test_a_decimal_with_more_digits_than_declared_fails_the_file(
        tmp_path: Path, values: pa.Array[Any], shown: str) -> None:
    path = write(tmp_path / "orders.parquet", pa.table({**base(), "price": values}))
    with pytest.raises(kinds.DecimalOverflow) as refused:
        read(path)
    row = 0 if values.type == pa.uint64() else 1
    assert refused.value.message == (
        f"column 'price' holds {shown} at 2026-02-10, {row + 1} (row {row}), more digits "
        "than its decimal(12, 2) holds (10 before the point, 2 after)")
    assert isinstance(refused.value, BadInput) and refused.value.stage == "read"
    assert "price" in refused.value.hint


def test_text_that_is_no_decimal_fails_the_file(tmp_path: Path) -> None:
    prices = pa.array(["1.00", "2.00", "twelve"])
    path = write(tmp_path / "orders.parquet", pa.table({**base(), "price": prices}))
    with pytest.raises(kinds.DecimalOverflow) as refused:
        read(path)
    assert refused.value.message == ("column 'price' holds 'twelve' at 2026-02-10, 3 (row 2), "
                                     "which is not a decimal number")


def test_the_row_named_counts_from_the_start_of_the_file(tmp_path: Path) -> None:
    """Batches stream a row group at a time: the row of a later batch counts the rows of
    the batches before it."""
    prices = pa.array([D("1.00"), D("2.00"), D("3.001")], pa.decimal128(10, 3))
    path = write(tmp_path / "orders.parquet", pa.table({**base(), "price": prices}),
                 row_group_size=1)
    with pytest.raises(kinds.DecimalOverflow, match=r"at 2026-02-10, 3 \(row 2\)"):
        read(path)


# --- date text ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2026-02-30", "2026-2-10", "10/02/2026", "", "2026-02-10 "])
def test_date_text_that_is_no_date_fails_the_file(tmp_path: Path, text: str) -> None:
    dates = pa.array([RUN_DATE, text, RUN_DATE])
    feed = orders(checks=())  # no check holds order_date to the file's date
    path = write(tmp_path / "orders.parquet", pa.table({**base(), "order_date": dates}))
    with pytest.raises(kinds.BadDate) as refused:
        read(path, feed)
    assert refused.value.message == (f"column 'order_date' holds {text!r} at {text}, 2 (row 1), "
                                     "which is not a YYYY-MM-DD date")


def test_date_text_held_to_the_file_date_is_left_to_that_check(tmp_path: Path) -> None:
    """The check names every such row with its value; the reader does not stop at the
    first (the built-in feed's messages stay as they were)."""
    dates = pa.array([RUN_DATE, "2026-2-10", RUN_DATE])
    path = write(tmp_path / "orders.parquet", pa.table({**base(), "order_date": dates}))
    _, table = read(path)
    assert table.column("order_date").to_pylist() == [RUN_DATE, "2026-2-10", RUN_DATE]


# --- absent and undeclared columns --------------------------------------------------------


def test_absent_columns_that_may_be_absent_are_filled(tmp_path: Path) -> None:
    """A file written before `sku`, `weight` and `note` were declared still loads: null,
    or the declared default."""
    columns = base()
    for name in ("sku", "weight", "note"):
        del columns[name]
    source, table = read(write(tmp_path / "orders.parquet", pa.table(columns)))
    assert source.filled_columns == ("sku", "weight", "note")
    assert table.column_names == list(ORDERS.column_names)
    assert table.to_pydict() == {**EXPECTED, "sku": [None] * 3, "weight": [None] * 3,
                                 "note": [""] * 3}


def test_a_default_is_filled_in_its_columns_type(tmp_path: Path) -> None:
    defaults: dict[str, Scalar] = {"price": "0.5", "paid": False, "order_id": -1,
                                   "placed_at": "2026-01-01T02:00:00+01:00"}
    feed = orders(columns=tuple(replace(c, default=defaults.get(c.name, c.default))
                                for c in ORDERS.columns))
    columns = base()
    for name in ("price", "paid", "placed_at", "order_id"):
        del columns[name]
    _, table = read(write(tmp_path / "orders.parquet", pa.table(columns)), feed)
    assert table.column("price").to_pylist() == [D("0.50")] * 3
    assert table.column("paid").to_pylist() == [False] * 3
    assert table.column("placed_at").to_pylist() == [datetime(2026, 1, 1, 1, tzinfo=UTC)] * 3
    assert table.column("order_id").to_pylist() == [-1] * 3


def test_a_column_that_may_not_be_absent_is_missing(tmp_path: Path) -> None:
    columns = base()
    del columns["qty"]
    with pytest.raises(ContractError) as refused:
        read(write(tmp_path / "orders.parquet", pa.table(columns)))
    assert refused.value.problems == ["missing column 'qty' (expected an integer)"]


def test_undeclared_columns_fail_where_the_feed_says_so(tmp_path: Path) -> None:
    table = pa.table({"coupon": pa.array(["x", "y", "z"]), **base(),
                      "__index_level_0__": pa.array([7, 8, 9])})
    path = write(tmp_path / "orders.parquet", table)
    _, read_back = read(path)  # ignore: the default
    assert read_back.to_pydict() == EXPECTED
    with pytest.raises(ContractError) as refused:
        read(path, orders(undeclared_columns="fail"))
    # Not written by pandas, so `__index_level_0__` is a column like any other here.
    assert refused.value.problems == [
        f"undeclared column {n!r} (the feed's undeclared_columns is \"fail\": declare it, "
        "or have the producer leave it out)" for n in ("coupon", "__index_level_0__")]
    assert refused.value.stage == "schema"


def test_ignored_undeclared_columns_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "orders.parquet", pa.table({**base(), "coupon": pa.array([1, 2, 3])}))
    source, _ = read(path)
    assert source.extra_columns == ("coupon",)


@pytest.mark.parametrize(("present", "problem"), [
    pytest.param(["customer"], "missing column 'customer_id' (expected an integer; the file "
                 "has undeclared 'customer')", id="shortened"),
    pytest.param(["Customer_ID"], "missing column 'customer_id' (expected an integer; the file "
                 "has undeclared 'Customer_ID')", id="other-case"),
    pytest.param(["customerid", "customer"], "missing column 'customer_id' (expected an "
                 "integer; the file has undeclared 'customerid' and 'customer')", id="two"),
    pytest.param(["shop"], "missing column 'customer_id' (expected an integer)",
                 id="nothing-alike"),
])
def test_a_missing_column_names_the_undeclared_ones_like_it(
        tmp_path: Path, present: list[str], problem: str) -> None:
    table = pa.table({"txn_id": ["20260210-0001"], **{n: [10] for n in present},
                      "amount": [1.0], "run_date": [RUN_DATE]})
    path = write(tmp_path / "t.parquet", table)
    with files.open_no_follow(path) as handle, pytest.raises(ContractError) as refused:
        reader.open_parquet(handle, contract.TRANSACTIONS)
    assert refused.value.problems == [problem]


def test_scalar_of_reads_a_declared_value_in_its_columns_terms() -> None:
    column = ORDERS.column
    assert kinds.scalar_of(column("qty"), 3) == pa.scalar(3, pa.int64())
    assert kinds.scalar_of(column("qty"), 2.5) == pa.scalar(2.5, pa.float64())
    assert kinds.scalar_of(column("price"), "0.10").as_py() == D("0.10")
    assert kinds.scalar_of(column("order_date"), "2026-02-10") == pa.scalar(RUN_DATE)
    assert kinds.scalar_of(column("placed_at"), "2026-02-10").as_py() == datetime(
        2026, 2, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a decimal"):
        kinds.scalar_of(column("price"), "ten")
    with pytest.raises(ValueError):
        kinds.scalar_of(column("order_date"), "2026-02-30")

