"""The in-memory sort of a file's keys: byte order, repeats as the checks count them, and
the watch that stops a stream at the first key out of order."""

from __future__ import annotations

import random
from collections import Counter

import pyarrow as pa
import pytest

from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon.load import checks, ordering
from tests.conftest import day_table
from tests.feed_orders import ORDERS

# Alphabets that make the packed path and its fallbacks meet: multi-byte UTF-8, a
# four-byte emoji, digits only; prefixes shared or not; lengths past 24 bytes.
ALPHABETS = ["ab", "abc\u00e9", "xyz\U0001f600", "0123456789"]
PREFIXES = ["", "P", "2026-"]


@pytest.mark.parametrize("seed", range(6))
def test_the_order_is_utf8_byte_order_and_stable(seed: int) -> None:
    """Against Python's own sort by UTF-8 bytes (SQLite's BINARY order), ties in
    arrival order, for 50 random key sets a seed."""
    rng = random.Random(seed)
    for _ in range(50):
        alphabet, prefix = rng.choice(ALPHABETS), rng.choice(PREFIXES)
        longest = rng.choice([3, 12, 30])
        keys = [prefix + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))
                for _ in range(rng.randint(2, 60))]
        expected = sorted(range(len(keys)), key=lambda i: (keys[i].encode(), i))
        assert list(ordering.permutation(pa.array(keys))) == expected, keys


@pytest.mark.parametrize("seed", range(6))
def test_repeats_are_counted_as_the_checks_count_them(seed: int) -> None:
    """Rows beyond the first of each repeated key, nulls never a repeat, the first few
    repeated keys in order as samples; the rows come back sorted, nulls last."""
    rng = random.Random(seed)
    for _ in range(50):
        keys = [rng.choice(["a", "b", "bb", None, "c\u00e9", "2026"])
                for _ in range(rng.randint(2, 40))]
        # Typed as the reader's batches are (all nulls stay a string column).
        table = pa.table({"k": pa.array(keys, pa.string())})
        in_order = ordering.InOrder.of(table.to_batches(7), ("k",), 3)
        present = Counter(k for k in keys if k is not None)
        assert in_order.repeats == sum(n - 1 for n in present.values()), keys
        assert in_order.repeated_keys == sorted((k for k, n in present.items() if n > 1),
                                                key=str.encode)[:3], keys
        rows = [r["k"] for batch in in_order.batches(5) for r in batch.to_pylist()]
        assert rows == sorted(present.elements(), key=str.encode) + [None] * keys.count(None)


def test_a_shuffled_day_comes_back_as_the_generator_wrote_it() -> None:
    day = day_table("2026-02-10", rows=1000)
    shuffled = day.take(random.Random(1).sample(range(1000), 1000))
    in_order = ordering.InOrder.of(shuffled.to_batches(128), ("txn_id",), 5)
    assert (in_order.repeats, in_order.repeated_keys) == (0, [])
    assert pa.Table.from_batches(list(in_order.batches(300))).equals(day)


def _watched(table: pa.Table, batch_rows: int) -> list[pa.RecordBatch]:
    verdict = checks.FileChecks("2026-02-10", TRANSACTIONS)
    return list(ordering.checking_order(verdict.observing(table.to_batches(batch_rows)), verdict,
                                  table.num_rows))


def test_the_watch_stops_at_the_first_batch_out_of_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    day = day_table("2026-02-10", rows=300)
    assert len(_watched(day, 100)) == 3  # in order: every batch passes
    late = day.take([*range(200), *range(299, 199, -1)])
    with pytest.raises(ordering.KeysUnsorted):
        _watched(late, 100)
    # Too large for memory: the stream goes on, for the database to sort.
    monkeypatch.setattr(ordering, "MEMORY_BYTES", 0)
    assert sum(b.num_rows for b in _watched(late, 100)) == 300


# --- a composite key ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_a_composite_key_sorts_by_its_columns_in_turn(seed: int) -> None:
    """Against Python's order of (UTF-8 bytes, integer) tuples, ties in arrival order;
    repeats are rows whose whole key equals the one before, sampled as one text."""
    rng = random.Random(seed)
    for _ in range(40):
        keys = [(rng.choice(["2026-02-10", "2026-02-09", "2026-02-1\u00e9"]),
                 rng.randint(-2, 3)) for _ in range(rng.randint(2, 30))]
        table = pa.table({"day": [d for d, _ in keys], "n": pa.array([n for _, n in keys]),
                          "at": list(range(len(keys)))})
        in_order = ordering.InOrder.of(table.to_batches(7), ("day", "n"), 3)
        expected = sorted(range(len(keys)), key=lambda i: (keys[i][0].encode(), keys[i][1], i))
        rows = [r["at"] for batch in in_order.batches(4) for r in batch.to_pylist()]
        assert rows == expected, keys
        present = Counter(keys)
        assert in_order.repeats == sum(n - 1 for n in present.values())
        repeated = sorted((k for k, n in present.items() if n > 1),
                          key=lambda k: (k[0].encode(), k[1]))
        assert in_order.repeated_keys == [f"{d}, {n}" for d, n in repeated][:3]


def test_the_watch_follows_a_composite_key() -> None:
    rows = [{"order_date": "2026-02-10", "order_id": i} for i in (1, 2, 3, 2)]
    table = pa.table({c.name: pa.array([r.get(c.name) for r in rows], c.arrow_type)
                      for c in ORDERS.columns})
    verdict = checks.FileChecks("2026-02-10", ORDERS)
    watched = ordering.checking_order(verdict.observing(table.to_batches(3)), verdict, 4)
    assert next(watched).num_rows == 3
    with pytest.raises(ordering.KeysUnsorted):
        next(watched)
