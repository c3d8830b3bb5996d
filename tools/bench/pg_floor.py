"""The PostgreSQL floor: the simplest correct load of one file, into a table of its own.

`python -m tools.bench.pg_floor URL FILE` reads the Parquet file, binary-COPYs its rows
(encoded by pgpq, run dates cast in Arrow, as the daemon does) into an unindexed
temporary table, and runs a skip-unchanged `INSERT ... ON CONFLICT` into `floor_fact`,
a plain table with the fact's columns and only its primary key (none of the daemon's
schema: no date index, no lineage), in one transaction, on a session already open:
nothing else (no hash, no checks, no ledger, no claim, no archive). It prints the
seconds that took. Its own process, so that its memory and the daemon's do not mix.
"""

from __future__ import annotations

import sys
import time

import pgpq
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filedrop_etl.config.contract import TRANSACTIONS as FEED
from filedrop_etl.daemon.warehouse.postgresql.types import column_type
from filedrop_etl.daemon.warehouse.sql import Tables, q

STAGE = q("floor_stage")
TABLE = "floor_fact"


def create_sql() -> bytes:
    """The floor's plain table: the fact's columns, only the key's index."""
    columns = ", ".join(f"{q(c.name)} {column_type(c.kind)}"
                        + (" PRIMARY KEY" if c.name == FEED.key[0] else "") for c in FEED.columns)
    return f'CREATE TABLE {q(TABLE)} ({columns}, "loaded_at" timestamptz NOT NULL)'.encode()


def _pg_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [pc.cast(batch.column(c.name), pa.date32()) if c.kind == "date"
              else batch.column(c.name) for c in FEED.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def load(url: str, path: str) -> float:
    t = Tables(FEED)
    values = FEED.value_columns
    schema = pa.schema([pa.field(c.name, pa.date32() if c.kind == "date" else c.arrow_type)
                        for c in FEED.columns])
    columns = ", ".join(f"{q(c.name)} {column_type(c.kind)}" for c in FEED.columns)
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute(f"CREATE TEMPORARY TABLE {STAGE} ({columns}) ON COMMIT DROP".encode())
        encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
        with conn.cursor() as cursor, cursor.copy(
                f"COPY {STAGE} ({t.columns()}) FROM STDIN WITH (FORMAT BINARY)".encode()) as copy:
            copy.write(encoder.write_header())
            for batch in pq.ParquetFile(path).iter_batches(columns=list(FEED.column_names)):
                copy.write(encoder.write_batch(_pg_batch(batch, schema)))
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
    print(f"{load(sys.argv[1], sys.argv[2]):.6f}")
