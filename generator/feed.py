"""Sample rows for any declared feed, deterministic, each value passing the feed's checks.

`generate(contract, run_date, rows, seed)` yields a day's rows as Arrow record batches of
the feed's schema (`Contract.arrow_schema`): the date column (and any column held to the
file's date) holds the run date; the key's columns are numbered so that keys are unique
and ascending (a composite key counts like a number whose digits are its columns, the
leading column the most significant, a trailing one cycling through a few values: order
1 with lines 1, 2 and 3); every other column is drawn within what its kind and checks
allow (`generator.domains`, `generator.values`), some of a nullable column's values null.
Where no key column is the file's date, an open-ended integer or text leading key carries
the day in its digits, so that each day's file adds rows, as transactions' does.

Deterministic as `generator.transactions` is: the same feed, date, rows and seed give the
same table in any process (seeds from SHA-256, never `hash()`), produced in batches of
`BATCH_ROWS`, each column from a stream of its own (a column added to the declaration
leaves the others' values as they were). A declaration it cannot satisfy raises
`SampleError`. The built-in transactions feed is written by `generator.transactions`, byte
for byte as before; this module writes no files.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa

from filedrop_etl.config.contract import Contract
from filedrop_etl.generator import transactions, values
from filedrop_etl.generator.domains import Domain, domain_of
from filedrop_etl.generator.patterns import SampleError

BATCH_ROWS = transactions.BATCH_ROWS
# Values a trailing key column of open-ended range cycles through under each value of the
# columns before it.
TRAILING = 3
# A text key's numbers are zero-padded to at least this many digits (as transactions').
MIN_WIDTH = 4


@dataclass(frozen=True)
class KeyLayout:
    """How row numbers become key values: each varying key column's radix (the leading
    one's: how many of its values the file uses), the width of its text, and the day
    code the leading column's numbers carry (0: none)."""

    domains: tuple[Domain, ...]
    radices: tuple[int, ...]
    day_code: int = 0
    # What the leading column adds to its numbers (an integer's min), so that its
    # day-coded values keep within their digits.
    lead_offset: int = 0

    def width(self, position: int) -> int:
        offset = self.lead_offset if position == 0 else 0
        width = max(MIN_WIDTH, len(str(self.radices[position] - 1 + offset)))
        return width + (8 if position == 0 and self.day_code else 0)

    def numbers(self, first: int, count: int) -> list[np.ndarray]:
        """Per varying key column, its numbers for rows `first` to `first + count`."""
        rest = np.arange(first, first + count, dtype=np.int64)
        out: list[np.ndarray] = []
        for radix in reversed(self.radices[1:]):
            rest, digit = np.divmod(rest, radix)
            out.append(digit)
        if self.day_code:
            rest = rest + self.day_code * 10 ** (self.width(0) - 8)
        return [rest, *reversed(out)]


def key_layout(contract: Contract, domains: dict[str, Domain], rows: int,
               run_date: date) -> KeyLayout:
    """The layout giving `rows` distinct keys; `SampleError` if the key cannot hold them."""
    varying = tuple(domains[k] for k in contract.key if domains[k].size() != 1)
    sizes = [d.size() for d in varying]
    if not varying:
        if rows > 1:
            raise SampleError(f"the key ({', '.join(contract.key)}) takes one value per "
                              f"file: a file of {rows} rows would repeat it",
                              hint="generate one row (--rows 1), or add a column to the key")
        return KeyLayout((), ())
    radices = [0, *(size if size is not None else TRAILING for size in sizes[1:])]
    lead = sizes[0]
    if lead is not None and math.ceil(rows / math.prod(radices[1:])) > lead:
        open_ended = [i for i, size in enumerate(sizes) if i and size is None]
        if open_ended:
            i = open_ended[-1]
            others = math.prod(radices[1:]) // radices[i]
            radices[i] = math.ceil(rows / (lead * others))
    radices[0] = max(1, math.ceil(rows / math.prod(radices[1:])))
    if lead is not None and radices[0] > lead:
        raise SampleError(f"the key ({', '.join(contract.key)}) allows at most "
                          f"{lead * math.prod(radices[1:]):,} distinct values in a file, "
                          f"fewer than the {rows:,} rows asked for",
                          hint="ask for fewer rows, or widen a key column's min/max or one_of")
    first = varying[0]
    dated = any(domains[k].file_date for k in contract.key)
    carries_day = (not dated and lead is None and not first.date_prefix
                   and first.column.kind in ("integer", "string"))
    day_code = int(run_date.strftime("%m%d")) + run_date.year * 10_000 if carries_day else 0
    offset = first.low if carries_day and isinstance(first.low, int) else 0
    return KeyLayout(varying, tuple(radices), day_code, max(offset, 0))


def generate(contract: Contract, run_date: date, rows: int,
             seed: int = 0) -> Iterator[pa.RecordBatch]:
    """Yield `rows` rows of `contract` for `run_date` in batches of at most `BATCH_ROWS`."""
    if rows < 0:
        raise ValueError("rows must not be negative")
    if contract.builtin:
        yield from transactions.generate(run_date, rows, seed)
        return
    base = transactions.digest64(f"{contract.name}|{seed}|{run_date.isoformat()}")
    domains = {c.name: domain_of(contract, c, run_date) for c in contract.columns}
    layout = key_layout(contract, domains, rows, run_date)
    keyed = {d.name: i for i, d in enumerate(layout.domains)}
    codes = {c.name: transactions.digest64(c.name) for c in contract.columns}
    pools = {d.name: values.candidates(d, run_date, np.random.Generator(
                 np.random.PCG64([base, codes[d.name]])))
             for d in domains.values()
             if d.column.kind == "string" and d.name not in keyed and d.choices is None
             and not d.file_date}
    schema = contract.arrow_schema
    for index, start in enumerate(range(0, rows, BATCH_ROWS)):
        count = min(BATCH_ROWS, rows - start)
        numbers = layout.numbers(start, count)
        arrays = []
        for column in contract.columns:
            domain = domains[column.name]
            if column.name in keyed:
                position = keyed[column.name]
                arrays.append(values.numbered(domain, numbers[position], run_date,
                                              layout.width(position)))
            elif column.name in contract.key:
                arrays.append(values.numbered(domain, np.zeros(count, np.int64), run_date))
            else:
                rng = np.random.Generator(np.random.PCG64([base, index, codes[column.name]]))
                arrays.append(values.drawn(domain, rng, count, run_date,
                                           pools.get(column.name)))
        yield pa.record_batch(arrays, schema=schema)


def generate_table(contract: Contract, run_date: date, rows: int, seed: int = 0) -> pa.Table:
    """The whole day as one table: for tests and small days only."""
    return pa.Table.from_batches(list(generate(contract, run_date, rows, seed)),
                                 contract.arrow_schema)
