"""Data-quality checks over one file's own rows, interpreted from its contract's `checks`.

Row rules (not null, min, max, finite, one of a set, matches a pattern, max length, run
date equals the file's, key prefix) are evaluated on each Arrow batch as it streams into
staging, so their cost grows with the file and never with the fact table's history, and
NaN stays distinguishable from NULL (SQLite would store both as NULL). A null breaks only
`not_null`. A bound or a member of a set is read in its column's terms
(`kinds.scalar_of`: a date's or a timestamp's as ISO text); `matches` holds the whole
value to an RE2 pattern (Arrow's regex dialect); `max_length` counts characters.
Uniqueness spans batches and the key's columns together, so it is proven here for free
when the key tuples arrive strictly ascending (date-prefixed keys do); only otherwise
does the store count repeats in staging (`Staged.surplus_rows`) and hand the result here.
The same pass tells the merge whether the keys arrive sorted. A row's key, in samples
and messages, is its columns' values joined with ", ". A failure carries its rule's id and
the rule in words for the file's date (`config.check_words`). This module computes
verdicts; it does not read files or touch the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import pandas  # noqa: F401  (see below)
import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.check_words import rule_words
from filedrop_etl.config.contract import Check, Contract, key_prefix
from filedrop_etl.daemon.errors import CheckFailure, ChecksFailed, key_text, value_text
from filedrop_etl.daemon.load.kinds import scalar_of

SAMPLE_KEYS = 5
# pyarrow imports pandas on its first compute call when pandas is installed: the import
# above moves that 0.4 s from the first file a daemon loads to its start-up.


Columns = tuple[str, ...]


def fullmatch(pattern: str) -> str:
    """`pattern` anchored at both ends of the value (RE2: `\\z` is the very end)."""
    return rf"\A(?:{pattern})\z"


class FileChecks:
    """Accumulates check results over the batches of one file."""

    def __init__(self, run_date: str, contract: Contract,
                 checks: Sequence[Check] | None = None) -> None:
        self.run_date, self.contract = run_date, contract
        self.checks = tuple(contract.checks if checks is None else checks)
        # Each keyed by the rule's id, and saying the rule in words for this file's date.
        self.failures: dict[str, CheckFailure] = {
            c.name: CheckFailure(c.name, 0, rule=rule_words(c, run_date)) for c in self.checks}
        self.rows = 0
        # Per column tuple whose order matters (the key, and any declared unique): still
        # strictly ascending so far, and the last tuple seen.
        tracked = (contract.key, *(c.columns for c in self.checks if c.kind == "unique"))
        self._ascending = dict.fromkeys(tracked, True)
        self._last: dict[Columns, tuple[Any, ...]] = {}
        # Column tuples declared unique whose repeats were counted (`record_duplicates`).
        self._counted: set[Columns] = set()
        # Each rule's declared values in its column's terms, read once.
        self._operands = {c.name: self._operand(c) for c in self.checks}

    def _operand(self, check: Check) -> Any:
        """What a rule compares with: a bound, a set, a pattern or a length; None."""
        if check.column not in self.contract.column_names:
            return None
        column = self.contract.column(check.column)
        match check.kind:
            case "min" | "max":
                assert check.value is not None
                return scalar_of(column, check.value)
            case "one_of":
                members = [scalar_of(column, v) for v in check.values]
                # A member the column's type can not hold can never match: left out.
                return pa.array([m.as_py() for m in members if _fits(m, column.arrow_type)],
                                column.arrow_type)
            case "matches":
                return fullmatch(str(check.value))
            case "max_length":
                return check.value
        return None

    def _bad_rows(self, check: Check, batch: pa.RecordBatch) -> pa.BooleanArray | None:
        """A boolean mask of the rows that break `check`, or None for non-row checks."""
        values = batch.column(check.column)
        operand = self._operands[check.name]
        mask: Any
        match check.kind:
            case "not_null":
                mask = pc.is_null(values)
            case "min":
                mask = pc.less(values, operand if operand is not None
                               else pa.scalar(check.value, values.type))
            case "max":
                mask = pc.greater(values, operand if operand is not None
                                  else pa.scalar(check.value, values.type))
            case "finite":
                mask = pc.invert(pc.is_finite(values))
            case "one_of":
                # `is_in` calls a null a non-member: a null breaks only `not_null`.
                mask = pc.and_(pc.invert(pc.is_in(values, value_set=operand)),
                               pc.is_valid(values))
            case "matches":
                mask = pc.invert(pc.match_substring_regex(values, pattern=operand))
            case "max_length":
                # Called by name: the stubs know `utf8_length` only for some string types.
                mask = pc.greater(pc.call_function("utf8_length", [values]), operand)
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
        keys = [batch.column(k) for k in self.contract.key]
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
                        failure.sample_keys.append(
                            key_text([k[index].as_py() for k in keys], self.rows + index))
                        failure.sample_values.append(value_text(values[index].as_py()))
                failure.failed_rows += bad
        for columns, ascending in self._ascending.items():
            if ascending:
                self._ascending[columns] = self._still_ascending(
                    columns, [batch.column(c) for c in columns])
        self.rows += batch.num_rows

    def observing(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Pass `batches` through, observing each on its way."""
        for batch in batches:
            self.observe(batch)
            yield batch

    def _still_ascending(self, columns: Columns, arrays: list[pa.Array[Any]]) -> bool:
        rows = len(arrays[0])
        if any(a.null_count for a in arrays) or rows == 0:
            return rows == 0
        first = tuple(a[0].as_py() for a in arrays)
        # Python orders str by code point, as Arrow and SQLite order UTF-8 by byte, and
        # tuples column by column, as a composite key's index does.
        if columns in self._last and not self._last[columns] < first:
            return False
        self._last[columns] = tuple(a[-1].as_py() for a in arrays)
        return rows == 1 or bool(pc.all(tuples_ascend(arrays)).as_py())

    def ascending(self, columns: Columns) -> bool:
        """Whether every tuple of `columns` so far was greater than the one before."""
        return self._ascending.get(columns, False)

    def record_duplicates(self, columns: Columns, rows: int,
                          sample_keys: Sequence[str]) -> None:
        """Take the store's count of surplus rows under repeated tuples of `columns` for
        `unique` checks over them; the repeated tuple (as one text: its values joined
        with ", ") is the sample, and the key."""
        self._counted.add(columns)
        for check in self.checks:
            if check.kind == "unique" and check.columns == columns:
                failure = self.failures[check.name]
                failure.failed_rows = rows
                failure.sample_keys = list(sample_keys[:SAMPLE_KEYS])
                failure.sample_values = list(failure.sample_keys)

    def counted(self, columns: Columns) -> bool:
        """Whether the repeats of `columns` were counted (`record_duplicates`)."""
        return columns in self._counted

    def unique_columns_to_count(self) -> tuple[Columns, ...]:
        """Column tuples declared unique whose tuples did not arrive strictly ascending
        and whose repeats nobody counted yet: the store must count them."""
        return tuple(c.columns for c in self.checks if c.kind == "unique"
                     and not self.ascending(c.columns) and not self.counted(c.columns))

    def raise_for_failures(self) -> None:
        """Raise `ChecksFailed` listing every failed check, in declaration order."""
        failed = [f for f in self.failures.values() if f.failed_rows]
        if failed:
            raise ChecksFailed(failed)


def tuples_ascend(arrays: Sequence[pa.Array[Any]]) -> pa.BooleanArray:
    """Per neighbouring rows of the column arrays together: whether the later row's tuple
    is greater than the earlier's (compared column by column, as a key index orders)."""
    before, after = [a[:-1] for a in arrays], [a[1:] for a in arrays]
    ascends: Any = pc.less(before[-1], after[-1])
    for earlier, later in zip(reversed(before[:-1]), reversed(after[:-1]), strict=True):
        ascends = pc.or_(pc.less(earlier, later),
                         pc.and_(pc.equal(earlier, later), ascends))
    return cast(pa.BooleanArray, ascends)


def _fits(value: pa.Scalar[Any], arrow_type: pa.DataType) -> bool:
    try:
        value.cast(arrow_type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True
