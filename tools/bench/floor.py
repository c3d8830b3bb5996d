"""The reference floor: the least work any loader must do for one file, and nothing else.

Read the Parquet file, bulk-ingest its Arrow batches into a plain staging table of the
same database through the ADBC SQLite driver, run the upsert SQL (the daemon's shape:
`WHERE true`, skip unchanged rows), empty staging, and commit: one transaction, the same
WAL, `synchronous` and cache settings as the daemon. No hashing, checks, ledger or file
moves. It runs as its own process (`python -m tools.bench.floor DB FILE`), so the driver's
SQLite is the only one that opens the database there, and prints its time as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc
import pyarrow as pa
import pyarrow.parquet as pq

from config import contract
from daemon.warehouse.sql import q
from daemon.warehouse.sqlite.connection import CACHE_KIB

TABLE = "floor_staging"


def upsert_sql() -> str:
    data = ", ".join(map(q, contract.COLUMN_NAMES))
    values = [n for n in contract.COLUMN_NAMES if n != contract.KEY]
    sets = ", ".join(f"{q(n)} = excluded.{q(n)}" for n in (*values, "loaded_at"))
    differs = " OR ".join(f"{q(contract.FACT_TABLE)}.{q(n)} IS NOT excluded.{q(n)}"
                          for n in values)
    return (f"INSERT INTO {q(contract.FACT_TABLE)} ({data}, \"loaded_at\") "
            f"SELECT {data}, 'floor' FROM {q(TABLE)} WHERE true "
            f"ON CONFLICT ({q(contract.KEY)}) DO UPDATE SET {sets} WHERE {differs}")


def load(db: Path, parquet: Path) -> float:
    """Load `parquet` into `db` the minimal way; the seconds it took."""
    columns = ", ".join(f"{q(c.name)} {c.sql_type}" for c in contract.COLUMNS)
    started = time.perf_counter()
    # autocommit with explicit BEGIN/COMMIT: see daemon/staging.py for why.
    with adbc.connect(str(db), autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.fetchall()
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {q(TABLE)} ({columns})")
        cursor.execute("BEGIN IMMEDIATE")
        source = pq.ParquetFile(parquet)
        batches = source.iter_batches(columns=list(contract.COLUMN_NAMES))
        cursor.adbc_ingest(TABLE, pa.RecordBatchReader.from_batches(
            source.schema_arrow, batches), mode="append")
        cursor.execute(upsert_sql())
        cursor.execute(f"DELETE FROM {q(TABLE)}")
        cursor.execute("COMMIT")
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    db, parquet = map(Path, argv)
    print(json.dumps({"seconds": load(db, parquet)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
