"""The PostgreSQL staging: one file's rows streamed by binary COPY into a temporary table.

Each session has one temporary table per feed (made on the feed's first load there,
`ON COMMIT DELETE ROWS`), so a busy server's catalogs are not churned by a table per
file: `filedrop_staged` for the built-in feed, as before feeds; for a declared one, a
name that a digest of the feed's name and columns makes unique (a feed's name may be
longer than an identifier, and a session outlives no declaration, but a test's may).
Each column is staged in its fact table's own type, nullable. The rows go in by `COPY
... FROM STDIN (FORMAT BINARY)`, each Arrow record batch encoded by `pgpq` without a
Python loop over its rows (decimal128 as `numeric`, bool as `boolean`, a UTC timestamp
as `timestamptz`), inside the file's own transaction; `ANALYZE` follows, as autovacuum
never analyzes temporary tables. Text dates become `date` in Arrow first; one that is
not a date stages as null, for the checks to refuse. A decimal or a timestamp of
another width, unit or zone is cast to the declared one (the reader casts already). An
error of the source (the reader's, a bad file) is re-raised as it was, not as the COPY's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pgpq
import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.contract import Column, Contract
from filedrop_etl.daemon.warehouse.batches import BatchSource
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.postgresql.types import declared_type
from filedrop_etl.daemon.warehouse.sql import q

BUILTIN_TABLE = "filedrop_staged"


def _definitions(contract: Contract) -> str:
    return ", ".join(f"{q(c.name)} {declared_type(c)}" for c in contract.columns)


def table(contract: Contract) -> str:
    """The session's staging table of the feed, quoted."""
    if contract.builtin:
        return q(BUILTIN_TABLE)
    digest = hashlib.sha256(f"{contract.name}\n{_definitions(contract)}".encode())
    return q(f"{BUILTIN_TABLE}_{digest.hexdigest()[:16]}")


def ensure_table(conn: Connection, contract: Contract) -> None:
    """The session's staging table of the feed, made on its first load there."""
    conn.execute(stmt(f"CREATE TEMPORARY TABLE IF NOT EXISTS {table(contract)} "
                      f"({_definitions(contract)}) ON COMMIT DELETE ROWS"))


def _arrow_type(column: Column) -> pa.DataType:
    return pa.date32() if column.kind == "date" else column.arrow_type


def _schema(contract: Contract) -> pa.Schema:
    return pa.schema([pa.field(c.name, _arrow_type(c)) for c in contract.columns])


def _for_postgres(batch: pa.RecordBatch, contract: Contract, schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for column, field in zip(contract.columns, schema, strict=True):
        values = batch.column(column.name)
        if column.kind == "date" and not pa.types.is_date32(values.type):
            parsed = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
            values = pc.cast(parsed, pa.date32())
        elif values.type != field.type:
            values = pc.cast(values, field.type)
        arrays.append(values)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def copy_in(conn: Connection, contract: Contract, batches: Iterable[pa.RecordBatch]) -> int:
    """Stream `batches` into the session's staging table of the feed (inside the
    caller's transaction); the rows staged."""
    schema = _schema(contract)
    encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
    columns = ", ".join(q(c.name) for c in contract.columns)
    staged = table(contract)
    source = BatchSource(batches)
    try:
        with conn.cursor() as cursor, cursor.copy(
                stmt(f"COPY {staged} ({columns}) FROM STDIN WITH (FORMAT BINARY)")) as copy:
            copy.write(encoder.write_header())
            for batch in source:
                copy.write(encoder.write_batch(_for_postgres(batch, contract, schema)))
            copy.write(encoder.finish())
    except BaseException:
        if source.error is None:
            raise
    if source.error is not None:
        # Outside the handler: the source's error keeps its own cause and context.
        raise source.error
    conn.execute(stmt(f"ANALYZE {staged}"))
    return source.rows
