"""Reading a producer's Parquet file as a stream of contract-shaped record batches.

Opens the file, compares its columns with the feed's (one readable column diff of
everything wrong, a missing column named beside the undeclared ones that resemble it),
and streams its batches cast to the feed's types (`daemon.load.kinds` says what each
kind accepts). A declared column that may be absent (nullable, or with a default) and
that the file lacks is filled: files written before the column was declared still load.
Columns the feed does not declare are not read: with `undeclared_columns = "ignore"` the
caller is told of them, with `"fail"` they fail the file (a pandas index is the writer's
packaging, never undeclared). A value or row larger than the database can store is
refused here, before it is cast or staged, naming the column and the limit. Running out
of memory is never taken for a corrupt file: `MemoryError` passes through for the caller
to retry. Rows are never materialised whole: batches stream from the file.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon import framing
from filedrop_etl.daemon.errors import BadInput, ContractError, key_text
from filedrop_etl.daemon.load import kinds

BATCH_ROWS = 64 * 1024
# SQLite's default SQLITE_MAX_LENGTH: the most bytes one value, or one row's record, may
# hold. The daemon passes the limit its own connection reports.
MAX_LENGTH = 1_000_000_000
# Bytes a fact row's record takes beyond its strings: the header, the integer and the
# float, `loaded_at` and `load_id`; generous, so that a row refused here is never one
# SQLite could have stored.
ROW_OVERHEAD_BYTES = 256


class ValueTooLarge(BadInput):
    """A value, or a row, larger than the database can store."""


@dataclass(frozen=True)
class ParquetSource:
    """An opened Parquet file whose schema satisfies the contract."""

    file: pq.ParquetFile
    contract: Contract
    rows: int
    # The file's columns the feed does not declare (a pandas index among them): not read.
    extra_columns: tuple[str, ...]
    max_length: int = MAX_LENGTH
    # Declared columns the file lacks, which may be absent: filled with null or default.
    filled_columns: tuple[str, ...] = ()

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Contract columns only, cast to the contract's types, in file order."""
        offset = 0
        read = [n for n in self.contract.column_names if n not in self.filled_columns]
        try:
            for batch in self.file.iter_batches(batch_size=BATCH_ROWS, columns=read,
                                                use_threads=False):
                _refuse_oversized(batch, self.max_length, offset, self.contract)
                yield _conform(batch, self.contract, self.filled_columns, offset)
                offset += batch.num_rows
        except MemoryError:
            raise  # pyarrow's ArrowMemoryError is an ArrowException too: not the file's fault
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise BadInput(
                f"the Parquet data cannot be read: {exc}",
                hint="the file is corrupt or truncated; have the producer write it again",
            ) from exc


def _byte_lengths(array: pa.Array[Any]) -> pa.Array[Any]:
    """Each text value's length in bytes (null for a null)."""
    values = array.dictionary if isinstance(array, pa.DictionaryArray) else array
    if pa.types.is_string_view(values.type):
        values = values.cast(pa.large_string())  # no length kernel for views (pyarrow 26)
    # Called by name: the stubs know `binary_length` only for a few of the string types.
    lengths = cast("pa.Array[Any]", pc.call_function("binary_length", [values]))
    return lengths.take(array.indices) if isinstance(array, pa.DictionaryArray) else lengths


def _refuse_oversized(batch: pa.RecordBatch, limit: int, offset: int,
                      contract: Contract) -> None:
    """`ValueTooLarge` for a text value, or a row, over `limit` bytes: SQLite refuses
    them (SQLITE_TOOBIG), and a refusal deep in the staging driver says neither which
    column nor which limit. Numbers and dates have fixed widths; only text can grow."""
    texts = {name: batch.column(name) for name in batch.schema.names
             if kinds.is_string(_values_type(batch.column(name).type))}
    lengths = {name: _byte_lengths(values) for name, values in texts.items()}
    longest = {name: pc.max(values).as_py() or 0 for name, values in lengths.items()}
    for name, size in longest.items():
        if size > limit:
            row = offset + pc.index(lengths[name], size).as_py()
            raise ValueTooLarge(
                f"column {name!r} holds a value of {size:,} bytes (row {row}); the database "
                f"stores at most {limit:,} bytes in one value",
                hint=f"have the producer keep {name} values short, then drop the file again")
    if sum(longest.values()) + ROW_OVERHEAD_BYTES <= limit:
        return  # even the longest values side by side fit: no row can be too large
    totals = pc.add(functools.reduce(pc.add, (v.fill_null(0) for v in lengths.values())),
                    ROW_OVERHEAD_BYTES)
    size = pc.max(totals).as_py()
    if size > limit:
        row = offset + pc.index(totals, size).as_py()
        raise ValueTooLarge(
            f"row {row} needs {size:,} bytes (its {' and '.join(texts)} with the rest of the row); "
            f"the database stores at most {limit:,} bytes in one row",
            hint="have the producer keep its text values short, then drop the file again")


def _values_type(t: pa.DataType) -> pa.DataType:
    """What a column holds: dictionary encoding (pandas' categoricals) is only packaging."""
    return t.value_type if isinstance(t, pa.DictionaryType) else t


def pandas_index(schema: pa.Schema) -> tuple[str, ...]:
    """The columns pandas wrote for its index (`__index_level_0__`, or the index's name),
    from the metadata it leaves; a range index is stored as metadata only."""
    try:
        written = json.loads((schema.metadata or {}).get(b"pandas", b"{}"))
        named = written.get("index_columns", [])
    except (ValueError, AttributeError):
        return ()
    return tuple(n for n in named if isinstance(n, str)) if isinstance(named, list) else ()


def undeclared(schema: pa.Schema, contract: Contract) -> tuple[str, ...]:
    """The file's columns the feed does not declare, in file order."""
    return tuple(dict.fromkeys(n for n in schema.names if n not in contract.column_names))


def schema_problems(schema: pa.Schema, contract: Contract) -> list[str]:
    """The column diff between a file's schema and the contract; empty when it conforms."""
    problems = []
    extra = undeclared(schema, contract)
    for column in contract.columns:
        found = schema.get_all_field_indices(column.name)
        expected, accepts = kinds.ACCEPTS[column.kind]
        if not found and not column.may_be_absent:
            problems.append(f"missing column {column.name!r} (expected {expected}"
                            f"{_resembling(column.name, extra)})")
        elif len(found) > 1:
            problems.append(f"column {column.name!r} appears {len(found)} times")
        elif found and not accepts(_values_type(actual := schema.field(found[0]).type)):
            problems.append(f"column {column.name!r} is {actual}, expected {expected}")
    if contract.undeclared_columns == "fail":
        index = pandas_index(schema)
        problems.extend(f"undeclared column {n!r} (the feed's undeclared_columns is "
                        f'"fail": declare it, or have the producer leave it out)'
                        for n in extra if n not in index)
    return problems


def _resembling(name: str, extra: tuple[str, ...]) -> str:
    """`; the file has undeclared 'customer'`: the file's undeclared columns whose names
    are close to a missing one's (a rename or a typo), by `difflib`, ignoring case."""
    lowered = {n.lower(): n for n in reversed(extra)}
    close = [lowered[n] for n in difflib.get_close_matches(name.lower(), lowered, n=3)]
    return f"; the file has undeclared {' and '.join(map(repr, close))}" if close else ""


def open_parquet(handle: BinaryIO, contract: Contract,
                 max_length: int = MAX_LENGTH) -> ParquetSource:
    """Parse the footer and check the schema; `BadInput`/`ContractError` say what is wrong.
    `max_length` is the most bytes the database stores in one value or row."""
    try:
        # pre_buffer=False: read-ahead of whole row groups pays off on object stores, and
        # here only adds resident memory.
        parquet = pq.ParquetFile(handle, pre_buffer=False)
        schema = parquet.schema_arrow
    except MemoryError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        # pyarrow's error reads the same for a CSV and for a Parquet file that lost its
        # end; the producer needs to know which of the two it sent.
        frame = framing.parquet_framing(handle)
        if frame.cut_short:
            raise BadInput(
                f"not a readable Parquet file: truncated, it begins as Parquet but has no "
                f"footer at its end ({frame.size} bytes): {exc}",
                hint="the file was cut short in transfer or taken before it was complete; "
                "publish the whole file by rename, then drop it again",
            ) from exc
        raise BadInput(
            f"not a readable Parquet file: {exc}",
            hint="drop a complete Parquet file; a truncated or non-Parquet file cannot load",
        ) from exc
    problems = schema_problems(schema, contract)
    if problems:
        raise ContractError(problems)
    absent = tuple(n for n in contract.column_names if n not in schema.names)
    return ParquetSource(parquet, contract, parquet.metadata.num_rows,
                         undeclared(schema, contract), max_length, absent)


def _conform(batch: pa.RecordBatch, contract: Contract, filled: tuple[str, ...],
             offset: int) -> pa.RecordBatch:
    """`batch` with the contract's columns in its order and types, absent ones filled;
    `offset` is the file row of its first."""
    def where(index: int) -> str:
        values = [batch.column(k)[index].as_py() if k in batch.schema.names else None
                  for k in contract.key]
        return f"{key_text(values, offset + index)} (row {offset + index})"
    # Date text held to the file's date needs no proof here: the check names those rows.
    held = {c.column for c in contract.checks if c.kind == "equals_file_date"}
    arrays = [kinds.filler(c, batch.num_rows) if c.name in filled
              else kinds.conform(batch.column(c.name), c, where,
                                 check_dates=c.name not in held)
              for c in contract.columns]
    return pa.RecordBatch.from_arrays(arrays, names=list(contract.column_names))
