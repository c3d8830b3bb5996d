"""The PostgreSQL staging: one file's rows streamed by binary COPY into a temporary table.

Each session has one temporary table (`filedrop_staged`, made once, `ON COMMIT DELETE
ROWS`), so a busy server's catalogs are not churned by a table per file. The rows go in
by `COPY ... FROM STDIN (FORMAT BINARY)`, each Arrow record batch encoded by `pgpq`
without a Python loop over its rows, inside the file's own transaction; `ANALYZE`
follows, as autovacuum never analyzes temporary tables. Text dates become `date` in
Arrow first; one that is not a date stages as null, for the checks to refuse. An error
of the source (the reader's, a bad file) is re-raised as it was, not as the COPY's.
"""

from __future__ import annotations

from collections.abc import Iterable

import pgpq
import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.warehouse.batches import BatchSource
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.postgresql.types import column_type
from filedrop_etl.daemon.warehouse.sql import q

TABLE = q("filedrop_staged")


def ensure_table(conn: Connection, contract: Contract) -> None:
    """The session's staging table, made on its first load."""
    columns = ", ".join(f"{q(c.name)} {column_type(c.kind)}" for c in contract.columns)
    conn.execute(stmt(f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE} ({columns}) "
                      "ON COMMIT DELETE ROWS"))


def _schema(contract: Contract) -> pa.Schema:
    return pa.schema([pa.field(c.name, pa.date32() if c.kind == "date" else c.arrow_type)
                      for c in contract.columns])


def _for_postgres(batch: pa.RecordBatch, contract: Contract, schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for column in contract.columns:
        values = batch.column(column.name)
        if column.kind == "date" and not pa.types.is_date32(values.type):
            parsed = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
            values = pc.cast(parsed, pa.date32())
        arrays.append(values)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def copy_in(conn: Connection, contract: Contract, batches: Iterable[pa.RecordBatch]) -> int:
    """Stream `batches` into the session's staging table (inside the caller's
    transaction); the rows staged."""
    schema = _schema(contract)
    encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
    columns = ", ".join(q(c.name) for c in contract.columns)
    source = BatchSource(batches)
    try:
        with conn.cursor() as cursor, cursor.copy(
                stmt(f"COPY {TABLE} ({columns}) FROM STDIN WITH (FORMAT BINARY)")) as copy:
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
    conn.execute(stmt(f"ANALYZE {TABLE}"))
    return source.rows
