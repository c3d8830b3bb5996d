"""Reading a producer's Parquet file as a stream of contract-shaped record batches.

Producers use many writers and versions, so the contract names a kind per column and
this module accepts every physical type that holds it losslessly enough (large and
dictionary strings, any integer width, float32 and decimals for amounts, Parquet dates
for `run_date`) and casts each batch to the contract's types. What it cannot accept it
reports as one readable column diff. Extra columns are not read: the caller is told of
them and decides. A value or row larger than the database can store is refused here,
before it is cast or staged, naming the column and the limit. Running out of memory is
never taken for a corrupt file: `MemoryError` passes through for the caller to retry.
Rows are never materialised whole: batches stream from the file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filedrop_etl.config.contract import Column, ColumnKind, Contract
from filedrop_etl.daemon import files
from filedrop_etl.daemon.errors import BadInput, ContractError

BATCH_ROWS = 64 * 1024
# SQLite's default SQLITE_MAX_LENGTH: the most bytes one value, or one row's record, may
# hold. The daemon passes the limit its own connection reports.
MAX_LENGTH = 1_000_000_000
# Bytes a fact row's record takes beyond its strings: the header, the integer and the
# float, `loaded_at` and `load_id`; generous, so that a row refused here is never one
# SQLite could have stored.
ROW_OVERHEAD_BYTES = 256


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t))


_ACCEPTS: dict[ColumnKind, tuple[str, Callable[[pa.DataType], bool]]] = {
    "string": ("a string", _is_string),
    "integer": ("an integer", pa.types.is_integer),
    "float": ("a number", lambda t: bool(pa.types.is_floating(t) or pa.types.is_decimal(t)
                                         or pa.types.is_integer(t))),
    "date": ("a YYYY-MM-DD string or a date", lambda t: bool(
        _is_string(t) or pa.types.is_date32(t) or pa.types.is_date64(t))),
}


class ValueTooLarge(BadInput):
    """A value, or a row, larger than the database can store."""


@dataclass(frozen=True)
class ParquetSource:
    """An opened Parquet file whose schema satisfies the contract."""

    file: pq.ParquetFile
    contract: Contract
    rows: int
    extra_columns: tuple[str, ...]
    max_length: int = MAX_LENGTH

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Contract columns only, cast to the contract's types, in file order."""
        offset = 0
        try:
            for batch in self.file.iter_batches(
                batch_size=BATCH_ROWS, columns=list(self.contract.column_names),
                use_threads=False,
            ):
                _refuse_oversized(batch, self.max_length, offset, self.contract)
                offset += batch.num_rows
                yield _conform(batch, self.contract)
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
    texts = {c.name: batch.column(c.name) for c in contract.columns
             if _is_string(_values_type(batch.column(c.name).type))}
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


def schema_problems(schema: pa.Schema, contract: Contract) -> list[str]:
    """The column diff between a file's schema and the contract; empty when it conforms."""
    problems = []
    for column in contract.columns:
        found = schema.get_all_field_indices(column.name)
        expected, accepts = _ACCEPTS[column.kind]
        if not found:
            problems.append(f"missing column {column.name!r} (expected {expected})")
        elif len(found) > 1:
            problems.append(f"column {column.name!r} appears {len(found)} times")
        elif not accepts(_values_type(actual := schema.field(found[0]).type)):
            problems.append(f"column {column.name!r} is {actual}, expected {expected}")
    return problems


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
        framing = files.parquet_framing(handle)
        if framing.cut_short:
            raise BadInput(
                f"not a readable Parquet file: truncated, it begins as Parquet but has no "
                f"footer at its end ({framing.size} bytes): {exc}",
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
    extra = tuple(n for n in schema.names if n not in contract.column_names)
    return ParquetSource(parquet, contract, parquet.metadata.num_rows, extra, max_length)


def _cast(array: pa.Array[Any], column: Column) -> pa.Array[Any]:
    if isinstance(array, pa.DictionaryArray):
        array = array.dictionary_decode()
    source = array.type
    if column.kind == "date" and (pa.types.is_date32(source) or pa.types.is_date64(source)):
        # A Parquet DATE casts to the ISO form the contract stores.
        return array.cast(pa.date32()).cast(pa.string())
    if column.kind == "float" and pa.types.is_decimal(source):
        # Through the decimal's text: a direct cast can land one ulp off (894.06 becomes
        # 894.0600000000001), and the same value re-sent as a float would then count
        # as a change.
        array = array.cast(pa.string())
    try:
        # safe=True: an out-of-range integer or a fractional value is an error, not a wrap.
        result = array.cast(column.arrow_type, safe=True)
    except pa.ArrowInvalid as exc:
        raise ContractError([f"column {column.name!r} has values that do not fit "
                             f"{column.arrow_type}: {exc}"]) from exc
    if pa.types.is_string(result.type):
        try:
            # Parquet does not guarantee valid UTF-8; Python needs it for every value.
            result.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise BadInput(f"column {column.name!r} holds text that is not valid UTF-8",
                           hint="have the producer write its strings as UTF-8") from exc
    return result


def _conform(batch: pa.RecordBatch, contract: Contract) -> pa.RecordBatch:
    arrays = [_cast(batch.column(c.name), c) for c in contract.columns]
    return pa.RecordBatch.from_arrays(arrays, names=list(contract.column_names))
