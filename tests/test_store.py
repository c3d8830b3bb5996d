"""SQLite's own side of the warehouse, against a real file: what only a file database has.

The schema as `PRAGMA table_info` reports it, WAL and the connection's pragmas, the
transaction's rollbacks and its IMMEDIATE lock, the staging file attached read-only and
detached, the ledger's statements, the write counts of an identical re-run
(`total_changes`), the one query `surplus_rows` runs for unique values, and paths a file
URI once mishandled. What any backend must do with a merge (its counts, replaced dates,
repeated keys, `surplus_rows`' answers) is the contract suite's, run on both backends:
`test_warehouse_merge.py`. Rows reach the store as in a load: staged to a file by
`warehouse.sqlite.staging.staged` and attached with `store.attached_staging`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon.errors import SchemaMismatch
from filedrop_etl.daemon.warehouse.api import LoadRecord
from filedrop_etl.daemon.warehouse.sqlite import schema, staging
from filedrop_etl.daemon.warehouse.sqlite.ledger import record_load, update_load_counts
from tests import sqlite_store as store
from tests.conftest import awkward_db_path, day_table, fact_rows, ledger

DAY1 = "2026-02-10"
DAY2 = "2026-02-11"
Row = tuple[Any, ...]
# The contract's types, but nullable: what the reader yields for a producer's file.
NULLABLE = pa.schema([pa.field(c.name, c.arrow_type) for c in contract.COLUMNS])


@pytest.fixture
def db_path(settings: Settings) -> Path:
    return settings.db_file


@pytest.fixture
def other(fresh_db: sqlite3.Connection, db_path: Path) -> Iterator[sqlite3.Connection]:
    """A second, independent connection to the same database."""
    conn = sqlite3.connect(db_path)
    yield conn
    conn.close()


def rows_of(run_date: str, count: int = 6, seed: int = 0) -> list[Row]:
    return [tuple(r.values()) for r in day_table(run_date, count, seed).to_pylist()]


def table_of(rows: Sequence[Sequence[object]]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(contract.COLUMN_NAMES, r, strict=True)) for r in rows],
                                schema=NULLABLE)


@contextmanager
def staged(conn: sqlite3.Connection, rows: Sequence[Sequence[object]],
           batch_rows: int = 4) -> Iterator[int]:
    """Stage `rows` (contract column order) beside `conn`'s database as a load does, in
    batches of `batch_rows`, and keep the staging file attached; yields its row count."""
    db = Path(conn.execute("PRAGMA database_list").fetchone()[2])
    batches = table_of(rows).to_batches(max_chunksize=batch_rows)
    with staging.staged(db, batches, TRANSACTIONS) as (path, count), \
            store.attached_staging(conn, path) as attached:
        assert attached == count == len(rows)
        yield count


def strictly_ascending(rows: Sequence[Sequence[Any]]) -> bool:
    """What the checks prove for the pipeline before it says `keys_sorted`."""
    return all(a[0] < b[0] for a, b in pairwise(rows))


def new_load(conn: sqlite3.Connection, name: str = "f.parquet") -> int:
    load = LoadRecord(name, "ab" * 32, 100, "upsert", DAY1, "2026-02-10T00:00:00Z",
                      feed="transactions")
    return record_load(conn, load, status="processed",
                             finished_at="2026-02-10T00:00:01Z")


def load(conn: sqlite3.Connection, rows: Sequence[Sequence[object]], loaded_at: str,
         replace_date: str | None = None, keys_sorted: bool | None = None,
         run_date: str | None = None) -> tuple[store.MergeCounts, int]:
    """Stage `rows` and merge them under a new ledger row, as one file's load does."""
    with staged(conn, rows) as count, store.transaction(conn):
        load_id = new_load(conn)
        counts = store.merge(
            conn, rows=count, loaded_at=loaded_at, load_id=load_id,
            keys_sorted=strictly_ascending(rows) if keys_sorted is None else keys_sorted,
            replace_date=replace_date, run_date=run_date)
    return counts, load_id


# --- schema -------------------------------------------------------------------------------

# Each table: (name, type, notnull, pk) per column, as PRAGMA table_info reports them.
SCHEMA: dict[str, list[tuple[str, str, int, int]]] = {
    contract.STAGING_TABLE: [
        ("txn_id", "TEXT", 0, 1), ("customer_id", "INTEGER", 0, 0), ("amount", "REAL", 0, 0),
        ("run_date", "TEXT", 0, 0), ("occurrences", "INTEGER", 1, 0)],
    contract.FACT_TABLE: [
        ("txn_id", "TEXT", 1, 1), ("customer_id", "INTEGER", 1, 0), ("amount", "REAL", 1, 0),
        ("run_date", "TEXT", 1, 0), ("loaded_at", "TEXT", 1, 0), ("load_id", "INTEGER", 0, 0)],
    contract.FACT_TABLE + "_days": [("run_date", "TEXT", 1, 1), ("rows", "INTEGER", 1, 0)],
    contract.LEDGER_TABLE: [
        ("id", "INTEGER", 0, 1), ("file_name", "TEXT", 1, 0), ("sha256", "TEXT", 0, 0),
        ("bytes", "INTEGER", 0, 0), ("status", "TEXT", 1, 0), ("write_mode", "TEXT", 1, 0),
        ("run_date", "TEXT", 0, 0), ("rows", "INTEGER", 0, 0), ("inserted", "INTEGER", 1, 0),
        ("updated", "INTEGER", 1, 0), ("unchanged", "INTEGER", 1, 0),
        ("deleted", "INTEGER", 1, 0), ("error", "TEXT", 0, 0), ("started_at", "TEXT", 1, 0),
        ("finished_at", "TEXT", 1, 0), ("claim", "TEXT", 0, 0),
        ("feed", "TEXT", 1, 0), ("node", "TEXT", 0, 0)],
    store.RETRIES_TABLE: [
        ("id", "INTEGER", 0, 1), ("file_name", "TEXT", 1, 0), ("failed_as", "TEXT", 1, 0),
        ("sha256", "TEXT", 0, 0), ("reason", "TEXT", 0, 0), ("sidecar", "TEXT", 0, 0),
        ("requested_by", "TEXT", 0, 0), ("requested_at", "TEXT", 1, 0)],
    "daemons": [
        ("node", "TEXT", 0, 1), ("pid", "INTEGER", 1, 0), ("started_at", "TEXT", 1, 0),
        ("inbox", "TEXT", 1, 0), ("work", "TEXT", 1, 0), ("processed", "TEXT", 1, 0),
        ("failed", "TEXT", 1, 0), ("created", "TEXT", 1, 0)],
    # Issue 24: failed files an operator dismissed, who did, where and when.
    "dismissals": [
        ("id", "INTEGER", 0, 1), ("file_name", "TEXT", 1, 0), ("failed_as", "TEXT", 1, 0),
        ("feed", "TEXT", 0, 0), ("run_date", "TEXT", 0, 0), ("sha256", "TEXT", 0, 0),
        ("reason", "TEXT", 0, 0), ("sidecar", "TEXT", 0, 0), ("superseded_by", "INTEGER", 0, 0),
        ("why", "TEXT", 1, 0), ("dismissed_by", "TEXT", 0, 0), ("node", "TEXT", 1, 0),
        ("dismissed_at", "TEXT", 1, 0)],
}


@pytest.mark.parametrize("table", list(SCHEMA))
def test_init_schema_creates_documented_columns(fresh_db: sqlite3.Connection,
                                                other: sqlite3.Connection,
                                                table: str) -> None:
    schema.init_schema(fresh_db, TRANSACTIONS)  # a second time: idempotent
    info = other.execute(f"PRAGMA table_info({store.q(table)})").fetchall()
    assert [(name, kind, notnull, pk) for _, name, kind, notnull, _, pk in info] == SCHEMA[table]


def test_init_schema_is_idempotent_and_keeps_data(fresh_db: sqlite3.Connection,
                                                  db_path: Path) -> None:
    def objects() -> list[tuple[str, str]]:
        return fresh_db.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY name").fetchall()

    before = objects()
    assert {n for t, n in before if t == "table"} == set(SCHEMA)
    load(fresh_db, rows_of(DAY1), "t1")
    schema.init_schema(fresh_db, TRANSACTIONS)
    schema.init_schema(fresh_db, TRANSACTIONS)
    assert objects() == before
    assert len(fact_rows(db_path)) == 6
    assert len(ledger(db_path)) == 1
    assert fresh_db.execute("PRAGMA user_version").fetchone() == (schema.SCHEMA_VERSION,)


def test_database_is_in_wal_mode(fresh_db: sqlite3.Connection,
                                 other: sqlite3.Connection) -> None:
    assert fresh_db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # WAL is a property of the file, so a plain connection sees it too.
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_connect_creates_the_parent_directory(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "a" / "b" / "etl.db")
    try:
        schema.init_schema(conn, TRANSACTIONS)
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        conn.close()
    assert (tmp_path / "a" / "b" / "etl.db").is_file()


# --- transaction --------------------------------------------------------------------------


def _ledger_count(conn: sqlite3.Connection) -> int:
    count: int = conn.execute(
        f"SELECT COUNT(*) FROM {store.q(contract.LEDGER_TABLE)}").fetchone()[0]
    return count


def test_transaction_commits_on_success(fresh_db: sqlite3.Connection,
                                        other: sqlite3.Connection) -> None:
    with store.transaction(fresh_db):
        new_load(fresh_db)
        assert _ledger_count(other) == 0  # not visible before the commit
    assert not fresh_db.in_transaction
    assert _ledger_count(other) == 1


class Boom(Exception):
    pass


def test_transaction_rolls_back_on_exception(fresh_db: sqlite3.Connection,
                                             other: sqlite3.Connection) -> None:
    with staged(fresh_db, rows_of(DAY1)) as count, pytest.raises(Boom), \
            store.transaction(fresh_db):
        load_id = new_load(fresh_db)
        store.merge(fresh_db, rows=count, loaded_at="t1", load_id=load_id, keys_sorted=True)
        raise Boom
    assert not fresh_db.in_transaction
    assert _ledger_count(other) == 0
    assert other.execute(
        f"SELECT COUNT(*) FROM {store.q(contract.FACT_TABLE)}").fetchone() == (0,)
    # The connection is usable again afterwards.
    with store.transaction(fresh_db):
        new_load(fresh_db)
    assert _ledger_count(other) == 1


def test_transaction_is_immediate(fresh_db: sqlite3.Connection, db_path: Path) -> None:
    blocked = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with store.transaction(fresh_db), pytest.raises(sqlite3.OperationalError):
            blocked.execute("BEGIN IMMEDIATE")
    finally:
        blocked.close()


# --- merge --------------------------------------------------------------------------------


@pytest.mark.parametrize("replace_date", [None, DAY1], ids=["merge", "replace"])
def test_an_identical_rerun_writes_nothing_but_its_ledger_row(fresh_db: sqlite3.Connection,
                                                              replace_date: str | None) -> None:
    """Not the fact rows, and not the day's row count either (it is unchanged)."""
    rows = rows_of(DAY1)
    load(fresh_db, rows, "t1", run_date=DAY1)
    changes = fresh_db.total_changes
    counts, _ = load(fresh_db, rows, "t2", run_date=DAY1, replace_date=replace_date)
    assert counts.unchanged == 6
    assert fresh_db.total_changes - changes == 1  # the ledger row


def test_a_row_count_unlike_the_staged_table_is_refused(fresh_db: sqlite3.Connection,
                                                        db_path: Path) -> None:
    with staged(fresh_db, rows_of(DAY1)) as count, pytest.raises(RuntimeError), \
            store.transaction(fresh_db):
        store.merge(fresh_db, rows=count - 1, loaded_at="t1", load_id=new_load(fresh_db),
                    keys_sorted=True)
    assert fact_rows(db_path) == []


# --- staged rows and duplicates ------------------------------------------------------------


def test_attached_staging_is_read_only_and_detached_afterwards(
        fresh_db: sqlite3.Connection) -> None:
    def schemas() -> list[str]:
        return [name for _, name, _ in fresh_db.execute("PRAGMA database_list")]

    with pytest.raises(Boom), staged(fresh_db, rows_of(DAY1)) as count:
        assert count == 6
        assert schemas() == ["main", "staging"]
        assert fresh_db.execute(f"SELECT * FROM {store.STAGED}").fetchall() == rows_of(DAY1)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            fresh_db.execute(f"DELETE FROM {store.STAGED}")
        raise Boom
    assert schemas() == ["main"]


def test_a_failing_detach_does_not_hide_the_error_that_ended_the_block(
        fresh_db: sqlite3.Connection) -> None:
    """Guards a found bug: DETACH ran in a `finally`, so its own error replaced the one
    that ended the block (a check's failure, say), and the sidecar named the wrong cause."""
    with pytest.raises(Boom) as caught, staged(fresh_db, rows_of(DAY1)):
        # A statement still stepping through the attached table keeps it locked.
        unfinished = fresh_db.execute(f"SELECT * FROM {store.STAGED}")
        assert unfinished.fetchone() == rows_of(DAY1)[0]
        raise Boom("the block's own error")
    assert str(caught.value) == "the block's own error"
    assert caught.value.__notes__ == [
        "detaching the staging database failed too: database staging is locked"]
    # Once the statement is finished the database detaches, and the connection is usable.
    unfinished.close()
    fresh_db.execute("DETACH DATABASE staging")
    assert [name for _, name, _ in fresh_db.execute("PRAGMA database_list")] == ["main"]


@pytest.mark.parametrize("column", ["txn_id", "customer_id"])
def test_surplus_rows_of_unique_values_is_zero_without_sampling(
        fresh_db: sqlite3.Connection, column: str) -> None:
    statements: list[str] = []
    rows = [(f"20260210-{i:04d}", 100 - i, 1.0, DAY1) for i in (3, 0, 8, 1, 5)]
    with staged(fresh_db, rows):
        fresh_db.set_trace_callback(statements.append)
        try:
            assert store.surplus_rows(fresh_db, column, 5) == (0, [])
        finally:
            fresh_db.set_trace_callback(None)
    # One counting query; the sampling GROUP BY is never run.
    assert len(statements) == 1 and "GROUP BY" not in statements[0]


# --- ledger -------------------------------------------------------------------------------


def test_record_load_failed_attempt(fresh_db: sqlite3.Connection, db_path: Path) -> None:
    attempt = LoadRecord("bad.parquet", None, None, "upsert", None, "s", feed="transactions")
    with store.transaction(fresh_db):
        load_id = record_load(fresh_db, attempt, status="failed", finished_at="f",
                                    rows=7, error="boom")
    assert ledger(db_path) == [{
        "id": load_id, "file_name": "bad.parquet", "sha256": None, "bytes": None,
        "status": "failed", "write_mode": "upsert", "run_date": None, "rows": 7,
        "inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0, "error": "boom",
        "started_at": "s", "finished_at": "f", "claim": None, "feed": "transactions",
        "node": None}]


def test_record_load_with_counts_then_update(fresh_db: sqlite3.Connection,
                                             db_path: Path) -> None:
    attempt = LoadRecord(contract.file_name_for(DAY1), "ab" * 32, 1234, "replace_date",
                         DAY1, "s", feed="transactions")
    with store.transaction(fresh_db):
        first = record_load(fresh_db, attempt, status="processed", finished_at="f0",
                                  rows=999)
        update_load_counts(fresh_db, first, store.MergeCounts(9, 1, 2, 6, 0), "f0")
        second = record_load(fresh_db, attempt, status="processed", finished_at="f1")
    assert second == first + 1
    rows = ledger(db_path)
    assert [(r["rows"], r["inserted"], r["updated"], r["unchanged"], r["deleted"])
            for r in rows] == [(9, 1, 2, 6, 0), (None, 0, 0, 0, 0)]
    assert rows[0]["sha256"] == "ab" * 32
    assert rows[0]["bytes"] == 1234
    assert rows[0]["run_date"] == DAY1
    with store.transaction(fresh_db):
        update_load_counts(fresh_db, second, store.MergeCounts(5, 4, 0, 1, 3), "f2")
    rows = ledger(db_path)
    assert [(r["rows"], r["inserted"], r["updated"], r["unchanged"], r["deleted"],
             r["finished_at"]) for r in rows] == [(9, 1, 2, 6, 0, "f0"), (5, 4, 0, 1, 3, "f2")]


def test_ledger_refuses_an_unknown_status(fresh_db: sqlite3.Connection) -> None:
    attempt = LoadRecord("x.parquet", None, None, "upsert", None, "s", feed="transactions")
    with pytest.raises(sqlite3.IntegrityError), store.transaction(fresh_db):
        record_load(fresh_db, attempt, status="maybe", finished_at="f")


def test_an_error_sqlite_already_rolled_back_is_not_hidden(fresh_db: sqlite3.Connection) -> None:
    """SQLITE_FULL and SQLITE_IOERR end the transaction themselves; the original error
    must surface, not "cannot rollback - no transaction is active"."""
    class DiskFull(sqlite3.OperationalError):
        pass

    with pytest.raises(DiskFull), store.transaction(fresh_db):
        fresh_db.execute("ROLLBACK")  # what SQLite does on its own for those errors
        raise DiskFull("database or disk is full")
    assert not fresh_db.in_transaction
    with store.transaction(fresh_db):  # and the connection is usable again
        fresh_db.execute("SELECT 1")


def test_a_failed_commit_leaves_no_open_transaction(fresh_db: sqlite3.Connection,
                                                    db_path: Path) -> None:
    fresh_db.execute("PRAGMA foreign_keys = ON")
    fresh_db.execute("PRAGMA defer_foreign_keys = ON")  # the violation surfaces at COMMIT
    with pytest.raises(sqlite3.IntegrityError), store.transaction(fresh_db):
        fresh_db.execute(
            'INSERT INTO fact_transactions VALUES (?, ?, ?, ?, ?, ?)',
            ("20260210-0000", 1, 1.0, DAY1, "t", 999))
    assert not fresh_db.in_transaction
    assert fact_rows(db_path) == []


@pytest.mark.parametrize("ddl", [
    # The prototype's own tables, as its notebook created them.
    "CREATE TABLE fact_transactions(txn_id TEXT PRIMARY KEY, customer_id INTEGER NOT NULL, "
    "amount REAL NOT NULL, run_date TEXT NOT NULL, loaded_at TEXT NOT NULL)",
    "CREATE TABLE staging_transactions(txn_id TEXT PRIMARY KEY, customer_id INTEGER NOT NULL,"
    " amount REAL NOT NULL, run_date TEXT NOT NULL)",
    "PRAGMA user_version = 99",
])
def test_a_foreign_schema_is_refused(tmp_path: Path, ddl: str) -> None:
    conn = store.connect(tmp_path / "other.db_file")
    try:
        conn.execute(ddl)
        with pytest.raises(SchemaMismatch) as info:
            schema.init_schema(conn, TRANSACTIONS)
        assert info.value.hint
    finally:
        conn.close()


@pytest.mark.parametrize("where", ["not-utf8", "double-slash"])
def test_connect_opens_the_file_at_any_path(tmp_path: Path, where: str) -> None:
    """Guards a found bug: the URI was built from the path's text, so a directory name
    that is not UTF-8 could not be encoded, and a path beginning `//` gave the URI an
    authority (`file://tmp/...`), which SQLite refuses."""
    db = awkward_db_path(tmp_path, where)
    conn = store.connect(db)
    try:
        schema.init_schema(conn, TRANSACTIONS)
        with store.transaction(conn):
            new_load(conn, "written.parquet")
    finally:
        conn.close()
    # The very file at that path, not one at a path the URI made of it.
    assert db.is_file()
    assert [r["file_name"] for r in ledger(db)] == ["written.parquet"]
