"""Today's schema (version 2 added `retries`, 3 `daemons`, 4 rebuilt the fact table) over
a database version 1 wrote, upgraded in place.

The version-1 database is built from the DDL that version wrote (copied from a database
the version-1 daemon created), not from today's code, so the test keeps meaning what
it says when the code moves on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.warehouse.sqlite import schema
from tests import sqlite_store as store
from tests.conftest import fact_rows, ledger

V1_DDL = (
    'CREATE TABLE "load_history" ("id" INTEGER PRIMARY KEY, "file_name" TEXT NOT NULL, '
    '"sha256" TEXT, "bytes" INTEGER, "status" TEXT NOT NULL CHECK ("status" IN '
    "('processed', 'failed')), \"write_mode\" TEXT NOT NULL, \"run_date\" TEXT, "
    '"rows" INTEGER, "inserted" INTEGER NOT NULL DEFAULT 0, "updated" INTEGER NOT NULL '
    'DEFAULT 0, "unchanged" INTEGER NOT NULL DEFAULT 0, "deleted" INTEGER NOT NULL DEFAULT '
    '0, "error" TEXT, "started_at" TEXT NOT NULL, "finished_at" TEXT NOT NULL, "claim" TEXT)',
    'CREATE TABLE "staging_transactions" ("txn_id" TEXT PRIMARY KEY, "customer_id" INTEGER, '
    '"amount" REAL, "run_date" TEXT, "occurrences" INTEGER NOT NULL DEFAULT 1)',
    'CREATE TABLE "fact_transactions" ("txn_id" TEXT NOT NULL PRIMARY KEY, "customer_id" '
    'INTEGER NOT NULL, "amount" REAL NOT NULL, "run_date" TEXT NOT NULL, "loaded_at" TEXT '
    'NOT NULL, "load_id" INTEGER REFERENCES "load_history" ("id"))',
    'CREATE INDEX "fact_transactions_run_date" ON "fact_transactions" ("run_date")',
    'CREATE INDEX "load_history_file_name" ON "load_history" ("file_name")',
    'CREATE INDEX "load_history_claim" ON "load_history" ("claim")',
    "PRAGMA user_version = 1",
)
T = "2026-03-01T10:00:00.000000Z"


def version_1_database(path: Path) -> None:
    """A version-1 database holding one processed and one failed load."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in V1_DDL:
        conn.execute(statement)
    conn.execute("INSERT INTO load_history (file_name, sha256, bytes, status, write_mode, "
                 "run_date, rows, inserted, started_at, finished_at, claim) VALUES "
                 "('transactions_2026-03-01.parquet', 'ab', 10, 'processed', 'merge', "
                 "'2026-03-01', 2, 2, ?, ?, '1:2:3')", (T, T))
    conn.execute("INSERT INTO load_history (file_name, status, write_mode, error, "
                 "started_at, finished_at) VALUES ('bad.parquet', 'failed', 'merge', "
                 "'name: no', ?, ?)", (T, T))
    conn.executemany("INSERT INTO fact_transactions VALUES (?, ?, ?, ?, ?, 1)",
                     [("20260301-0000", 10, 5.5, "2026-03-01", T),
                      ("20260301-0001", 11, 7.25, "2026-03-01", T)])
    conn.commit()
    conn.close()


def test_a_version_1_database_is_migrated_in_place_and_keeps_everything(
        settings: Settings) -> None:
    version_1_database(settings.db_file)
    before = (ledger(settings.db_file), fact_rows(settings.db_file))
    conn = store.connect(settings.db_file)
    try:
        schema.init_schema(conn, TRANSACTIONS)
        schema.init_schema(conn, TRANSACTIONS)  # and the daemon's next start finds it as it left it
        assert conn.execute("PRAGMA user_version").fetchone() == (schema.SCHEMA_VERSION,) \
            == (6,)
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({store.RETRIES})")]
        assert columns[:3] == ["id", "file_name", "failed_as"]
        columns = [r[1] for r in conn.execute('PRAGMA table_info("daemons")')]
        assert columns == ["node", "pid", "started_at", "inbox", "work", "processed",
                           "failed", "created"]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"load_history_file_name", "load_history_claim", "retries_file_name"} <= names
        # Version 4: the keys carry their date, so the key's B-tree serves date ranges.
        assert "fact_transactions_run_date" not in names
        assert conn.execute('SELECT * FROM "fact_transactions_days"').fetchall() == [
            ("2026-03-01", 2)]
    finally:
        conn.close()
    # Version 5: every earlier load was the built-in feed's; version 6: by no known node.
    assert (ledger(settings.db_file), fact_rows(settings.db_file)) == (
        [{**row, "feed": "transactions", "node": None} for row in before[0]], before[1])


def test_a_version_1_database_reads_as_having_no_retries(settings: Settings) -> None:
    """The read-only commands work before any daemon of this version migrated it."""
    version_1_database(settings.db_file)
    with warehouse.reading(settings) as history:
        assert history.schema_version() == 1
        assert history.retries(["bad.parquet"]) == []
        assert history.daemons() == []  # no daemon of version 3 has started on it
        assert [x.file_name for x in history.attempts(["bad.parquet"])] == ["bad.parquet"]


def test_the_read_only_connection_creates_nothing_and_writes_nothing(
        settings: Settings) -> None:
    missing = settings.db_file.with_name("nowhere.db")
    with pytest.raises(sqlite3.OperationalError):
        store.connect_readonly(missing)
    with pytest.raises(sqlite3.OperationalError):
        store.connect(missing, create=False)
    assert not missing.exists()
    version_1_database(settings.db_file)
    conn = store.connect_readonly(settings.db_file)
    try:
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
            conn.execute(f"DELETE FROM {store.q(contract.FACT_TABLE)}")
    finally:
        conn.close()
    assert len(fact_rows(settings.db_file)) == 2
