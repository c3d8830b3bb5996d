"""Data-quality checks over one file's own rows, interpreted from its contract's `checks`.

Row rules (not-null, minimum, finite, run date equals the file's, key prefix) are
evaluated on each Arrow batch as it streams into staging, so their cost grows with the
file and never with the fact table's history, and NaN stays distinguishable from NULL
(SQLite would store both as NULL). Uniqueness spans batches, so it is proven here for
free when a column's values arrive strictly ascending (date-prefixed keys do); only
otherwise does the store count repeats in staging and hand the result here. The same
pass tells the merge whether the keys arrive sorted. This module computes verdicts; it
does not read files or touch the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import pandas  # noqa: F401  (see below)
import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.contract import Check, Contract, key_prefix
from filedrop_etl.daemon.errors import CheckFailure, ChecksFailed

SAMPLE_KEYS = 5
# pyarrow imports pandas on its first compute call when pandas is installed: the import
# above moves that 0.4 s from the first file a daemon loads to its start-up.


def _text(value: object) -> str | None:
    """A sample value as the sidecar and the messages carry it: text, None for a null."""
    return None if value is None else str(value)


class FileChecks:
    """Accumulates check results over the batches of one file."""

    def __init__(self, run_date: str, contract: Contract,
                 checks: Sequence[Check] | None = None) -> None:
        self.run_date, self.contract = run_date, contract
        self.checks = tuple(contract.checks if checks is None else checks)
        self.failures: dict[str, CheckFailure] = {c.name: CheckFailure(c.name, 0)
                                                  for c in self.checks}
        self.rows = 0
        # Per column whose order matters (the key, and any column declared unique): still
        # strictly ascending so far, and the last value seen.
        tracked = (contract.key[0], *(c.column for c in self.checks if c.kind == "unique"))
        self._ascending = dict.fromkeys(tracked, True)
        self._last: dict[str, Any] = {}
        # Unique columns whose repeats were counted already (`record_duplicates`).
        self._counted: set[str] = set()

    def _bad_rows(self, check: Check, batch: pa.RecordBatch) -> pa.BooleanArray | None:
        """A boolean mask of the rows that break `check`, or None for non-row checks."""
        values = batch.column(check.column)
        mask: pa.BooleanArray
        match check.kind:
            case "not_null":
                mask = pc.is_null(values)
            case "min":
                mask = pc.less(values, pa.scalar(check.value, values.type))
            case "finite":
                mask = pc.invert(pc.is_finite(values))
            case "equals_file_date":
                mask = pc.not_equal(values, pa.scalar(self.run_date, values.type))
            case "file_date_prefix":
                mask = pc.invert(pc.starts_with(values, key_prefix(self.run_date)))
            case "unique":
                return None
        # A null value breaks only `not_null`, never a comparison.
        return cast(pa.BooleanArray, mask.fill_null(False))

    def observe(self, batch: pa.RecordBatch) -> None:
        """Evaluate every row check on `batch`, keeping counts and a few sample keys."""
        keys = batch.column(self.contract.key[0])
        for check in self.checks:
            mask = self._bad_rows(check, batch)
            if mask is None:
                continue
            bad = mask.true_count
            if bad:
                failure = self.failures[check.name]
                room = SAMPLE_KEYS - len(failure.sample_keys)
                if room > 0:
                    values = batch.column(check.column)
                    for index in pc.indices_nonzero(mask)[:room].to_pylist():
                        assert index is not None
                        key = keys[index].as_py()
                        failure.sample_keys.append(
                            key if key is not None else f"<null key, row {self.rows + index}>"
                        )
                        failure.sample_values.append(_text(values[index].as_py()))
                failure.failed_rows += bad
        for column, ascending in self._ascending.items():
            if ascending:
                self._ascending[column] = self._still_ascending(column, batch.column(column))
        self.rows += batch.num_rows

    def observing(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Pass `batches` through, observing each on its way."""
        for batch in batches:
            self.observe(batch)
            yield batch

    def _still_ascending(self, column: str, values: pa.Array[Any]) -> bool:
        if values.null_count or len(values) == 0:
            return len(values) == 0
        first, last = values[0].as_py(), values[-1].as_py()
        # Python orders str by code point, as Arrow and SQLite order UTF-8 by byte.
        if column in self._last and not self._last[column] < first:
            return False
        self._last[column] = last
        return len(values) == 1 or bool(pc.all(pc.less(values[:-1], values[1:])).as_py())

    def ascending(self, column: str) -> bool:
        """Whether every value of `column` so far was greater than the one before."""
        return self._ascending.get(column, False)

    def record_duplicates(self, column: str, rows: int, sample_keys: Sequence[str]) -> None:
        """Take the store's count of surplus rows under repeated keys for `unique` checks;
        the repeated value is the sample (for the key itself, the key)."""
        self._counted.add(column)
        for check in self.checks:
            if check.kind == "unique" and check.column == column:
                failure = self.failures[check.name]
                failure.failed_rows = rows
                failure.sample_keys = list(sample_keys[:SAMPLE_KEYS])
                failure.sample_values = list(failure.sample_keys)

    def counted(self, column: str) -> bool:
        """Whether the repeats of `column` were counted (`record_duplicates`)."""
        return column in self._counted

    def unique_columns_to_count(self) -> tuple[str, ...]:
        """Columns declared unique whose values did not arrive strictly ascending and
        whose repeats nobody counted yet: the store must count them."""
        return tuple(c.column for c in self.checks if c.kind == "unique"
                     and not self.ascending(c.column) and not self.counted(c.column))

    def raise_for_failures(self) -> None:
        """Raise `ChecksFailed` listing every failed check, in declaration order."""
        failed = [f for f in self.failures.values() if f.failed_rows]
        if failed:
            raise ChecksFailed(failed)
