"""Unit tests for `daemon.load.checks.FileChecks`: each rule alone, samples, counts, order."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from typing import Any

import pyarrow as pa
import pytest

from filedrop_etl.config import contract
from filedrop_etl.config.contract import Check
from filedrop_etl.daemon.errors import CheckFailure, ChecksFailed
from filedrop_etl.daemon.load.checks import SAMPLE_KEYS, FileChecks
from tests.conftest import day_table

RUN_DATE = "2026-02-10"
# The contract's types, but nullable: what the reader yields for a producer's file.
NULLABLE = pa.schema([pa.field(c.name, c.arrow_type) for c in contract.COLUMNS])


def clean_rows(count: int = 12) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = day_table(RUN_DATE, rows=count).to_pylist()
    return rows


def batches_of(rows: list[dict[str, Any]], size: int) -> list[pa.RecordBatch]:
    return [pa.RecordBatch.from_pylist(rows[i:i + size], schema=NULLABLE)
            for i in range(0, len(rows), size)]


def run(rows: list[dict[str, Any]], size: int = 5) -> FileChecks:
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS)
    for batch in batches_of(rows, size):
        checks.observe(batch)
    return checks


def failed(checks: FileChecks) -> dict[str, CheckFailure]:
    return {name: f for name, f in checks.failures.items() if f.failed_rows}


def test_clean_day_has_no_failures() -> None:
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS)
    batches = day_table(RUN_DATE).to_batches(max_chunksize=7)
    assert len(batches) > 1
    for batch in batches:
        checks.observe(batch)
    assert failed(checks) == {}
    assert checks.rows == 25
    assert set(checks.failures) == {c.name for c in contract.CHECKS}
    checks.raise_for_failures()


# Each case: the column set on rows 1 and 3, the value, and every check that must fail.
BAD_VALUES: list[Any] = [
    pytest.param("customer_id", None, {"not_null:customer_id"}, id="null-customer"),
    pytest.param("amount", None, {"not_null:amount"}, id="null-amount"),
    pytest.param("run_date", None, {"not_null:run_date"}, id="null-run_date"),
    pytest.param("amount", -0.01, {"min:amount"}, id="negative-amount"),
    pytest.param("amount", -1e300, {"min:amount"}, id="very-negative-amount"),
    pytest.param("amount", math.nan, {"finite:amount"}, id="nan-amount"),
    pytest.param("amount", math.inf, {"finite:amount"}, id="inf-amount"),
    # -inf is not finite and also below the minimum.
    pytest.param("amount", -math.inf, {"finite:amount", "min:amount"}, id="-inf-amount"),
    pytest.param("amount", 0.0, set(), id="zero-amount"),
    pytest.param("amount", -0.0, set(), id="negative-zero-amount"),
    pytest.param("amount", 1e300, set(), id="huge-amount"),
    pytest.param("run_date", "2026-02-11", {"equals_file_date:run_date"}, id="other-date"),
    pytest.param("run_date", "2026-2-10", {"equals_file_date:run_date"}, id="unpadded-date"),
    pytest.param("run_date", "", {"equals_file_date:run_date"}, id="empty-date"),
]


@pytest.mark.parametrize(("column", "value", "expected"), BAD_VALUES)
def test_each_rule_fails_alone(column: str, value: object, expected: set[str]) -> None:
    rows = clean_rows()
    bad = [1, 3]
    for index in bad:
        rows[index][column] = value
    checks = run(rows)
    failures = failed(checks)
    assert set(failures) == expected
    for failure in failures.values():
        assert failure.failed_rows == len(bad)
        assert failure.sample_keys == [rows[i]["txn_id"] for i in bad]


@pytest.mark.parametrize(
    "key",
    ["20260211-0001", "20260209-0001", "2026021-00001", "202602100001", "X20260210-0001",
     "2026-02-10-0001", ""],
)
def test_key_with_another_days_prefix_fails_prefix_check(key: str) -> None:
    rows = clean_rows()
    rows[4]["txn_id"] = key
    failures = failed(run(rows))
    assert set(failures) == {"file_date_prefix:txn_id"}
    assert failures["file_date_prefix:txn_id"].failed_rows == 1
    assert failures["file_date_prefix:txn_id"].sample_keys == [key]


@pytest.mark.parametrize(("size", "null_rows"), [(5, [0]), (5, [9]), (4, [3, 4, 11]),
                                                 (1, [7]), (12, [2, 11])])
def test_null_key_sample_names_the_global_row(size: int, null_rows: list[int]) -> None:
    rows = clean_rows()
    for index in null_rows:
        rows[index]["txn_id"] = None
    failures = failed(run(rows, size))
    # A null key breaks not_null only: no prefix comparison is made on it.
    assert set(failures) == {"not_null:txn_id"}
    assert failures["not_null:txn_id"].failed_rows == len(null_rows)
    assert failures["not_null:txn_id"].sample_keys == [
        f"<null key, row {i}>" for i in null_rows]


def test_null_key_sample_in_another_rule() -> None:
    rows = clean_rows()
    rows[6]["txn_id"] = None
    rows[6]["amount"] = -5.0
    failures = failed(run(rows, 4))
    assert failures["min:amount"].sample_keys == ["<null key, row 6>"]


@pytest.mark.parametrize("size", [1, 3, 5, 20])
def test_counts_accumulate_and_samples_stop_at_five(size: int) -> None:
    rows = clean_rows(20)
    bad = [0, 2, 5, 7, 11, 13, 19]
    for index in bad:
        rows[index]["amount"] = -1.0
    checks = run(rows, size)
    failures = failed(checks)
    assert set(failures) == {"min:amount"}
    assert failures["min:amount"].failed_rows == len(bad)
    assert failures["min:amount"].sample_keys == [rows[i]["txn_id"] for i in bad[:SAMPLE_KEYS]]
    assert checks.rows == 20


def test_several_rules_count_independently_across_batches() -> None:
    rows = clean_rows(20)
    for index in (1, 8, 15):
        rows[index]["amount"] = math.nan
    for index in (2, 16):
        rows[index]["run_date"] = "2026-02-09"
    rows[19]["customer_id"] = None
    failures = failed(run(rows, 6))
    assert {name: f.failed_rows for name, f in failures.items()} == {
        "finite:amount": 3, "equals_file_date:run_date": 2, "not_null:customer_id": 1}


def test_empty_batch_changes_nothing() -> None:
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS)
    checks.observe(pa.RecordBatch.from_pylist([], schema=NULLABLE))
    assert checks.rows == 0
    assert failed(checks) == {}


def test_record_duplicates_sets_the_unique_check() -> None:
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS)
    rows = clean_rows()
    rows[3], rows[4] = rows[4], rows[3]
    for batch in batches_of(rows, 5):
        checks.observe(batch)
    assert checks.unique_columns_to_count() == (("txn_id",),)
    keys = [f"20260210-{i:04d}" for i in range(8)]
    checks.record_duplicates(("txn_id",), 9, keys)
    samples: list[str | None] = list(keys[:SAMPLE_KEYS])
    assert failed(checks) == {"unique:txn_id": CheckFailure(
        "unique:txn_id", 9, keys[:SAMPLE_KEYS], samples)}
    checks.record_duplicates(("txn_id",), 0, [])
    assert failed(checks) == {}


def test_record_duplicates_ignores_a_column_without_unique_check() -> None:
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS)
    checks.record_duplicates(("customer_id",), 3, ["10"])
    assert failed(checks) == {}


def test_raise_for_failures_lists_in_declaration_order() -> None:
    rows = clean_rows()
    rows[0]["txn_id"] = "20260101-0000"
    rows[1]["amount"] = math.inf
    rows[2]["amount"] = -3.0
    rows[3]["customer_id"] = None
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS)
    checks.record_duplicates(("txn_id",), 2, ["20260210-0005"])
    for batch in batches_of(rows, 5):
        checks.observe(batch)
    with pytest.raises(ChecksFailed) as caught:
        checks.raise_for_failures()
    names = [f.check for f in caught.value.failures]
    assert names == ["not_null:customer_id", "unique:txn_id", "min:amount",
                     "finite:amount", "file_date_prefix:txn_id"]
    declared = [c.name for c in contract.CHECKS]
    assert names == sorted(names, key=declared.index)
    assert caught.value.stage == "checks"
    # The rules in words, each with its count (issue 24, item 11); the ids stay as data.
    assert [f.rule for f in caught.value.failures] == [
        "customer_id must not be null", "txn_id must be unique", "amount must be >= 0",
        "amount must be a finite number, not NaN or infinite",
        "txn_id must start with 20260210-"]
    assert "amount must be >= 0 (1 row): -3.0 at 20260210-0002" in caught.value.message
    assert "min:amount" not in caught.value.message


def test_raise_for_failures_follows_the_given_order() -> None:
    order = (Check("min", "amount", 0.0), Check("not_null", "customer_id"))
    rows = clean_rows()
    rows[0]["customer_id"] = None
    rows[1]["amount"] = -1.0
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS, checks=order)
    checks.observe(batches_of(rows, 12)[0])
    with pytest.raises(ChecksFailed) as caught:
        checks.raise_for_failures()
    assert [f.check for f in caught.value.failures] == ["min:amount", "not_null:customer_id"]


def test_custom_min_value() -> None:
    rows = clean_rows()
    amounts = [row["amount"] for row in rows]
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS, checks=(Check("min", "amount", 100.0),))
    below = sum(a < 100.0 for a in amounts)
    assert 0 < below < len(rows)
    checks.observe(batches_of(rows, 12)[0])
    assert checks.failures["min:amount"].failed_rows == below


# --- keys in ascending order: uniqueness proven without counting ----------------------------


def keys_in_batches(*batches: Sequence[str | None]) -> FileChecks:
    """Observe batches of clean rows whose keys are the given ones, in that order."""
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS)
    for keys in batches:
        rows = clean_rows(len(keys))
        for row, key in zip(rows, keys, strict=True):
            row["txn_id"] = key
        checks.observe(pa.RecordBatch.from_pylist(rows, schema=NULLABLE))
    return checks


@pytest.mark.parametrize("size", [1, 2, 5, 12, 25])
def test_ascending_keys_within_and_across_batches_need_no_count(size: int) -> None:
    checks = run(clean_rows(25), size)
    assert checks.ascending(("txn_id",))
    assert checks.unique_columns_to_count() == ()


@pytest.mark.parametrize("batches", [
    pytest.param([["20260210-0001", "20260210-0002"], ["20260210-0002", "20260210-0003"]],
                 id="first-equals-previous-last"),
    pytest.param([["20260210-0001", "20260210-0005"], ["20260210-0003", "20260210-0006"]],
                 id="first-below-previous-last"),
    pytest.param([["20260210-0001", "20260210-0009"], ["20260210-0010"], ["20260210-0002"]],
                 id="below-an-earlier-batch"),
    pytest.param([["20260210-0001", "20260210-0001"]], id="equal-within-a-batch"),
    pytest.param([["20260210-0002", "20260210-0001", "20260210-0003"]],
                 id="descending-within-a-batch"),
    pytest.param([["20260210-0001", "20260210-0004"], [], ["20260210-0002"]],
                 id="below-the-last-key-before-an-empty-batch"),
    pytest.param([["20260210-é"], ["20260210-z"]], id="non-ascii-before-ascii"),
])
def test_a_key_not_above_the_one_before_must_be_counted(batches: list[list[str]]) -> None:
    checks = keys_in_batches(*batches)
    assert not checks.ascending(("txn_id",))
    assert checks.unique_columns_to_count() == (("txn_id",),)


@pytest.mark.parametrize("batches", [
    pytest.param([["20260210-0001"], [], ["20260210-0002"]], id="empty-batch-between"),
    pytest.param([[], ["20260210-0001", "20260210-0002"]], id="empty-batch-first"),
    pytest.param([["20260210-0009"], ["20260210-0010"]], id="longer-key"),
    # Code point order, as SQLite orders UTF-8 by its bytes.
    pytest.param([["20260210-Z", "20260210-a"], ["20260210-z", "20260210-é"],
                  ["20260210-中", "20260210-😀"]], id="non-ascii"),
])
def test_ascending_keys_survive_empty_batches_and_non_ascii(batches: list[list[str]]) -> None:
    checks = keys_in_batches(*batches)
    assert checks.ascending(("txn_id",))
    assert checks.unique_columns_to_count() == ()
    keys = [k for batch in batches for k in batch]
    with closing(sqlite3.connect(":memory:")) as conn:
        assert keys == [k for k, in conn.execute(
            "SELECT column1 FROM (VALUES " + ", ".join("(?)" for _ in keys) + ") ORDER BY 1",
            keys)]


@pytest.mark.parametrize("batches", [
    pytest.param([[None, "20260210-0001"]], id="first"),
    pytest.param([["20260210-0001", None, "20260210-0002"]], id="middle"),
    pytest.param([["20260210-0001"], ["20260210-0002", None]], id="last-of-a-later-batch"),
    pytest.param([[None]], id="only"),
])
def test_a_null_key_is_not_ascending(batches: list[list[str | None]]) -> None:
    checks = keys_in_batches(*batches)
    assert not checks.ascending(("txn_id",))
    assert checks.unique_columns_to_count() == (("txn_id",),)


def test_a_column_declared_unique_is_tracked_like_the_key() -> None:
    rows = clean_rows()
    for index, row in enumerate(rows):
        row["customer_id"] = 1000 - index  # strictly descending: must be counted
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS, checks=(Check("unique", "customer_id"),))
    for batch in batches_of(rows, 5):
        checks.observe(batch)
    assert checks.ascending(("txn_id",)) and not checks.ascending(("customer_id",))
    assert checks.unique_columns_to_count() == (("customer_id",),)
    # Not tracked: not proven.
    assert not FileChecks(RUN_DATE, contract.TRANSACTIONS).ascending(("customer_id",))


def test_observing_passes_the_batches_through_and_observes_each() -> None:
    rows = clean_rows(12)
    rows[7]["amount"] = -1.0
    batches = batches_of(rows, 5)
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS)
    stream = checks.observing(iter(batches))
    assert checks.rows == 0  # lazy: nothing observed before the consumer asks
    first = next(stream)
    assert first is batches[0] and checks.rows == 5
    rest = list(stream)
    assert all(a is b for a, b in zip([first, *rest], batches, strict=True))
    assert checks.rows == 12
    assert failed(checks) == {"min:amount": CheckFailure("min:amount", 1, [rows[7]["txn_id"]],
                                                         ["-1.0"])}
    assert checks.unique_columns_to_count() == ()


def test_each_failure_carries_the_offending_values_beside_their_keys() -> None:
    """Guards a found gap: `equals_file_date:run_date (2 rows)` never said which dates the
    rows held. The values travel with the keys into the sidecar and the message."""
    rows = clean_rows(10)
    rows[3]["run_date"] = "2000-01-01"
    rows[8]["run_date"] = "1999-12-31"
    rows[5]["amount"] = None
    checks = FileChecks(RUN_DATE, contract.TRANSACTIONS)
    for batch in batches_of(rows, 4):
        checks.observe(batch)
    found = failed(checks)
    date = found["equals_file_date:run_date"]
    assert (date.sample_keys, date.sample_values) == (
        [rows[3]["txn_id"], rows[8]["txn_id"]], ["2000-01-01", "1999-12-31"])
    assert found["not_null:amount"].sample_values == [None]
    with pytest.raises(ChecksFailed) as caught:
        checks.raise_for_failures()
    assert (f"run_date must be {RUN_DATE} (2 rows): '2000-01-01' at {rows[3]['txn_id']}, "
            f"'1999-12-31' at {rows[8]['txn_id']}") in caught.value.message
    assert f"amount must not be null (1 row): null at {rows[5]['txn_id']}" in caught.value.message
