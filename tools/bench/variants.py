"""`python -m tools.bench.variants`: the ideas of schema version 4, each measured alone.

The merge SQL of one new 1M-row day into 3M rows (the staged day attached read-only, as
the daemon does; one transaction; `synchronous=FULL`), on four designs of the fact
table: version 3's (a rowid table, its key index and a `run_date` index), the same
without the `run_date` index, version 4's (`WITHOUT ROWID`, no `run_date` index), and
the floor's plain table. Then the status page's rows-per-day question, counted on
version 3's date index against version 4's `fact_transactions_days`. Designs are
interleaved, `--repeats` times, on fresh copies; medians are printed.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from filedrop_etl.config.contract import TRANSACTIONS as FEED
from filedrop_etl.daemon.warehouse.sqlite import connection, staging
from filedrop_etl.generator.transactions import generate
from tools.bench import fixtures

_COLUMNS = ('"txn_id" TEXT NOT NULL PRIMARY KEY, "customer_id" INTEGER NOT NULL, '
            '"amount" REAL NOT NULL, "run_date" TEXT NOT NULL, "loaded_at" TEXT NOT NULL, '
            '"load_id" INTEGER')
DESIGNS = {
    "version 3 (rowid, key index, date index)": (
        f"CREATE TABLE fact ({_COLUMNS})", "CREATE INDEX fact_run_date ON fact (run_date)"),
    "version 3 without the date index": (f"CREATE TABLE fact ({_COLUMNS})",),
    "version 4 (WITHOUT ROWID, no date index)": (f"CREATE TABLE fact ({_COLUMNS}) WITHOUT ROWID",),
    "the floor's plain table": (
        'CREATE TABLE fact ("txn_id" TEXT PRIMARY KEY, "customer_id" INTEGER, "amount" REAL, '
        '"run_date" TEXT, "loaded_at" TEXT NOT NULL, "load_id" INTEGER)',),
}
DATA = '"txn_id", "customer_id", "amount", "run_date"'
UPSERT = (f"INSERT INTO fact ({DATA}, loaded_at, load_id) SELECT {DATA}, 'now', 1 "
          "FROM s.staging_transactions WHERE true ON CONFLICT (txn_id) DO UPDATE SET "
          "customer_id = excluded.customer_id, amount = excluded.amount, "
          "run_date = excluded.run_date, loaded_at = excluded.loaded_at, load_id = 1 "
          "WHERE fact.customer_id IS NOT excluded.customer_id OR fact.amount IS NOT "
          "excluded.amount OR fact.run_date IS NOT excluded.run_date")


def _staged(root: Path, name: str, batches: Iterator[pa.RecordBatch]) -> Path:
    target = root / name
    with staging.staged(root / "x.db", batches, FEED) as (path, _):
        shutil.copyfile(path, target)
    return target


def _build(root: Path, name: str, ddl: Sequence[str], history: Path) -> Path:
    db = root / f"{name}.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in ddl:
        conn.execute(statement)
    conn.execute("ATTACH DATABASE ? AS h", (connection.uri(history, immutable="1"),))
    conn.execute(f"INSERT INTO fact ({DATA}, loaded_at) SELECT {DATA}, 'history' "
                 "FROM h.staging_transactions")
    conn.execute("CREATE TABLE days (run_date TEXT PRIMARY KEY, rows INTEGER) WITHOUT ROWID")
    conn.execute("INSERT INTO days SELECT run_date, COUNT(*) FROM fact GROUP BY run_date")
    conn.execute("DETACH DATABASE h")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


def _merge(template: Path, day: Path, root: Path) -> float:
    db = fixtures.copy_db(template, root / "run.db")
    conn = sqlite3.connect(connection.uri(db), uri=True, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"PRAGMA cache_size = -{connection.CACHE_KIB}")
    started = time.perf_counter()
    conn.execute("ATTACH DATABASE ? AS s", (connection.uri(day, immutable="1"),))
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(UPSERT)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def _rows_per_day(db: Path, sql: str) -> float:
    conn = sqlite3.connect(db)
    started = time.perf_counter()
    conn.execute(sql).fetchall()
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.variants",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="rows of the new day; the history holds 30 days of a tenth each")
    args = parser.parse_args(argv)
    per_day = max(1, args.rows // 10)
    root = Path(tempfile.mkdtemp(prefix="etl-variants-"))
    try:
        history = _staged(root, "history.db", fixtures.batches_of_days(0, 30, per_day))
        day = _staged(root, "day.db", generate(fixtures.day(30), args.rows))
        built = {name: _build(root, f"design{i}", ddl, history)
                 for i, (name, ddl) in enumerate(DESIGNS.items())}
        times: dict[str, list[float]] = {name: [] for name in built}
        for _ in range(args.repeats):
            for name, db in built.items():
                times[name].append(_merge(db, day, root))
        print(f"{args.rows:,} new rows into {30 * per_day:,}: the merge's SQL and its "
              "commit, median seconds")
        floor = statistics.median(times["the floor's plain table"])
        for name, seconds in times.items():
            size = built[name].stat().st_size / 1e6
            print(f"  {name:42} {statistics.median(seconds):6.3f} s  "
                  f"{statistics.median(seconds) / floor:5.2f}x floor  {size:5.0f} MB")
        v3 = built["version 3 (rowid, key index, date index)"]
        counted = [_rows_per_day(v3, "SELECT run_date, COUNT(*) FROM fact "
                                     "WHERE run_date > '2026-01-01' GROUP BY run_date")
                   for _ in range(args.repeats)]
        kept = [_rows_per_day(v3, "SELECT run_date, rows FROM days WHERE run_date > "
                                  "'2026-01-01'") for _ in range(args.repeats)]
        print(f"rows per day over {30 * per_day:,} rows, median seconds: counted on the date index "
              f"{statistics.median(counted):.4f} s, read from the rows-per-day table "
              f"{statistics.median(kept):.4f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
