"""The PostgreSQL backend on a real server: its migration, its merge counts, its one
transaction per file, its faults and its history.

The server comes from `FILEDROP_TEST_POSTGRES` (a libpq URL of a database whose user may
CREATE DATABASE); without it every test here skips, saying so. The module makes a scratch
database of its own and drops it at the end; each test works in a schema of its own
inside it (the URL's `search_path`), so no test sees another's tables.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from psycopg import errors, sql

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS, Contract
from filedrop_etl.daemon import clock, crashpoints
from filedrop_etl.daemon.errors import BadInput, DatabaseUnavailable, SchemaMismatch
from filedrop_etl.daemon.warehouse.api import (
    FOLDER_NAMES,
    Folders,
    LoadFilter,
    LoadRecord,
    MergeCounts,
    MergePlan,
    Tally,
    WarehouseBusy,
    WarehouseFault,
    WarehouseFull,
    WarehouseUnavailable,
)
from filedrop_etl.daemon.warehouse.postgresql import doors as postgresql
from filedrop_etl.daemon.warehouse.postgresql import schema, url_of
from filedrop_etl.daemon.warehouse.postgresql.connection import connect
from filedrop_etl.daemon.warehouse.postgresql.faults import fault_of
from filedrop_etl.daemon.warehouse.postgresql.history import glob_to_regex
from filedrop_etl.daemon.warehouse.postgresql.shape import bookkeeping_tables
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl
from filedrop_etl.daemon.warehouse.sql import LEDGER_TABLE
from filedrop_etl.generator.transactions import generate_table
from tests.backends import books_of, load_settings
from tests.conftest import wait_until

ENV = "FILEDROP_TEST_POSTGRES"
ROOT = Path(__file__).resolve().parent.parent
DAYS = ("2026-02-10", "2026-02-11", "2026-02-12")


@pytest.fixture(scope="module")
def scratch_db() -> Iterator[str]:
    """A database of this module's own on the test server, dropped after."""
    admin = os.environ.get(ENV)
    if not admin:
        pytest.skip(f"no PostgreSQL server: set {ENV}=postgresql://USER@HOST:PORT/DBNAME")
    name = "filedrop_t_" + secrets.token_hex(6)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(admin)
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            # FORCE: a test that failed may have left a session open.
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


@pytest.fixture
def url(scratch_db: str) -> PostgresUrl:
    """A URL whose tables land in a new schema of the scratch database."""
    name = "s_" + secrets.token_hex(6)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    joiner = "&" if "?" in scratch_db else "?"
    return PostgresUrl(f"{scratch_db}{joiner}options={quote(f'-csearch_path={name}')}")


@pytest.fixture
def settings(url: PostgresUrl, tmp_path: Path) -> Settings:
    return load_settings(
        {"inbox": tmp_path / "inbox", "processed": tmp_path / "processed",
         "failed": tmp_path / "failed", "db": url.url, "node": "test-node",
         "busy_timeout_seconds": 2.0, "lease_seconds": 30.0},
        config_file=ROOT / "config" / "etl.toml", environ={})


@pytest.fixture
def held(settings: Settings) -> Iterator[postgresql.PostgresWarehouse]:
    inbox, work, processed, failed = (str(getattr(settings, n)) for n in FOLDER_NAMES)
    folders = Folders(inbox, work, processed, failed)
    opened = postgresql.open_warehouse(url_of(settings), settings.feeds.all, settings=settings,
                                       folders=folders)
    yield opened
    opened.close()


def rows(url: PostgresUrl, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url.url) as conn:
        return conn.execute(query.encode(), params).fetchall()


def one(url: PostgresUrl, query: str, params: tuple[object, ...] = ()) -> Any:
    [(value,)] = rows(url, query, params)
    return value


def day(run_date: str, n: int = 20, seed: int = 0) -> pa.Table:
    return generate_table(date.fromisoformat(run_date), n, seed)


def load(held: postgresql.PostgresWarehouse, table: pa.Table, claim: str,
         replace: bool = False) -> MergeCounts:
    run_date = str(table.column("run_date")[0])
    plan = MergePlan(keys_sorted=True, keys_counted=True,
                     replace_date=run_date if replace else None)
    record = LoadRecord(f"transactions_{run_date}.parquet", "ab" * 32, 1234,
                        "replace" if replace else "merge", run_date, clock.utc_now(),
                        claim, feed="transactions")
    # Small batches: several COPY messages per file.
    with held.staged(TRANSACTIONS, table.to_batches(max_chunksize=7)) as staged:
        assert staged.rows == table.num_rows
        return staged.commit(record, plan)


def columns_of(url: PostgresUrl, table: str, *, kept: bool = True) -> list[tuple[str, str]]:
    """The columns of `table`: in the bookkeeping schema where it is one of the daemon's
    own (and `kept`), else as the search_path finds it."""
    named = (books_of(url.url).table(table)
             if kept and table in bookkeeping_tables([TRANSACTIONS]) else f'"{table}"')
    return [(str(n), str(t)) for n, t in rows(
        url, "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (named,))]


def version_in(url: PostgresUrl) -> list[tuple[Any, ...]]:
    return rows(url, f"SELECT version FROM {books_of(url.url).version}")


# --- the schema ---------------------------------------------------------------------

def test_migrating_twice_changes_nothing(url: PostgresUrl, settings: Settings) -> None:
    feeds = settings.feeds.all
    contract: Contract = feeds[0]
    with connect(url, 2.0) as conn:
        schema.migrate(conn, feeds)
        before = {t: columns_of(url, t) for t in schema.tables(feeds)}
        schema.migrate(conn, feeds)
        assert schema.check(conn) == schema.SCHEMA_VERSION
    assert {t: columns_of(url, t) for t in schema.tables(feeds)} == before
    assert version_in(url) == [(schema.SCHEMA_VERSION,)]
    # Native types, as the backend maps the contract's column kinds (postgresql.types).
    fact = dict(before[contract.fact_table])
    assert fact["run_date"] == "date"
    assert fact["customer_id"] == "bigint"
    assert fact["loaded_at"] == "timestamp with time zone"
    assert dict(before[LEDGER_TABLE])["finished_at"] == "timestamp with time zone"


def test_daemons_starting_together_migrate_once(url: PostgresUrl, settings: Settings) -> None:
    # Without the advisory lock, concurrent CREATE TABLE IF NOT EXISTS collide in the
    # catalog (a unique violation on pg_type), and some of these fail.
    failures: list[BaseException] = []
    go = threading.Barrier(6)

    def start() -> None:
        try:
            with connect(url, 10.0) as conn:
                go.wait()
                schema.migrate(conn, settings.feeds.all)
        except BaseException as exc:  # collected for the assertion
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert version_in(url) == [(schema.SCHEMA_VERSION,)]


def test_a_table_of_other_columns_is_refused(url: PostgresUrl, settings: Settings) -> None:
    rows_before = 'CREATE TABLE "load_history" ("id" int PRIMARY KEY, "what" text)'
    with psycopg.connect(url.url, autocommit=True) as conn:
        conn.execute(rows_before.encode())
    with connect(url, 2.0) as conn, pytest.raises(SchemaMismatch, match="load_history"):
        schema.migrate(conn, settings.feeds.all)
    # Refused whole: the migration's transaction created nothing beside it.
    assert one(url, "SELECT to_regclass(%s) IS NULL", (books_of(url.url).version,)) is True
    assert columns_of(url, "load_history", kept=False) == [("id", "integer"), ("what", "text")]


def test_a_newer_schema_is_refused(url: PostgresUrl, settings: Settings) -> None:
    with connect(url, 2.0) as conn:
        schema.migrate(conn, settings.feeds.all)
        conn.execute(f"UPDATE {conn.books.version} SET version = 99".encode())
        with pytest.raises(SchemaMismatch, match="99"):
            schema.migrate(conn, settings.feeds.all)


def test_reading_a_database_without_our_tables(url: PostgresUrl, settings: Settings) -> None:
    with (pytest.raises(SchemaMismatch, match="has no load_history table"),
          postgresql.reading(url, 2.0)):
        pass


# --- loading ------------------------------------------------------------------------

def test_three_days_new_again_changed_and_replaced(
        url: PostgresUrl, held: postgresql.PostgresWarehouse) -> None:
    tables = {d: day(d, 20 + i) for i, d in enumerate(DAYS)}
    for i, (d, table) in enumerate(tables.items()):
        assert load(held, table, f"new-{d}") == MergeCounts(20 + i, 20 + i, 0, 0, 0)
    assert one(url, "SELECT count(*) FROM fact_transactions") == 63
    stamped = "SELECT txn_id, loaded_at, load_id FROM fact_transactions ORDER BY 1"
    stamps = rows(url, stamped)

    # The same file again: nothing rewritten, not even `loaded_at`.
    assert load(held, tables[DAYS[1]], "again") == MergeCounts(21, 0, 0, 21, 0)
    assert rows(url, stamped) == stamps

    # One value changed: one row updated, and only it gets the new load's stamp.
    table = tables[DAYS[2]]
    amounts = [float(a) for a in table.column("amount").to_numpy()]
    amounts[3] += 1.5
    changed = table.set_column(2, "amount", pa.array(amounts, pa.float64()))
    assert load(held, changed, "changed") == MergeCounts(22, 0, 1, 21, 0)
    key = table.column("txn_id")[3].as_py()
    assert one(url, "SELECT amount FROM fact_transactions WHERE txn_id = %s", (key,)) == amounts[3]
    after = rows(url, stamped)
    assert [r for r in after if r not in stamps] == [
        r for r in after if r[0] == key]

    # Replace mode: the file is the whole truth for its date; the keys it lacks go.
    kept = tables[DAYS[0]].slice(0, 15)
    assert load(held, kept, "replace", replace=True) == MergeCounts(15, 0, 0, 15, 5)
    assert one(url, "SELECT count(*) FROM fact_transactions WHERE run_date = %s", (DAYS[0],)) == 15
    assert one(url, "SELECT count(*) FROM fact_transactions") == 58
    # ... and with no more rows than staged, it deletes nothing.
    assert load(held, kept, "replace2", replace=True) == MergeCounts(15, 0, 0, 15, 0)

    ledger = rows(url, 'SELECT claim, status, rows, inserted, updated, unchanged, deleted, '
                       'run_date::text FROM load_history ORDER BY id')
    assert ledger[-3:] == [("changed", "processed", 22, 0, 1, 21, 0, DAYS[2]),
                           ("replace", "processed", 15, 0, 0, 15, 5, DAYS[0]),
                           ("replace2", "processed", 15, 0, 0, 15, 0, DAYS[0])]
    recorded = held.recorded("changed")
    assert recorded is not None
    assert recorded.counts == MergeCounts(22, 0, 1, 21, 0)
    assert held.recorded("never") is None


def test_an_error_of_the_batches_leaves_nothing(
        url: PostgresUrl, held: postgresql.PostgresWarehouse) -> None:
    table = day(DAYS[0], 30)
    error = BadInput("the file is cut short")

    def batches() -> Iterator[pa.RecordBatch]:
        yield from table.slice(0, 10).to_batches()
        raise error

    with pytest.raises(BadInput) as raised, held.staged(TRANSACTIONS, batches()):
        pytest.fail("staged despite the source's error")
    assert raised.value is error  # the reader's own error, not the COPY's
    assert one(url, "SELECT count(*) FROM fact_transactions") == 0
    assert one(url, "SELECT count(*) FROM load_history") == 0
    # The session is usable again: the next file loads, alone.
    assert load(held, table, "next") == MergeCounts(30, 30, 0, 0, 0)
    assert one(url, "SELECT count(*) FROM fact_transactions") == 30


def test_a_failure_inside_the_commit_leaves_nothing(
        url: PostgresUrl, held: postgresql.PostgresWarehouse,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(point: str) -> None:
        if point == "during_merge":
            raise RuntimeError("killed mid-merge")

    monkeypatch.setattr(crashpoints, "reached", crash)
    with pytest.raises(RuntimeError, match="mid-merge"):
        load(held, day(DAYS[0]), "c1")
    assert one(url, "SELECT count(*) FROM fact_transactions") == 0
    assert one(url, "SELECT count(*) FROM load_history") == 0


def test_leaving_without_commit_rolls_back(
        url: PostgresUrl, held: postgresql.PostgresWarehouse) -> None:
    with held.staged(TRANSACTIONS, day(DAYS[0]).to_batches()) as staged:
        assert staged.rows == 20
        assert staged.surplus_rows(("txn_id",), 5) == (0, [])
    assert one(url, "SELECT count(*) FROM fact_transactions") == 0
    # Repeated keys are counted, and samples given, from the staged rows.
    table = day(DAYS[0], 6)
    twice = pa.concat_tables([table, table.slice(0, 2)])
    with held.staged(TRANSACTIONS, twice.to_batches()) as staged:
        surplus, samples = staged.surplus_rows(("txn_id",), 1)
    assert surplus == 2
    assert samples == [table.column("txn_id")[0].as_py()]


def test_a_record_failure_is_written_once_per_claim(
        url: PostgresUrl, held: postgresql.PostgresWarehouse) -> None:
    record = LoadRecord("transactions_2026-02-10.parquet", None, 10, "merge", None,
                        clock.utc_now(), "claim-1",
                        feed="transactions")
    held.record_failure(record, rows=None, error="bad")
    held.record_failure(record, rows=None, error="bad again")
    assert rows(url, "SELECT status, error FROM load_history") == [("failed", "bad")]


def test_a_session_ended_by_the_server_is_reopened_before_its_next_use(
        url: PostgresUrl, held: postgresql.PostgresWarehouse) -> None:
    """Ended between statements (a restart, `pg_terminate_backend`): the server's last
    words wait on the socket, so the next use opens a session again instead of failing
    on this one (issue 21, item 13). Ended during a statement, it is a fault: below."""
    load(held, day(DAYS[0]), "c1")
    pid = held.conn.info.backend_pid
    assert one(url, "SELECT pg_terminate_backend(%s)", (pid,)) is True
    wait_until(lambda: one(url, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                           (pid,)) == 0, "the session's end")
    assert held.recorded("c1") is not None
    assert held.conn.info.backend_pid != pid


def test_a_session_ended_mid_load_commits_nothing(
        url: PostgresUrl, held: postgresql.PostgresWarehouse) -> None:
    table = day(DAYS[1])
    plan = MergePlan(keys_sorted=True, keys_counted=True)
    record = LoadRecord("transactions_2026-02-11.parquet", None, 1, "merge", DAYS[1],
                        clock.utc_now(), "c2",
                        feed="transactions")
    with pytest.raises(WarehouseFault), held.staged(TRANSACTIONS, table.to_batches()) as staged:
        rows(url, "SELECT pg_terminate_backend(%s)", (held.conn.info.backend_pid,))
        staged.commit(record, plan)
    assert one(url, "SELECT count(*) FROM fact_transactions") == 0
    assert one(url, "SELECT count(*) FROM load_history") == 0
    assert load(held, table, "c2") == MergeCounts(20, 20, 0, 0, 0)


def test_a_refused_connection_is_unavailable_and_shows_no_password(
        settings: Settings, tmp_path: Path) -> None:
    secret = "s3cret-" + secrets.token_hex(4)
    url = PostgresUrl(f"postgresql://someone:{secret}@127.0.0.1:1/nowhere")
    folders = Folders(str(tmp_path / "inbox"), str(tmp_path / "work"),
                      str(tmp_path / "processed"), str(tmp_path / "failed"))
    with pytest.raises(WarehouseUnavailable) as raised:
        postgresql.open_warehouse(url, settings.feeds.all, settings=settings, folders=folders)
    assert secret not in str(raised.value)
    assert secret not in repr(raised.value)
    assert secret not in str(url)


def test_a_missing_database_is_refused_not_waited_for(settings: Settings,
                                                       scratch_db: str) -> None:
    # libpq gives a failed connection no SQLSTATE: the server's words tell a database that
    # does not exist (terminal: waiting would not make it) from a server out of reach.
    parts = urlsplit(scratch_db)
    missing = PostgresUrl(urlunsplit(parts._replace(path="/no_such_db_" + secrets.token_hex(4))))
    with (pytest.raises(DatabaseUnavailable, match="does not exist"),
          postgresql.reading(missing, 2.0)):
        pass


@pytest.mark.parametrize(("error", "fault"), [
    (errors.LockNotAvailable, WarehouseBusy),
    (errors.DeadlockDetected, WarehouseBusy),
    (errors.SerializationFailure, WarehouseBusy),
    (errors.QueryCanceled, WarehouseBusy),
    (errors.DiskFull, WarehouseFull),
    (errors.OutOfMemory, WarehouseFull),
    (errors.InsufficientResources, WarehouseFull),
    (errors.AdminShutdown, WarehouseUnavailable),
    (errors.CannotConnectNow, WarehouseUnavailable),
    (psycopg.OperationalError, WarehouseUnavailable),  # libpq's: no SQLSTATE
])
def test_the_fault_table(error: type[psycopg.Error], fault: type[WarehouseFault]) -> None:
    made = fault_of(error("the server's words"))
    assert type(made) is fault
    assert made is not None
    assert made.message == "the server's words"
    assert made.driver_error == error.__name__
    assert fault_of(errors.UniqueViolation("a bug, not the environment")) is None
    assert fault_of(ValueError("not a driver error")) is None


# --- the history --------------------------------------------------------------------

def test_the_history_of_loaded_data(url: PostgresUrl, settings: Settings,
                                    held: postgresql.PostgresWarehouse) -> None:
    tables = {d: day(d, 10 + i) for i, d in enumerate(DAYS)}
    for d, table in tables.items():
        load(held, table, f"c-{d}")
    held.record_failure(LoadRecord("transactions_2026-02-13.parquet", None, 5, "merge",
                                   None, clock.utc_now(), "bad-1", feed="transactions"),
                        rows=None, error="bad")
    now = clock.utc_now()
    with postgresql.writing(url, settings.feeds.all, 2.0) as log:
        retry_id = log.record_retry(
            file_name="transactions_2026-02-13.parquet",
            failed_as="transactions_2026-02-13.parquet", sha256=None, reason="fixed",
            sidecar='{"a": 1}', requested_by="ops", requested_at=now)
        assert log.retry_of_sidecar("transactions_2026-02-13.parquet", {"a": 1}) is not None

    with postgresql.reading(url, 2.0) as history:
        assert history.schema_version() == schema.SCHEMA_VERSION
        loads = history.recent_loads(LoadFilter(limit=-1))
        assert [x.status for x in loads] == ["failed", "processed", "processed", "processed"]
        assert loads[1].run_date == DAYS[2]
        assert loads[1].finished_at.endswith("Z")
        assert len(loads[1].finished_at) == len("2026-02-10T00:00:00.000000Z")
        assert (loads[1].rows, loads[1].inserted) == (12, 12)
        assert len(history.recent_loads(LoadFilter(limit=2))) == 2
        globbed = history.recent_loads(LoadFilter(limit=-1, file="transactions_2026-02-1[01].*"))
        assert sorted(x.file_name for x in globbed) == [
            "transactions_2026-02-10.parquet", "transactions_2026-02-11.parquet"]
        assert history.recent_loads(LoadFilter(file="transactions_2026-02-1_.parquet")) == []
        assert [x.file_name for x in history.recent_loads(
            LoadFilter(status="failed"))] == ["transactions_2026-02-13.parquet"]
        assert history.recent_loads(LoadFilter(since="2999-01-01T00:00:00.000000Z")) == []

        tally = history.tally()
        assert (tally.processed, tally.failed, tally.loads) == (3, 1, 4)
        success = history.last_success(clock.utc_now())
        assert success is not None
        assert success.file_name == "transactions_2026-02-12.parquet"
        assert history.last_success("2000-01-01T00:00:00.000000Z") is None
        assert history.loads_in_the_future(now) == 0

        totals = history.day_totals(TRANSACTIONS)
        assert [(t.run_date, t.rows) for t in totals] == [(DAYS[0], 10), (DAYS[1], 11),
                                                          (DAYS[2], 12)]
        expected = pc.sum(tables[DAYS[1]].column("amount")).as_py()
        assert [label for label, _ in totals[1].figures] == ["customers", "amount"]
        assert totals[1].figure("amount") == pytest.approx(expected)
        customers = pc.count_distinct(tables[DAYS[1]].column("customer_id")).as_py()
        assert totals[1].figure("customers") == customers
        assert [t.run_date for t in history.day_totals(TRANSACTIONS, since=DAYS[1],
                                                       until=DAYS[1])] == [DAYS[1]]
        groups = history.group_totals(TRANSACTIONS)
        assert sum(g.rows for g in groups) == 33
        assert all(isinstance(g.group, int) for g in groups)
        assert [label for label, _ in groups[0].figures] == ["amount"]
        amounts = [g.figure("amount") for g in groups]
        assert amounts == sorted(amounts, key=lambda a: float(a or 0), reverse=True)

        assert [(r.run_date, r.rows) for r in history.rows_per_day(TRANSACTIONS, 2,
                                                                   DAYS[2])] == [
            (DAYS[1], 11), (DAYS[2], 12)]
        # A latest before every run date: the window ends at the newest of all.
        assert [r.run_date for r in history.rows_per_day(TRANSACTIONS, 1,
                                                         "2020-01-01")] == [DAYS[2]]
        assert history.has_rows(TRANSACTIONS)
        assert history.tally(feed="transactions") == history.tally()
        assert history.tally(feed="orders") == Tally(0, 0, 0)
        assert history.recent_loads(LoadFilter(feed="orders")) == []
        assert {x.feed for x in history.recent_loads(LoadFilter(limit=-1))} == {
            "transactions"}

        [retry] = history.retries(["transactions_2026-02-13.parquet"])
        assert (retry.id, retry.reason, retry.requested_by) == (retry_id, "fixed", "ops")
        assert retry.requested_at == now
        assert [d.node for d in history.daemons()] == ["test-node"]
        assert history.daemons()[0].heartbeat_at is not None

    # The session is read-only: a write is refused, and leaves the block as a fault.
    with (pytest.raises(WarehouseUnavailable, match="read-only"),
          postgresql.reading(url, 2.0) as history):
        history.conn.execute("DELETE FROM load_history")
    assert one(url, "SELECT count(*) FROM load_history") == 4


def test_reading_turns_other_driver_errors_into_database_unavailable(
        url: PostgresUrl, settings: Settings, held: postgresql.PostgresWarehouse) -> None:
    with (pytest.raises(DatabaseUnavailable, match="no_such_table"),
          postgresql.reading(url, 2.0) as history):
        history.conn.execute("SELECT * FROM no_such_table")


@pytest.mark.parametrize(("glob", "name", "matches"), [
    ("transactions_*.parquet", "transactions_2026-02-10.parquet", True),
    ("transactions_*.parquet", "transactions_2026-02-10.csv", False),
    ("t?x", "tax", True),
    ("t?x", "taax", False),
    ("a.b", "axb", False),
    ("[!x]y", "zy", True),
    ("[!x]y", "xy", False),
    ("[]a]", "]", True),
    ("[]a]", "b", False),
    ("[!]a]", "b", True),
    ("[!]a]", "]", False),
    ("[^x]y", "zy", True),
    ("a[", "a[", True),
    ("(a|b)+", "(a|b)+", True),
])
def test_globs_become_anchored_expressions(scratch_db: str, glob: str, name: str,
                                           matches: bool) -> None:
    with psycopg.connect(scratch_db) as conn:
        row = conn.execute("SELECT %s ~ %s", (name, glob_to_regex(glob))).fetchone()
    assert row == (matches,)
