"""Deterministic daily transactions, produced as a stream of Arrow record batches.

The same (run date, row count, seed) gives the same table in any process, on any machine
with the same library versions: the PRNG is seeded from a SHA-256 of the date and seed,
never from `hash()`, whose value for a str is salted per process. Rows are produced in
fixed-size batches, each from its own derived stream, so a 5M-row day is never held in
memory whole; the batch size is therefore part of the data (see `BATCH_ROWS`) and not
a tuning knob. This module writes no files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date

import numpy as np
import pyarrow as pa

from filedrop_etl.config import contract

# Part of the determinism contract: changing it changes every generated file.
BATCH_ROWS = 250_000
CUSTOMERS = np.array([10, 11, 12, 13, 14], dtype=np.int64)
MAX_AMOUNT = 500.0


def digest64(text: str) -> int:
    """The first 8 bytes of `text`'s SHA-256 as a number: the same in every process,
    as `hash()` of a str is not."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def stable_seed(run_date: date, seed: int) -> int:
    """A 64-bit seed that depends only on its inputs, not on the process."""
    return digest64(f"transactions|{seed}|{run_date.isoformat()}")


def key_width(rows: int) -> int:
    """Digits in the row number: at least 4, and enough for the largest row index."""
    return max(4, len(str(max(rows - 1, 0))))


def generate(run_date: date, rows: int, seed: int = 0) -> Iterator[pa.RecordBatch]:
    """Yield `rows` transactions for `run_date` in batches of at most `BATCH_ROWS`."""
    if rows < 0:
        raise ValueError("rows must not be negative")
    base = stable_seed(run_date, seed)
    iso = run_date.isoformat()
    prefix = contract.key_prefix(iso)
    width = key_width(rows)
    for index, start in enumerate(range(0, rows, BATCH_ROWS)):
        count = min(BATCH_ROWS, rows - start)
        rng = np.random.Generator(np.random.PCG64([base, index]))
        customers = CUSTOMERS[rng.integers(0, len(CUSTOMERS), count)]
        amounts = np.round(rng.random(count) * MAX_AMOUNT, 2)
        keys = [f"{prefix}{i:0{width}d}" for i in range(start, start + count)]
        yield pa.record_batch(
            [
                pa.array(keys, pa.string()),
                pa.array(customers, pa.int64()),
                pa.array(amounts, pa.float64()),
                pa.repeat(pa.scalar(iso, pa.string()), count),
            ],
            schema=contract.ARROW_SCHEMA,
        )


def generate_table(run_date: date, rows: int, seed: int = 0) -> pa.Table:
    """The whole day as one table: for tests and small days only."""
    return pa.Table.from_batches(list(generate(run_date, rows, seed)), contract.ARROW_SCHEMA)
