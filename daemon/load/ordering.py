"""The order of a file's keys: files whose keys arrive unsorted are sorted in memory.

A merge is fastest when its keys arrive in order: each new row then lands at the right
edge of the fact's B-tree, and a key can only repeat its neighbour, so uniqueness is
proven by the row checks as the rows stream by. Most producers write keys in order;
for the others, `checking_order` stops the stream at the first key out of order, and
`InOrder` reads the file again, sorts its rows by key and counts repeated keys on the
sorted array, all in Arrow (a composite key by its columns in turn, each string by its
UTF-8 bytes, as the key's index orders). That costs a sort where the database would have
paid a count of distinct keys and a sort of its own (several times the merge). It holds the
whole file in memory, so only a file whose rows fit in `MEMORY_BYTES` is sorted here;
a larger one streams on unsorted, and the database sorts it as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.daemon.errors import key_text
from filedrop_etl.daemon.load.checks import Columns, FileChecks

# Arrow bytes a file's rows may take to be sorted in memory: 1M rows of the default
# feed take about 50 MB, and sorting them raises the daemon's peak by about 75 MB (to
# 280 MB here) and adds about 0.3 s. Reading them costs what streaming would.
MEMORY_BYTES = 64 * 1024 * 1024
# Keys up to this many bytes past their common prefix are sorted as unsigned integers
# (much faster than comparing strings); longer ones by Arrow's string sort.
_PACKED_BYTES = 24


class KeysUnsorted(Exception):
    """A key arrived out of order, in a file small enough to sort in memory: staging
    stops, and the file is read again in key order (`InOrder`)."""


def checking_order(batches: Iterable[pa.RecordBatch], verdict: FileChecks,
             total_rows: int) -> Iterator[pa.RecordBatch]:
    """`batches` (already observed by `verdict`), raising `KeysUnsorted` before the
    first batch whose keys are not strictly ascending if the whole file would fit in
    `MEMORY_BYTES`, judged by the batches seen so far."""
    memory_bytes = MEMORY_BYTES  # read at each file: the tests lower it
    seen_rows = seen_bytes = 0
    for batch in batches:
        seen_rows += batch.num_rows
        seen_bytes += batch.nbytes
        if not verdict.ascending(verdict.contract.key) and \
                seen_bytes / seen_rows * total_rows <= memory_bytes:
            raise KeysUnsorted
        yield batch


@dataclass
class InOrder:
    """A file's rows sorted by key, and the keys that repeat (as the checks count them:
    the rows beyond the first of each repeated key, and the first few such keys)."""

    table: pa.Table
    order: npt.NDArray[np.int64]
    repeats: int
    repeated_keys: list[str]

    @classmethod
    def of(cls, batches: Iterable[pa.RecordBatch], key: Columns, samples: int) -> InOrder:
        # Contiguous columns: a gather from one array is twice as fast as from many.
        table = pa.Table.from_batches(list(batches)).combine_chunks()
        columns = [table.column(k).combine_chunks() for k in key]
        packed = _packed(columns[0]) if len(columns) == 1 else None
        order = permutation(columns[0], packed) if len(columns) == 1 else \
            composite_permutation(table, key)
        if packed is not None:
            # Equal neighbours in key order are repeats; compared as integers, as sorted.
            words = [w[order] for w in packed]
            same = np.logical_and.reduce([w[1:] == w[:-1] for w in words])
        else:
            in_order = [c.take(order) for c in columns]
            same = np.logical_and.reduce([
                np.asarray(pc.equal(c[1:], c[:-1]).fill_null(False), dtype=bool)
                for c in in_order])
        repeats = int(np.count_nonzero(same))
        repeated: list[str] = []
        if repeats:
            at = order[1:][same]
            values = zip(*(c.take(at).to_pylist() for c in columns), strict=True)
            repeated = list(dict.fromkeys(key_text(v, 0) for v in values))[:samples]
        return cls(table, order, repeats, repeated)

    def batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        """The rows in key order, `rows` at a time."""
        for start in range(0, len(self.order), rows):
            yield from self.table.take(self.order[start:start + rows]).to_batches()


def permutation(keys: pa.Array[Any],
                packed: list[npt.NDArray[np.uint64]] | None = None) -> npt.NDArray[np.int64]:
    """The stable ascending order of `keys`, nulls last, by UTF-8 bytes (the order of
    SQLite's BINARY collation and of Python's `str`); `packed` is `_packed(keys)`."""
    packed = _packed(keys) if packed is None else packed
    if packed is None:
        return np.asarray(pc.sort_indices(keys), dtype=np.int64)
    if len(packed) == 1:
        return np.argsort(packed[0], kind="stable").astype(np.int64)
    # lexsort sorts by its last key first.
    return np.lexsort(packed[::-1]).astype(np.int64)


def composite_permutation(table: pa.Table, key: Columns) -> npt.NDArray[np.int64]:
    """The stable ascending order of the rows by the key's columns in turn, nulls last."""
    # Nulls sort last by default (SortOptions' own `null_placement` is deprecated).
    order = pc.sort_indices(table.select(list(key)), sort_keys=[(k, "ascending") for k in key])
    return np.asarray(order, dtype=np.int64)


def _packed(keys: pa.Array[Any]) -> list[npt.NDArray[np.uint64]] | None:
    """The keys as big-endian 8-byte words past their common prefix, zero-padded, so
    that integer order is byte order; None where that does not hold or would not pay
    (nulls, a NUL byte, which padding would mistake for an end, long keys)."""
    if keys.null_count or len(keys) < 2 or not pa.types.is_string(keys.type):
        return None
    _, offset_buffer, data_buffer = keys.buffers()
    assert offset_buffer is not None and data_buffer is not None  # no nulls, len >= 2
    offsets = np.frombuffer(memoryview(offset_buffer), dtype=np.int32)[
        keys.offset:keys.offset + len(keys) + 1]
    data = np.frombuffer(memoryview(data_buffer), dtype=np.uint8)[offsets[0]:offsets[-1]]
    offsets = offsets - offsets[0]
    if not data.all():
        return None
    low, high = (str(v).encode() for v in pc.min_max(keys).values())
    common = next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b),
                  min(len(low), len(high)))
    lengths = np.diff(offsets) - common
    width = int(lengths.max())
    if width > _PACKED_BYTES:
        return None
    words = max(1, -(-width // 8))
    matrix = np.zeros((len(keys), words * 8), dtype=np.uint8)
    if int(lengths.min()) == width:
        matrix[:, :width] = data.reshape(len(keys), -1)[:, common:]
    else:
        columns = np.arange(width)
        inside = columns < lengths[:, None]
        matrix[:, :width][inside] = data[(offsets[:-1, None] + common + columns)[inside]]
    big_endian = matrix.view(">u8")
    return [big_endian[:, i].astype(np.uint64) for i in range(words)]
