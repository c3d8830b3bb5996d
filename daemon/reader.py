"""Reading a producer's Parquet file as a stream of contract-shaped record batches.

Producers use many writers and versions, so the contract names a kind per column and
this module accepts every physical type that holds it losslessly enough (large and
dictionary strings, any integer width, float32 and decimals for amounts, Parquet dates
for `run_date`) and casts each batch to the contract's types. What it cannot accept it
reports as one readable column diff. Extra columns are not read: the caller is told of
them and decides. Rows are never materialised whole: batches stream from the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from config import contract
from config.contract import Column, ColumnKind
from daemon import files
from daemon.errors import BadInput, ContractError

BATCH_ROWS = 64 * 1024


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


@dataclass(frozen=True)
class ParquetSource:
    """An opened Parquet file whose schema satisfies the contract."""

    file: pq.ParquetFile
    rows: int
    extra_columns: tuple[str, ...]

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Contract columns only, cast to the contract's types, in file order."""
        try:
            for batch in self.file.iter_batches(
                batch_size=BATCH_ROWS, columns=list(contract.COLUMN_NAMES), use_threads=False
            ):
                yield _conform(batch)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise BadInput(
                f"the Parquet data cannot be read: {exc}",
                hint="the file is corrupt or truncated; have the producer write it again",
            ) from exc


def _values_type(t: pa.DataType) -> pa.DataType:
    """What a column holds: dictionary encoding (pandas' categoricals) is only packaging."""
    return t.value_type if isinstance(t, pa.DictionaryType) else t


def schema_problems(schema: pa.Schema) -> list[str]:
    """The column diff between a file's schema and the contract; empty when it conforms."""
    problems = []
    for column in contract.COLUMNS:
        found = schema.get_all_field_indices(column.name)
        expected, accepts = _ACCEPTS[column.kind]
        if not found:
            problems.append(f"missing column {column.name!r} (expected {expected})")
        elif len(found) > 1:
            problems.append(f"column {column.name!r} appears {len(found)} times")
        elif not accepts(_values_type(actual := schema.field(found[0]).type)):
            problems.append(f"column {column.name!r} is {actual}, expected {expected}")
    return problems


def open_parquet(handle: BinaryIO) -> ParquetSource:
    """Parse the footer and check the schema; `BadInput`/`ContractError` say what is wrong."""
    try:
        # pre_buffer=False: read-ahead of whole row groups pays off on object stores, and
        # here only adds resident memory.
        parquet = pq.ParquetFile(handle, pre_buffer=False)
        schema = parquet.schema_arrow
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
    problems = schema_problems(schema)
    if problems:
        raise ContractError(problems)
    extra = tuple(n for n in schema.names if n not in contract.COLUMN_NAMES)
    return ParquetSource(parquet, parquet.metadata.num_rows, extra)


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


def _conform(batch: pa.RecordBatch) -> pa.RecordBatch:
    arrays = [_cast(batch.column(c.name), c) for c in contract.COLUMNS]
    return pa.RecordBatch.from_arrays(arrays, names=list(contract.COLUMN_NAMES))
