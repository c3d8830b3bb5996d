"""Unit tests for `daemon.load.reader`: which producer variants are accepted, and how they read."""

from __future__ import annotations

import decimal
import random
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filedrop_etl.config import contract
from filedrop_etl.daemon import files
from filedrop_etl.daemon.errors import BadInput, ContractError
from filedrop_etl.daemon.load import reader
from tests.conftest import day_table, write_parquet

RUN_DATE = "2026-02-10"
KEYS = ["20260210-0000", "20260210-0001", "20260210-0002"]
CUSTOMERS = [10, 11, 12]
AMOUNTS = [1.25, 2.5, 0.0]
DATES = [RUN_DATE] * 3
CONTRACT_TYPES = [pa.string(), pa.int64(), pa.float64(), pa.string()]

Columns: TypeAlias = "dict[str, pa.Array[Any]]"


def base_columns() -> Columns:
    """The three contract-typed columns every variant starts from, in contract order."""
    return {
        "txn_id": pa.array(KEYS, pa.string()),
        "customer_id": pa.array(CUSTOMERS, pa.int64()),
        "amount": pa.array(AMOUNTS, pa.float64()),
        "run_date": pa.array(DATES, pa.string()),
    }


def table_of(columns: Columns) -> pa.Table:
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def with_(**overrides: pa.Array[Any]) -> Callable[[], Columns]:
    def build() -> Columns:
        return {**base_columns(), **overrides}
    return build


def without(name: str) -> Callable[[], Columns]:
    def build() -> Columns:
        columns = base_columns()
        del columns[name]
        return columns
    return build


def reordered() -> Columns:
    columns = base_columns()
    return {n: columns[n] for n in ("amount", "run_date", "txn_id", "customer_id")}


def extra() -> Columns:
    return {"note": pa.array(["a", "b", "c"]), **base_columns(),
            "ts": pa.array([datetime(2026, 2, 10)] * 3, pa.timestamp("ms"))}


def write(path: Path, table: pa.Table, **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **options)
    return path


def read_all(path: Path) -> tuple[reader.ParquetSource, list[pa.RecordBatch]]:
    with files.open_no_follow(path) as handle:
        source = reader.open_parquet(handle, contract.TRANSACTIONS)
        return source, list(source.batches())


# Each case: id, the columns a producer wrote, pq.write_table options, the expected
# amounts (the contract's float64 values), the extra columns reported.
ACCEPTED: list[Any] = [
    pytest.param(base_columns, {}, AMOUNTS, (), id="contract"),
    pytest.param(with_(txn_id=pa.array(KEYS, pa.large_string())), {}, AMOUNTS, (),
                 id="txn_id-large_string"),
    pytest.param(with_(txn_id=pa.array(KEYS).dictionary_encode()), {}, AMOUNTS, (),
                 id="txn_id-dictionary"),
    pytest.param(with_(txn_id=pa.array(KEYS, pa.large_string()).dictionary_encode()), {},
                 AMOUNTS, (), id="txn_id-dictionary-large_string"),
    pytest.param(with_(customer_id=pa.array(CUSTOMERS, pa.int32())), {}, AMOUNTS, (),
                 id="customer_id-int32"),
    pytest.param(with_(customer_id=pa.array(CUSTOMERS, pa.uint16())), {}, AMOUNTS, (),
                 id="customer_id-uint16"),
    pytest.param(with_(customer_id=pa.array(CUSTOMERS, pa.int8())), {}, AMOUNTS, (),
                 id="customer_id-int8"),
    pytest.param(with_(customer_id=pa.array(CUSTOMERS, pa.uint64())), {}, AMOUNTS, (),
                 id="customer_id-uint64-small"),
    pytest.param(with_(amount=pa.array(AMOUNTS, pa.float32())), {}, AMOUNTS, (),
                 id="amount-float32"),
    pytest.param(with_(amount=pa.array([decimal.Decimal(str(a)) for a in AMOUNTS],
                                       pa.decimal128(10, 2))), {}, AMOUNTS, (),
                 id="amount-decimal128"),
    pytest.param(with_(amount=pa.array([1, 2, 0], pa.int64())), {}, [1.0, 2.0, 0.0], (),
                 id="amount-int64"),
    pytest.param(with_(amount=pa.array([1, 2, 0], pa.int32())), {}, [1.0, 2.0, 0.0], (),
                 id="amount-int32"),
    pytest.param(with_(run_date=pa.array([date(2026, 2, 10)] * 3, pa.date32())), {},
                 AMOUNTS, (), id="run_date-date32"),
    pytest.param(with_(run_date=pa.array([date(2026, 2, 10)] * 3, pa.date64())), {},
                 AMOUNTS, (), id="run_date-date64"),
    pytest.param(with_(run_date=pa.array(DATES, pa.large_string())), {}, AMOUNTS, (),
                 id="run_date-large_string"),
    pytest.param(with_(run_date=pa.array(DATES).dictionary_encode()), {}, AMOUNTS, (),
                 id="run_date-dictionary"),
    pytest.param(extra, {}, AMOUNTS, ("note", "ts"), id="extra-columns"),
    pytest.param(reordered, {}, AMOUNTS, (), id="reordered"),
    pytest.param(base_columns, {"row_group_size": 1}, AMOUNTS, (), id="row-groups"),
    pytest.param(base_columns, {"compression": "zstd"}, AMOUNTS, (), id="zstd"),
    pytest.param(base_columns, {"compression": "gzip"}, AMOUNTS, (), id="gzip"),
    pytest.param(base_columns, {"compression": "none"}, AMOUNTS, (), id="uncompressed"),
    pytest.param(base_columns, {"use_dictionary": False}, AMOUNTS, (), id="no-dictionary"),
    pytest.param(base_columns, {"version": "1.0"}, AMOUNTS, (), id="version-1.0"),
    pytest.param(base_columns, {"version": "2.4"}, AMOUNTS, (), id="version-2.4"),
    pytest.param(base_columns, {"version": "2.6"}, AMOUNTS, (), id="version-2.6"),
    pytest.param(base_columns, {"data_page_version": "2.0"}, AMOUNTS, (),
                 id="data-page-v2"),
    pytest.param(base_columns, {"write_statistics": False}, AMOUNTS, (), id="no-statistics"),
    pytest.param(base_columns, {"store_schema": False}, AMOUNTS, (), id="no-arrow-schema"),
    pytest.param(with_(customer_id=pa.array(CUSTOMERS, pa.uint16()),
                       run_date=pa.array([date(2026, 2, 10)] * 3, pa.date32())),
                 {"version": "1.0", "use_dictionary": False}, AMOUNTS, (),
                 id="uint16-date32-version-1.0"),
    pytest.param(with_(txn_id=pa.array(KEYS, pa.large_string()),
                       run_date=pa.array([date(2026, 2, 10)] * 3, pa.date32())),
                 {"store_schema": False, "compression": "zstd", "row_group_size": 2},
                 AMOUNTS, (), id="large_string-date32-no-arrow-schema"),
]


@pytest.mark.parametrize(("columns", "options", "amounts", "extra_columns"), ACCEPTED)
def test_accepted_variant_reads_as_contract(
    tmp_path: Path, columns: Callable[[], Columns], options: dict[str, Any],
    amounts: list[float], extra_columns: tuple[str, ...],
) -> None:
    path = write(tmp_path / "in.parquet", table_of(columns()), **options)
    source, batches = read_all(path)
    assert source.rows == 3
    assert source.extra_columns == extra_columns
    assert batches
    for batch in batches:
        assert batch.schema.names == list(contract.COLUMN_NAMES)
        assert batch.schema.types == CONTRACT_TYPES
    table = pa.Table.from_batches(batches)
    assert table.to_pydict() == {"txn_id": KEYS, "customer_id": CUSTOMERS,
                                 "amount": amounts, "run_date": DATES}


def test_decimal_amounts_read_as_the_floats_their_text_names(tmp_path: Path) -> None:
    """Guards a found bug: a direct decimal-to-float64 cast lands one ulp off for some
    values (894.06 became 894.0600000000001), so an amount re-sent as a decimal counted
    as changed. The float of a decimal is the float of its text."""
    texts = ["894.06", "0.10", "123456.78"]
    amounts = pa.array([decimal.Decimal(t) for t in texts], pa.decimal128(12, 2))
    path = write(tmp_path / "in.parquet", table_of(with_(amount=amounts)()))
    assert pq.read_schema(path).field("amount").type == pa.decimal128(12, 2)
    _, batches = read_all(path)
    read = pa.Table.from_batches(batches).column("amount")
    assert read.type == pa.float64()
    assert read.to_pylist() == [float(t) for t in texts]


def test_row_groups_stream_as_several_batches(tmp_path: Path) -> None:
    path = write(tmp_path / "in.parquet", table_of(base_columns()), row_group_size=1)
    assert pq.read_metadata(path).num_row_groups == 3
    source, batches = read_all(path)
    assert source.rows == 3
    assert sum(b.num_rows for b in batches) == 3
    assert pa.Table.from_batches(batches).column("txn_id").to_pylist() == KEYS


def test_generated_day_reads_back_unchanged(tmp_path: Path) -> None:
    table = day_table(RUN_DATE, rows=200)
    path = write_parquet(tmp_path, table)
    _, batches = read_all(path)
    assert pa.Table.from_batches(batches).to_pylist() == table.to_pylist()


def test_large_file_streams_in_bounded_batches(tmp_path: Path) -> None:
    rows = reader.BATCH_ROWS + 10
    table = day_table(RUN_DATE, rows=rows)
    path = write_parquet(tmp_path, table)
    source, batches = read_all(path)
    assert source.rows == rows
    assert len(batches) >= 2
    assert all(b.num_rows <= reader.BATCH_ROWS for b in batches)
    assert sum(b.num_rows for b in batches) == rows


def duplicated(name: str) -> Callable[[], pa.Table]:
    def build() -> pa.Table:
        columns = base_columns()
        arrays = [*columns.values(), columns[name]]
        return pa.Table.from_arrays(arrays, names=[*columns, name])
    return build


def table_with(build: Callable[[], Columns]) -> Callable[[], pa.Table]:
    return lambda: table_of(build())


# Each case: id, the table a producer wrote, the column each problem must name.
REJECTED: list[Any] = [
    *(pytest.param(table_with(without(n)), [n], id=f"missing-{n}")
      for n in contract.COLUMN_NAMES),
    pytest.param(table_with(with_(amount=pa.array(["1.25", "2.5", "0"]))), ["amount"],
                 id="amount-string"),
    pytest.param(table_with(with_(customer_id=pa.array([10.0, 11.0, 12.0]))),
                 ["customer_id"], id="customer_id-float64"),
    pytest.param(table_with(with_(customer_id=pa.array(["10", "11", "12"]))),
                 ["customer_id"], id="customer_id-string"),
    pytest.param(table_with(with_(run_date=pa.array([datetime(2026, 2, 10)] * 3,
                                                     pa.timestamp("ms")))),
                 ["run_date"], id="run_date-timestamp"),
    pytest.param(table_with(with_(run_date=pa.array([20260210] * 3, pa.int32()))),
                 ["run_date"], id="run_date-int32"),
    pytest.param(table_with(with_(txn_id=pa.array([1, 2, 3]))), ["txn_id"], id="txn_id-int"),
    pytest.param(table_with(with_(txn_id=pa.array([b"a", b"b", b"c"], pa.binary()))),
                 ["txn_id"], id="txn_id-binary"),
    pytest.param(table_with(with_(amount=pa.array([True, False, True]))), ["amount"],
                 id="amount-bool"),
    pytest.param(duplicated("amount"), ["amount"], id="amount-twice"),
    pytest.param(duplicated("txn_id"), ["txn_id"], id="txn_id-twice"),
    pytest.param(lambda: table_of({**without("txn_id")(),
                                   "amount": pa.array(["x", "y", "z"])}),
                 ["txn_id", "amount"], id="two-problems"),
]


@pytest.mark.parametrize(("build", "named"), REJECTED)
def test_rejected_variant_names_the_column(tmp_path: Path, build: Callable[[], pa.Table],
                                           named: list[str]) -> None:
    path = write(tmp_path / "in.parquet", build())
    with files.open_no_follow(path) as handle, pytest.raises(ContractError) as caught:
        reader.open_parquet(handle, contract.TRANSACTIONS)
    problems = caught.value.problems
    assert len(problems) == len(named)
    for column, problem in zip(named, problems, strict=True):
        assert repr(column) in problem
    assert caught.value.stage == "schema"
    assert caught.value.hint


def test_duplicate_column_problem_says_how_many(tmp_path: Path) -> None:
    path = write(tmp_path / "in.parquet", duplicated("customer_id")())
    if len(pq.read_schema(path).get_all_field_indices("customer_id")) != 2:
        pytest.skip("pyarrow did not write the column twice")
    with files.open_no_follow(path) as handle, pytest.raises(ContractError) as caught:
        reader.open_parquet(handle, contract.TRANSACTIONS)
    assert caught.value.problems == ["column 'customer_id' appears 2 times"]


def _valid_bytes(tmp_path: Path) -> bytes:
    return write(tmp_path / "src.parquet", table_of(base_columns())).read_bytes()


BROKEN: list[Any] = [
    pytest.param(lambda data: b"", id="empty"),
    pytest.param(lambda data: random.Random(1).randbytes(2048), id="random"),
    pytest.param(lambda data: b"txn_id,customer_id,amount,run_date\n1,2,3,4\n", id="csv"),
    pytest.param(lambda data: b"PAR1" + b"\x00" * 100 + b"PAR1", id="magics-only"),
    pytest.param(lambda data: data[:-1], id="cut-last-byte"),
    pytest.param(lambda data: data[:-8], id="cut-footer-tail"),
    pytest.param(lambda data: data[: len(data) // 2], id="cut-half"),
    pytest.param(lambda data: data[:4], id="cut-to-magic"),
]


@pytest.mark.parametrize("mangle", BROKEN)
def test_unreadable_file_is_bad_input(tmp_path: Path, mangle: Callable[[bytes], bytes]) -> None:
    path = tmp_path / "in.parquet"
    path.write_bytes(mangle(_valid_bytes(tmp_path)))
    with files.open_no_follow(path) as handle, pytest.raises(BadInput) as caught:
        reader.open_parquet(handle, contract.TRANSACTIONS)
    assert not isinstance(caught.value, ContractError)
    assert caught.value.stage == "read"
    assert caught.value.hint


@pytest.mark.parametrize("value", [2**63, 2**64 - 1], ids=["int64-max+1", "uint64-max"])
def test_uint64_above_int64_max_fails_when_read(tmp_path: Path, value: int) -> None:
    customers = pa.array([10, value, 12], pa.uint64())
    path = write(tmp_path / "in.parquet", table_of(with_(customer_id=customers)()))
    with files.open_no_follow(path) as handle:
        source = reader.open_parquet(handle, contract.TRANSACTIONS)
        with pytest.raises(ContractError) as caught:
            list(source.batches())
    assert len(caught.value.problems) == 1
    assert "'customer_id'" in caught.value.problems[0]


def test_schema_problems_empty_for_the_contract() -> None:
    assert reader.schema_problems(contract.ARROW_SCHEMA, contract.TRANSACTIONS) == []


def test_files_written_by_pandas_are_accepted(tmp_path: Path) -> None:
    """pandas is the most common producer: categoricals, its string dtype, a named index."""
    frame = day_table("2026-02-10").to_pandas()
    frame["customer_id"] = frame["customer_id"].astype("category")
    frame["txn_id"] = frame["txn_id"].astype("string")
    frame["run_date"] = pd.to_datetime(frame["run_date"]).dt.date  # a Parquet DATE
    frame = frame.set_index(pd.Index([f"line-{i}" for i in range(25)], name="line"))
    path = tmp_path / "pandas.parquet"
    frame.to_parquet(path)
    with files.open_no_follow(path) as handle:
        source = reader.open_parquet(handle, contract.TRANSACTIONS)
        table = pa.Table.from_batches(list(source.batches()))
    assert source.extra_columns == ("line",)
    assert table.schema == pa.schema([(c.name, c.arrow_type) for c in contract.COLUMNS])
    assert table.column("run_date")[0].as_py() == "2026-02-10"
    assert table.column("customer_id").to_pylist() == day_table(
        "2026-02-10").column("customer_id").to_pylist()
