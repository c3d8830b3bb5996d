"""The prototype's approach, for comparison: what `../shared/seed/` does per file.

A pandas DataFrame walked with `iterrows`, one upsert statement per row into staging,
the staging-to-fact upsert, then checks over the whole fact table, committed. Two of its
defects are mended so that it can run at all and does not compound: the upsert gets its
`WHERE true` (a syntax error without it) and staging is emptied first (otherwise each
run re-upserts all history). Its other habits are kept: that is what is measured.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pyarrow.parquet as pq


def load(db: Path, parquet: Path) -> float:
    """Load `parquet` into `db` the prototype's way; the seconds it took."""
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    try:
        frame = pq.read_table(parquet).to_pandas()
        conn.execute("DELETE FROM staging_transactions")
        for _, r in frame.iterrows():
            conn.execute(
                "INSERT INTO staging_transactions (txn_id, customer_id, amount, run_date) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (txn_id) DO UPDATE SET "
                "customer_id = excluded.customer_id, amount = excluded.amount, "
                "run_date = excluded.run_date",
                (r["txn_id"], int(r["customer_id"]), float(r["amount"]), r["run_date"]),
            )
        conn.execute(
            "INSERT INTO fact_transactions (txn_id, customer_id, amount, run_date, loaded_at) "
            "SELECT txn_id, customer_id, amount, run_date, 'prototype' "
            "FROM staging_transactions WHERE true ON CONFLICT (txn_id) DO UPDATE SET "
            "customer_id = excluded.customer_id, amount = excluded.amount, "
            "run_date = excluded.run_date, loaded_at = excluded.loaded_at")
        conn.commit()
        for check in (
            "SELECT COUNT(*) FROM fact_transactions WHERE customer_id IS NULL OR amount IS NULL",
            "SELECT COUNT(*) FROM fact_transactions WHERE amount < 0",
            "SELECT COUNT(*) FROM (SELECT txn_id FROM fact_transactions GROUP BY txn_id "
            "HAVING COUNT(*) > 1)",
        ):
            failed, = conn.execute(check).fetchone()
            if failed:
                raise RuntimeError(f"prototype check failed: {check}")
    finally:
        conn.close()
    return time.perf_counter() - started
