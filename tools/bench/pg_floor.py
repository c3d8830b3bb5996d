"""The PostgreSQL floor: the simplest correct load of one file, into a table of its own.

`python -m tools.bench.pg_floor URL FILE [FEED]` reads the Parquet file, binary-COPYs its
rows (encoded by pgpq, run dates cast in Arrow, as the daemon does) into an unindexed
temporary table, and runs a skip-unchanged `INSERT ... ON CONFLICT` into `floor_fact`,
a plain table with the feed's columns and only its primary key over every key column
(none of the daemon's schema: no date index, no lineage), in one transaction, on a
session already open: nothing else (no hash, no checks, no ledger, no claim, no
archive). Any feed of `tools.bench.feeds` (transactions by default): a decimal goes in
as numeric(p,s), a timestamp as timestamptz, a boolean as boolean, as pgpq encodes them.
It prints the seconds that took. Its own process, so that its memory and the daemon's
do not mix.
"""

from __future__ import annotations

import sys
import time

import pgpq
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filedrop_etl.config.contract import TRANSACTIONS, Column, ColumnKind, Contract
from filedrop_etl.daemon.warehouse.sql import Tables, q
from tools.bench import feeds

STAGE = q("floor_stage")
TABLE = "floor_fact"
# The floor's own types, as a user would declare them.
TYPES: dict[ColumnKind, str] = {"string": "text", "integer": "bigint",
                                "float": "double precision", "decimal": "numeric",
                                "boolean": "boolean", "date": "date",
                                "timestamp": "timestamptz"}


def column_type(column: Column) -> str:
    if column.kind == "decimal":
        return f"numeric({column.precision},{column.scale or 0})"
    return TYPES[column.kind]


def create_sql(feed: Contract = TRANSACTIONS) -> bytes:
    """The floor's plain table: the feed's columns, only the key's index."""
    columns = ", ".join(f"{q(c.name)} {column_type(c)}" for c in feed.columns)
    return (f'CREATE TABLE {q(TABLE)} ({columns}, "loaded_at" timestamptz NOT NULL, '
            f"PRIMARY KEY ({', '.join(map(q, feed.key))}))").encode()


def _pg_batch(batch: pa.RecordBatch, schema: pa.Schema, feed: Contract) -> pa.RecordBatch:
    arrays = [pc.cast(batch.column(c.name), pa.date32()) if c.kind == "date"
              else batch.column(c.name) for c in feed.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def load(url: str, path: str, feed: Contract = TRANSACTIONS) -> float:
    t = Tables(feed)
    values = feed.value_columns
    schema = pa.schema([pa.field(c.name, pa.date32() if c.kind == "date" else c.arrow_type)
                        for c in feed.columns])
    columns = ", ".join(f"{q(c.name)} {column_type(c)}" for c in feed.columns)
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute(f"CREATE TEMPORARY TABLE {STAGE} ({columns}) ON COMMIT DROP".encode())
        encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
        with conn.cursor() as cursor, cursor.copy(
                f"COPY {STAGE} ({t.columns()}) FROM STDIN WITH (FORMAT BINARY)".encode()) as copy:
            copy.write(encoder.write_header())
            for batch in pq.ParquetFile(path).iter_batches(columns=list(feed.column_names)):
                copy.write(encoder.write_batch(_pg_batch(batch, schema, feed)))
            copy.write(encoder.finish())
        sets = ", ".join(f"{q(n)} = EXCLUDED.{q(n)}" for n in (*values, "loaded_at"))
        conn.execute((
            f"INSERT INTO {q(TABLE)} AS f ({t.columns()}, \"loaded_at\") "
            f"SELECT {t.columns()}, now() FROM {STAGE} ON CONFLICT ({t.key}) DO UPDATE "
            f"SET {sets} WHERE ({t.columns(values, 'f.')}) IS DISTINCT FROM "
            f"({t.columns(values, 'EXCLUDED.')})").encode())
        conn.execute("COMMIT")
        return time.perf_counter() - started


if __name__ == "__main__":
    feed = feeds.named(sys.argv[3]) if len(sys.argv) > 3 else TRANSACTIONS
    print(f"{load(sys.argv[1], sys.argv[2], feed):.6f}")
