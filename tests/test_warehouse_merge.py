"""The merge's promise, held for every backend alike: counts, rows kept and replaced, keys.

The part of the warehouse contract (`test_warehouse_contract.py` holds the rest) that says
what one file's merge does to the fact table: what counts as inserted, updated, unchanged
and deleted, what a replace of a date removes, what a repeated staged key does, and what
`surplus_rows` reports. Each case drives the worker's role (`staged`, `surplus_rows`,
`commit`) and reads the rows back, parametrised over the backends by `any_settings`.
These cases were SQLite's alone (`test_store.py`); what is SQLite's own stays there.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import pairwise
from typing import Any

import pyarrow as pa
import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon import clock, warehouse
from filedrop_etl.daemon.warehouse.api import (
    FOLDER_NAMES,
    Folders,
    LoadRecord,
    MergeCounts,
    MergePlan,
    Warehouse,
)
from tests.backends import fact_rows_in, ledger_in
from tests.conftest import day_table

DAY1, DAY2 = "2026-02-10", "2026-02-11"
Row = tuple[Any, ...]
# The contract's types, but nullable: what the reader yields for a producer's file.
NULLABLE = pa.schema([pa.field(c.name, c.arrow_type) for c in contract.COLUMNS])
# The feed the warehouse of `opened` is opened for (the settings' own), passed to each load.
FEED = TRANSACTIONS
# A feed whose keys need not carry their date (one a user may declare): the merge finds
# a date's rows by its date, not a key range, and a re-drop may move a key between dates.
LOOSE = replace(TRANSACTIONS, checks=tuple(c for c in TRANSACTIONS.checks
                                           if c.kind != "file_date_prefix"))


def open_on(settings: Settings) -> Warehouse:
    inbox, work, processed, failed = (str(getattr(settings, n)) for n in FOLDER_NAMES)
    return warehouse.open_warehouse(settings, Folders(inbox, work, processed, failed))


@pytest.fixture
def opened(any_settings: Settings) -> Iterator[Warehouse]:
    held = open_on(any_settings)
    yield held
    held.close()


def rows_of(run_date: str, count: int = 6, seed: int = 0) -> list[Row]:
    return [tuple(r.values()) for r in day_table(run_date, count, seed).to_pylist()]


def table_of(rows: Sequence[Sequence[object]]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(contract.COLUMN_NAMES, r, strict=True)) for r in rows],
                                schema=NULLABLE)


def strictly_ascending(rows: Sequence[Sequence[Any]]) -> bool:
    """What the checks prove for the pipeline before it says `keys_sorted`."""
    return all(a[0] < b[0] for a, b in pairwise(rows))


def load(held: Warehouse, feed: contract.Contract, rows: Sequence[Sequence[object]],
         replace_date: str | None = None,
         keys_sorted: bool | None = None, run_date: str | None = None) -> MergeCounts:
    """Stage `rows` in batches of 4 and commit them as one file's load does; `run_date`
    is the date every row carries, when a case promises it as the pipeline does."""
    ordered = strictly_ascending(rows) if keys_sorted is None else keys_sorted
    plan = MergePlan(keys_sorted=ordered, keys_counted=False, replace_date=replace_date,
                     run_date=run_date)
    day = run_date or replace_date or DAY1
    record = LoadRecord(f"transactions_{day}.parquet", "ab" * 32, 100,
                        "replace" if replace_date else "merge", day, clock.utc_now(),
                        feed=feed.name)
    with held.staged(feed, table_of(rows).to_batches(max_chunksize=4)) as staged:
        assert staged.rows == len(rows)
        return staged.commit(record, plan)


def last_load_id(settings: Settings) -> int:
    return int(ledger_in(settings)[-1]["id"])


def test_first_merge_inserts(any_settings: Settings, opened: Warehouse) -> None:
    rows = rows_of(DAY1)
    assert load(opened, FEED, rows) == MergeCounts(rows=6, inserted=6, updated=0, unchanged=0,
                                             deleted=0)
    load_id = last_load_id(any_settings)
    assert [(*r[:4], r[5]) for r in fact_rows_in(any_settings)] == [(*r, load_id) for r in rows]


@pytest.mark.parametrize("replace_date", [None, DAY1], ids=["merge", "replace"])
def test_an_identical_merge_changes_nothing(any_settings: Settings, opened: Warehouse,
                                            replace_date: str | None) -> None:
    rows = rows_of(DAY1)
    load(opened, FEED, rows, replace_date)
    before = fact_rows_in(any_settings)
    assert load(opened, FEED, rows, replace_date) == MergeCounts(rows=6, inserted=0, updated=0,
                                                           unchanged=6, deleted=0)
    assert fact_rows_in(any_settings) == before  # loaded_at and load_id included


@pytest.mark.parametrize(
    ("column", "value"),
    [(1, 99), (2, 999.99), (2, 0.0), (3, DAY2)],
    ids=["customer_id", "amount", "amount-zero", "run_date"],
)
def test_a_changed_value_counts_as_updated(any_settings: Settings, opened: Warehouse,
                                           column: int, value: object) -> None:
    rows = rows_of(DAY1)
    load(opened, FEED, rows)
    first_id, before = last_load_id(any_settings), fact_rows_in(any_settings)
    changed = [list(r) for r in rows]
    changed[2][column] = value
    assert load(opened, FEED, changed) == MergeCounts(rows=6, inserted=0, updated=1, unchanged=5,
                                                deleted=0)
    after = fact_rows_in(any_settings)
    assert (*after[2][:4], after[2][5]) == (*changed[2], last_load_id(any_settings))
    assert after[:2] + after[3:] == before[:2] + before[3:]
    assert {r[-1] for r in after[:2] + after[3:]} == {first_id}


def test_mixed_merge_counts(any_settings: Settings, opened: Warehouse) -> None:
    rows = rows_of(DAY1, 6)
    load(opened, FEED, rows[:4])
    first_id = last_load_id(any_settings)
    changed = [list(r) for r in rows]
    changed[0][2] = 12345.5
    assert load(opened, FEED, changed) == MergeCounts(rows=6, inserted=2, updated=1, unchanged=3,
                                                deleted=0)
    second_id = last_load_id(any_settings)
    assert [r[-1] for r in fact_rows_in(any_settings)] == [
        second_id, first_id, first_id, first_id, second_id, second_id]


def test_replace_date_deletes_missing_rows_of_that_date_only(any_settings: Settings,
                                                             opened: Warehouse) -> None:
    day1, day2 = rows_of(DAY1, 6), rows_of(DAY2, 4)
    load(opened, FEED, day1 + day2)
    day2_before = [r for r in fact_rows_in(any_settings) if r[3] == DAY2]
    kept = [day1[0], day1[2], day1[5]]
    assert load(opened, FEED, kept, replace_date=DAY1) == MergeCounts(
        rows=3, inserted=0, updated=0, unchanged=3, deleted=3)
    after = fact_rows_in(any_settings)
    assert [r[:4] for r in after if r[3] == DAY1] == kept
    assert [r for r in after if r[3] == DAY2] == day2_before


def test_without_replace_date_missing_rows_stay(any_settings: Settings,
                                                opened: Warehouse) -> None:
    day1 = rows_of(DAY1, 6)
    load(opened, FEED, day1)
    assert load(opened, FEED, day1[:2]).deleted == 0
    assert len(fact_rows_in(any_settings)) == 6


def test_replace_date_with_nothing_staged_deletes_the_day(any_settings: Settings,
                                                          opened: Warehouse) -> None:
    load(opened, FEED, rows_of(DAY1, 5) + rows_of(DAY2, 2))
    assert load(opened, FEED, [], replace_date=DAY1) == MergeCounts(
        rows=0, inserted=0, updated=0, unchanged=0, deleted=5)
    assert {r[3] for r in fact_rows_in(any_settings)} == {DAY2}


def test_an_unsorted_merge_matches_a_sorted_one(any_settings: Settings,
                                                opened: Warehouse) -> None:
    """keys_sorted=False on unsorted input: the same counts and rows as a sorted merge
    (of the same rows on another day)."""
    first, second = rows_of(DAY1, 8)[:5], [list(r) for r in rows_of(DAY1, 8)]
    second[1][2], second[3][1] = 4321.25, 77  # two updated, three unchanged, three new
    shuffled = [list(r) for r in second]
    random.Random(7).shuffle(shuffled)
    assert not strictly_ascending(shuffled)

    def on_day2(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
        return [[str(r[0]).replace("20260210", "20260211"), r[1], r[2], DAY2] for r in rows]

    load(opened, FEED, first)
    load(opened, FEED, on_day2(first))
    counts = [load(opened, FEED, shuffled, keys_sorted=False),
              load(opened, FEED, on_day2(second), keys_sorted=True)]
    assert counts == [MergeCounts(rows=8, inserted=3, updated=2, unchanged=3)] * 2
    rows = fact_rows_in(any_settings)
    days = [[(r[0][9:], *r[1:3], r[5]) for r in rows if r[3] == day] for day in (DAY1, DAY2)]
    ids = [e["id"] for e in ledger_in(any_settings)]
    assert [r[3] for r in days[0]] == [ids[0], ids[2], ids[0], ids[2], ids[0], ids[2],
                                       ids[2], ids[2]]
    assert [r[3] for r in days[1]] == [ids[1], ids[3], ids[1], ids[3], ids[1], ids[3],
                                       ids[3], ids[3]]
    assert [r[:3] for r in days[0]] == [r[:3] for r in days[1]]


@pytest.mark.parametrize(
    "repeats",
    [
        pytest.param([("20260210-0006", 10, 1.0, DAY1), ("20260210-0006", 11, 2.0, DAY1)],
                     id="new-key-changed"),
        pytest.param([("20260210-0006", 10, 1.0, DAY1)] * 2, id="new-key-identical"),
        pytest.param([("20260210-0001", 10, 1.0, DAY1), ("20260210-0001", 11, 2.0, DAY1)],
                     id="existing-key-changed"),
    ],
)
def test_a_repeated_staged_key_is_refused_not_written(any_settings: Settings,
                                                      opened: Warehouse,
                                                      repeats: list[Row]) -> None:
    """Guards a found bug: an upsert writes a repeated key's row twice (insert, then update)
    and the count cross-check could not notice, so two rows passed as one of each."""
    load(opened, FEED, rows_of(DAY1, 4))
    before, history = fact_rows_in(any_settings), ledger_in(any_settings)
    with pytest.raises(RuntimeError, match="1 staged rows repeat a key"):
        load(opened, FEED, [*rows_of(DAY1, 6)[4:], *repeats], keys_sorted=False)
    assert fact_rows_in(any_settings) == before
    assert ledger_in(any_settings) == history


def surplus(held: Warehouse, rows: Sequence[Sequence[object]], column: str,
            limit: int) -> tuple[int, list[str]]:
    with held.staged(TRANSACTIONS, table_of(rows).to_batches(max_chunksize=4)) as staged:
        return staged.surplus_rows((column,), limit)


@pytest.mark.parametrize(
    ("repeats", "expected", "samples"),
    [
        ({"20260210-0000": 3}, 2, ["20260210-0000"]),
        ({"20260210-0003": 2, "20260210-0001": 4, "20260210-0002": 1}, 4,
         ["20260210-0001", "20260210-0003"]),
        ({f"20260210-{i:04d}": 2 for i in range(7, 0, -1)}, 7,
         [f"20260210-{i:04d}" for i in range(1, 6)]),
    ],
)
def test_surplus_rows_counts_repeated_keys(opened: Warehouse, repeats: dict[str, int],
                                           expected: int, samples: list[str]) -> None:
    rows = [(key, 10, 1.0, DAY1) for key, n in repeats.items() for _ in range(n)]
    assert surplus(opened, rows, "txn_id", 5) == (expected, samples)
    assert surplus(opened, rows, "txn_id", 1) == (expected, samples[:1])


def test_surplus_rows_on_a_non_key_column(opened: Warehouse) -> None:
    customers = [10, 10, 10, 11, 12, 12, None, None]
    rows = [(f"20260210-{i:04d}", c, 1.0, DAY1) for i, c in enumerate(customers)]
    assert surplus(opened, rows, "customer_id", 5) == (3, ["10", "12"])


@pytest.mark.parametrize("column", ["txn_id", "customer_id"])
def test_surplus_rows_of_unique_values_is_zero(opened: Warehouse, column: str) -> None:
    rows = [(f"20260210-{i:04d}", 100 - i, 1.0, DAY1) for i in (3, 0, 8, 1, 5)]
    assert surplus(opened, rows, column, 5) == (0, [])


@pytest.mark.parametrize(("keys", "expected"), [
    (["20260210-0000", None, None, "20260210-0001", None], (0, [])),
    ([None, "20260210-0001", None, "20260210-0001"], (1, ["20260210-0001"])),
    ([None, None], (0, [])),
], ids=["nulls-only-repeat", "nulls-and-a-repeat", "all-null"])
def test_a_null_key_is_not_counted_as_a_repeat(opened: Warehouse, keys: list[str | None],
                                               expected: tuple[int, list[str]]) -> None:
    """Nulls are the not_null check's to count: as repeats they would count twice."""
    assert surplus(opened, [(k, 10, 1.0, DAY1) for k in keys], "txn_id", 5) == expected


@pytest.mark.parametrize("feed", [TRANSACTIONS, LOOSE], ids=["keys-carry-dates", "loose-keys"])
def test_merges_keep_their_counts_and_the_rows_per_day_true(
        any_settings: Settings, feed: contract.Contract) -> None:
    """Random drops (new, corrected and partial days, merged or replaced, sorted or not)
    against a model: each merge's counts, the fact table and the rows per day."""
    rng = random.Random(11)
    settings = replace(any_settings, feeds=Feeds((feed,)))
    model: dict[str, tuple[int, float, str]] = {}
    held = open_on(settings)
    try:
        for step in range(40):
            day = rng.choice([DAY1, DAY2, "2026-02-12"])
            homes = [day] if feed is TRANSACTIONS else [day, DAY1, DAY2]
            keys = {f"{rng.choice(homes).replace('-', '')}-{i:04d}"
                    for i in rng.sample(range(10), rng.randint(1, 10))}
            rows = [(k, rng.randint(1, 3), float(rng.randint(1, 3)), day) for k in sorted(keys)]
            replace_date = day if rng.random() < 0.4 else None
            unsorted = rng.random() < 0.3
            if unsorted:
                rng.shuffle(rows)
            gone = [k for k, (_, _, d) in model.items() if d == day and k not in keys] \
                if replace_date else []
            expected = MergeCounts(
                rows=len(rows), inserted=sum(r[0] not in model for r in rows),
                updated=sum(r[0] in model and model[r[0]] != r[1:] for r in rows),
                unchanged=sum(model.get(r[0]) == r[1:] for r in rows), deleted=len(gone))
            counts = load(held, feed, rows, replace_date, keys_sorted=not unsorted, run_date=day)
            assert counts == expected, step
            for key in gone:
                del model[key]
            model.update((r[0], r[1:]) for r in rows)
            fact = {k: (c, a, d) for k, c, a, d, *_ in fact_rows_in(settings)}
            assert fact == model, step
            with warehouse.reading(settings) as history:
                per_day = {d.run_date: d.rows for d in history.day_totals(feed)}
            assert per_day == dict(Counter(d for _, _, d in model.values())), step
    finally:
        held.close()
