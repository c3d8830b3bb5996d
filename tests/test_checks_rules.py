"""`FileChecks` on a declared feed (`tests.feed_orders`): the rules beyond the built-in
feed's (max, one_of, matches, max_length, min and max on every ordered kind), their
samples, and uniqueness over a composite key."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from filedrop_etl.config.contract import Check
from filedrop_etl.daemon.errors import CheckFailure, ChecksFailed
from filedrop_etl.daemon.load.checks import SAMPLE_KEYS, FileChecks
from tests.feed_orders import ORDERS, RUN_DATE

KEY = ORDERS.key
D = Decimal
# The feed's types, nullable: what the reader yields.
SCHEMA = pa.schema([pa.field(c.name, c.arrow_type) for c in ORDERS.columns])


def row(number: int, **values: Any) -> dict[str, Any]:
    """A clean row of the file, its order_id `number`; `values` override its columns."""
    return {"order_date": RUN_DATE, "order_id": number, "sku": f"A-{number}", "qty": 1,
            "price": D("9.99"), "paid": True,
            "placed_at": datetime(2026, 2, 10, 8, 30, tzinfo=UTC), "weight": 1.0,
            "note": "", **values}


def observed(rows: list[dict[str, Any]], checks: tuple[Check, ...] | None = None,
             size: int = 3) -> FileChecks:
    verdict = FileChecks(RUN_DATE, ORDERS, checks)
    for start in range(0, len(rows), size):
        verdict.observe(pa.RecordBatch.from_pylist(rows[start:start + size], schema=SCHEMA))
    return verdict


def failed(verdict: FileChecks) -> dict[str, CheckFailure]:
    return {n: f for n, f in verdict.failures.items() if f.failed_rows}


# Each case: the rule, the values of its column in rows 1..n (None: null), and the
# indexes among them that break it. A null breaks only `not_null`.
RULES: list[Any] = [
    pytest.param(Check("max", "qty", 10), [10, 11, None, 0, 2**40], [1, 4], id="max-integer"),
    pytest.param(Check("min", "qty", 1), [1, 0, -5, None], [1, 2], id="min-integer"),
    pytest.param(Check("min", "qty", 0.5), [1, 0, None], [1], id="min-integer-fraction"),
    pytest.param(Check("max", "weight", 2.5), [2.5, 2.5000001, None, float("inf")], [1, 3],
                 id="max-float"),
    pytest.param(Check("min", "price", "0.01"), [D("0.01"), D("0.00"), D("-3.10"), None],
                 [1, 2], id="min-decimal"),
    pytest.param(Check("max", "price", 99.995), [D("99.99"), D("100.00"), None], [1],
                 id="max-decimal-between-cents"),
    pytest.param(Check("min", "order_date", "2026-02-01"), ["2026-02-01", "2026-01-31", None],
                 [1], id="min-date"),
    pytest.param(Check("max", "order_date", "2026-02-10"), ["2026-02-10", "2026-02-11"], [1],
                 id="max-date"),
    pytest.param(Check("min", "placed_at", "2026-02-10T09:00:00+01:00"),
                 [datetime(2026, 2, 10, 8, 0, tzinfo=UTC),
                  datetime(2026, 2, 10, 7, 59, 59, 999999, tzinfo=UTC), None], [1],
                 id="min-timestamp-zoned-bound"),
    pytest.param(Check("max", "placed_at", "2026-02-10"),
                 [datetime(2026, 2, 10, tzinfo=UTC), datetime(2026, 2, 10, 0, 0, 1, tzinfo=UTC)],
                 [1], id="max-timestamp-date-bound"),
    pytest.param(Check("one_of", "sku", values=("A-1", "B-2")), ["A-1", "B-2", "a-1", None, ""],
                 [2, 4], id="one_of-string"),
    pytest.param(Check("one_of", "qty", values=(0, 5)), [5, 0, 6, None], [2], id="one_of-integer"),
    pytest.param(Check("one_of", "price", values=("12.5", 1, "0.001")),
                 [D("12.50"), D("1.00"), D("0.00"), None], [2], id="one_of-decimal"),
    pytest.param(Check("one_of", "paid", values=(True,)), [True, False, None], [1],
                 id="one_of-boolean"),
    pytest.param(Check("matches", "sku", r"[A-Z]-\d+"),
                 ["A-1", "Z-42", "a-1", "A-1\n", "xA-1", "A-", None], [2, 3, 4, 5],
                 id="matches-the-whole-value"),
    pytest.param(Check("matches", "sku", "A|B"), ["A", "B", "AB", "A|B"], [2, 3],
                 id="matches-alternation-anchored-as-a-whole"),
    pytest.param(Check("max_length", "note", 3), ["", "abc", "abcd", "ééé", "éééé", None],
                 [2, 4], id="max_length-in-characters"),
    pytest.param(Check("equals_file_date", "order_date"), [RUN_DATE, "2026-02-09", None], [1],
                 id="equals_file_date"),
]


@pytest.mark.parametrize(("check", "values", "bad"), RULES)
def test_each_rule_passes_and_fails_with_samples(check: Check, values: list[Any],
                                                 bad: list[int]) -> None:
    rows = [row(i + 1, **{check.column: v}) for i, v in enumerate(values)]
    verdict = observed(rows, (check,))
    failure = verdict.failures[check.name]
    assert failure.failed_rows == len(bad)
    assert failure.sample_keys == [f"{rows[i]['order_date']}, {i + 1}"
                                   for i in bad][:SAMPLE_KEYS]
    expected = [values[i] for i in bad][:SAMPLE_KEYS]
    shown = {bool: lambda v: str(v).lower(), datetime: datetime.isoformat}
    assert failure.sample_values == [shown.get(type(v), str)(v) for v in expected]
    if not bad:
        verdict.raise_for_failures()


def test_a_failure_message_shows_values_and_composite_keys() -> None:
    rows = [row(1, qty=12, price=D("1.50")), row(2, qty=30, placed_at=None),
            row(3, paid=False)]
    checks = (Check("max", "qty", 10), Check("not_null", "placed_at"),
              Check("one_of", "paid", values=(True,)))
    with pytest.raises(ChecksFailed) as caught:
        observed(rows, checks).raise_for_failures()
    assert caught.value.message == (
        "data-quality checks failed: qty must be <= 10 (2 rows): 12 at 2026-02-10, 1, 30 at "
        "2026-02-10, 2; placed_at must not be null (1 row): null at 2026-02-10, 2; "
        "paid must be one of true (1 row): false at 2026-02-10, 3")


def test_a_key_partly_null_shows_null_and_a_key_all_null_its_row() -> None:
    rows = [row(1), row(2, order_id=None), row(3, order_date=None, order_id=None)]
    failures = failed(observed(rows, size=2))
    assert failures["not_null:order_id"].sample_keys == [
        f"{RUN_DATE}, null", "<null key, row 2>"]


def test_the_feeds_own_checks_pass_a_clean_file() -> None:
    verdict = observed([row(i) for i in range(1, 11)])
    assert failed(verdict) == {}
    assert verdict.ascending(KEY) and verdict.unique_columns_to_count() == ()


# --- uniqueness over the composite key ------------------------------------------------------


@pytest.mark.parametrize(("keys", "ascending"), [
    pytest.param([("2026-02-10", 1), ("2026-02-10", 2), ("2026-02-10", 10)], True,
                 id="second-column-ascends"),
    pytest.param([("2026-02-09", 9), ("2026-02-10", 1)], True, id="first-column-ascends"),
    pytest.param([("2026-02-10", 2), ("2026-02-10", 1)], False, id="second-column-descends"),
    pytest.param([("2026-02-10", 1), ("2026-02-10", 1)], False, id="a-repeat"),
    pytest.param([("2026-02-10", 1), ("2026-02-09", 2)], False, id="first-column-descends"),
    pytest.param([("2026-02-10", 1), ("2026-02-10", None)], False, id="a-null"),
])
@pytest.mark.parametrize("size", [1, 2])
def test_key_tuples_must_ascend_within_and_across_batches(
        keys: list[tuple[str, int | None]], ascending: bool, size: int) -> None:
    rows = [row(0, order_date=d, order_id=i) for d, i in keys]
    verdict = observed(rows, size=size)
    assert verdict.ascending(KEY) is ascending
    assert verdict.unique_columns_to_count() == (() if ascending else (KEY,))


@pytest.mark.parametrize("seed", range(4))
def test_ascending_is_python_tuple_order(seed: int) -> None:
    """Against Python's order of the key tuples, for random files in random batches."""
    rng = random.Random(seed)
    for _ in range(60):
        keys = [(rng.choice(["2026-02-09", "2026-02-10", "2026-02-1é"]), rng.randint(0, 4))
                for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.5:
            keys = sorted(set(keys))
        rows = [row(0, order_date=d, order_id=i) for d, i in keys]
        verdict = observed(rows, size=rng.randint(1, 4))
        assert verdict.ascending(KEY) == all(a < b for a, b in itertools.pairwise(keys)), keys


def test_repeats_counted_in_staging_are_the_composite_keys_failure() -> None:
    verdict = observed([row(2), row(1), row(2)])
    assert verdict.unique_columns_to_count() == (KEY,)
    verdict.record_duplicates(KEY, 1, [f"{RUN_DATE}, 2"])
    assert verdict.counted(KEY) and verdict.unique_columns_to_count() == ()
    assert failed(verdict) == {"unique:order_date+order_id": CheckFailure(
        "unique:order_date+order_id", 1, [f"{RUN_DATE}, 2"], [f"{RUN_DATE}, 2"])}
    with pytest.raises(ChecksFailed, match=r"\(order_date, order_id\) must be unique together "
                       r"\(1 row\): '2026-02-10, 2' at 2026-02-10, 2"):
        verdict.raise_for_failures()
