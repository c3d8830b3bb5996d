"""The SQLite backend's parts under the default contract, as the SQLite-only tests use them.

Tests of SQLite's own behaviour (WAL, locks, the attached staging file, the merge's
statements) reach under the seam on purpose; this gives them the default contract's
names and the merge's keywords in one place.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path

from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon.warehouse import api
from filedrop_etl.daemon.warehouse.sql import RETRIES_TABLE, Tables, q
from filedrop_etl.daemon.warehouse.sqlite import merge as _merge
from filedrop_etl.daemon.warehouse.sqlite.connection import attached_staging as _attached
from filedrop_etl.daemon.warehouse.sqlite.connection import (
    connect,
    connect_readonly,
    staged_table,
    transaction,
)

__all__ = ["RETRIES_TABLE", "connect", "connect_readonly", "q", "transaction"]

TABLES = Tables(TRANSACTIONS)
FACT, KEY, LEDGER, RETRIES = TABLES.fact, TABLES.key, TABLES.ledger, TABLES.retries
STAGED = staged_table(TRANSACTIONS.staging_table)
MergeCounts = api.MergeCounts


def attached_staging(conn: sqlite3.Connection, path: Path) -> AbstractContextManager[int]:
    return _attached(conn, path, TRANSACTIONS.staging_table)


def surplus_rows(conn: sqlite3.Connection, column: str, limit: int) -> tuple[int, list[str]]:
    return _merge.surplus_rows(conn, TABLES, (column,), limit)


def merge(conn: sqlite3.Connection, *, rows: int, loaded_at: str, load_id: int,
          keys_sorted: bool, keys_counted: bool = False, replace_date: str | None = None,
          run_date: str | None = None, tables: Tables = TABLES) -> api.MergeCounts:
    plan = api.MergePlan(keys_sorted, keys_counted, replace_date, run_date=run_date)
    return _merge.merge(conn, tables, plan, rows=rows, loaded_at=loaded_at, load_id=load_id)


