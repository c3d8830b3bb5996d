"""Unit tests for `daemon.warehouse.sqlite.staging`: the per-load staging file and its clean-up.

Rows are read back the way the pipeline reads them, through the daemon's own connection
with `store.attached_staging`, never by the driver that wrote them.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import adbc_driver_manager as adbc
import adbc_driver_sqlite
import pyarrow as pa
import pytest

from filedrop_etl.config import EtlError, Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon.errors import BadInput
from filedrop_etl.daemon.warehouse.sqlite import schema, staging
from tests import sqlite_store as store
from tests.conftest import day_table

DAY = "2026-02-10"
NULLABLE = pa.schema([pa.field(c.name, c.arrow_type) for c in contract.COLUMNS])


def staging_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".staging-" in p.name)


def read_back(conn: sqlite3.Connection, path: Path) -> tuple[int, list[tuple[Any, ...]]]:
    with store.attached_staging(conn, path) as count:
        return count, conn.execute(f"SELECT * FROM {store.STAGED}").fetchall()


def test_staged_yields_the_path_and_count_and_holds_exactly_the_rows(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    table = pa.concat_tables([
        day_table(DAY, 23).cast(NULLABLE),
        pa.Table.from_pylist([
            {"txn_id": "20260210-é中😀", "customer_id": 2**63 - 1, "amount": 1e300,
             "run_date": DAY},
            {"txn_id": None, "customer_id": None, "amount": None, "run_date": None},
        ], schema=NULLABLE),
    ])
    batches = table.combine_chunks().to_batches(max_chunksize=7)
    assert len(batches) == 4
    with staging.staged(settings.db_file, batches, TRANSACTIONS) as (path, rows):
        assert rows == 25
        assert path.parent == settings.db_file.parent
        assert path.name.startswith("etl.db.staging-")
        assert staging.leftover_files(settings.db_file) == [path]
        count, staged = read_back(fresh_db, path)
    assert count == 25
    assert staged == [tuple(r.values()) for r in table.to_pylist()]
    assert not path.exists()
    assert staging_files(settings.db_file.parent) == []


def test_staged_with_no_batches_is_an_empty_table(settings: Settings,
                                                  fresh_db: sqlite3.Connection) -> None:
    with staging.staged(settings.db_file, [], TRANSACTIONS) as (path, rows):
        assert (rows, read_back(fresh_db, path)) == (0, (0, []))
    assert not path.exists()


def test_a_db_name_with_uri_characters_stages_and_attaches(tmp_path: Path) -> None:
    db = tmp_path / "we ird?#%[1].db"
    conn = store.connect(db)
    try:
        schema.init_schema(conn, TRANSACTIONS)
        table = day_table(DAY, 5)
        with staging.staged(db, table.to_batches(), TRANSACTIONS) as (path, rows):
            assert rows == 5 and path.name.startswith(db.name + ".staging-")
            assert read_back(conn, path) == (5, [tuple(r.values()) for r in table.to_pylist()])
        # The database is the file of that exact name: nothing cut at `?` or `#`.
        assert sorted(p.name for p in tmp_path.iterdir()) == [db.name, f"{db.name}-shm",
                                                              f"{db.name}-wal"]
    finally:
        conn.close()


class Boom(Exception):
    pass


def test_the_file_is_deleted_when_the_block_raises(settings: Settings) -> None:
    with pytest.raises(Boom), staging.staged(
            settings.db_file, day_table(DAY).to_batches(), TRANSACTIONS) as (path, _):
        assert path.is_file()
        raise Boom
    assert not path.exists()
    assert staging_files(settings.db_file.parent) == []


def failing_after(batches: int, error: BaseException) -> Iterator[pa.RecordBatch]:
    yield from day_table(DAY, 20).to_batches(max_chunksize=5)[:batches]
    raise error


@pytest.mark.parametrize("batches", [0, 1, 3])
def test_an_error_of_the_batches_comes_out_unchanged(settings: Settings,
                                                     batches: int) -> None:
    """Guards a found bug: the input's error was re-raised `from None`, which wiped the
    cause it carried (the reader's Arrow error, say) and put the driver's report of it
    in its context."""
    cause = ValueError("the Parquet page is corrupt")
    error = BadInput("the Parquet data cannot be read", hint="write it again")
    error.__cause__ = cause
    with pytest.raises(BadInput) as caught, \
            staging.staged(settings.db_file, failing_after(batches, error), TRANSACTIONS):
        pytest.fail("the block must not run")
    assert caught.value is error
    assert caught.value.__cause__ is cause
    assert caught.value.__context__ is None
    assert staging_files(settings.db_file.parent) == []


def test_an_interrupt_while_reading_passes_through(settings: Settings) -> None:
    with pytest.raises(KeyboardInterrupt), \
            staging.staged(settings.db_file, failing_after(2, KeyboardInterrupt()), TRANSACTIONS):
        pytest.fail("the block must not run")
    assert staging_files(settings.db_file.parent) == []


def assert_unavailable(info: pytest.ExceptionInfo[staging.StagingUnavailable],
                       reason: str) -> None:
    assert isinstance(info.value, EtlError)
    assert reason in info.value.message
    assert "retried" in info.value.hint


def test_a_missing_directory_is_staging_unavailable(tmp_path: Path) -> None:
    db = tmp_path / "absent" / "etl.db"
    with pytest.raises(staging.StagingUnavailable) as info, \
            staging.staged(db, day_table(DAY).to_batches(), TRANSACTIONS):
        pytest.fail("the block must not run")
    assert_unavailable(info, "No such file or directory")
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_staging_unavailable(settings: Settings,
                                            monkeypatch: pytest.MonkeyPatch) -> None:

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(staging.StagingUnavailable) as info, \
            staging.staged(settings.db_file, day_table(DAY).to_batches(), TRANSACTIONS):
        pytest.fail("the block must not run")
    assert_unavailable(info, "No space left on device")
    assert staging_files(settings.db_file.parent) == []


# The driver's words for a full disk, and (found with the daemon's memory capped) the
# loader's when no memory is left to map the driver, which is loaded for each file.
DRIVER_FAULTS = {
    "disk I/O error": adbc.AdbcStatusCode.IO,
    "NOT_FOUND: [Driver Manager] Could not load `libadbc_driver_sqlite.so`: dlopen() failed: "
    "libadbc_driver_sqlite.so: failed to map segment from shared object":
        adbc.AdbcStatusCode.NOT_FOUND,
}


@pytest.mark.parametrize("reason", list(DRIVER_FAULTS), ids=["io", "no-memory-to-load"])
def test_a_driver_failure_is_staging_unavailable_and_leaves_no_file(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, reason: str) -> None:
    """The staging file exists by then: it is removed all the same."""
    created: list[Path] = []

    def failing_connect(uri: str) -> Any:
        assert uri.startswith("file://")
        created.append(Path(os.fsdecode(unquote_to_bytes(uri.removeprefix("file://")))))
        raise adbc.OperationalError(reason, status_code=DRIVER_FAULTS[reason])

    monkeypatch.setattr(adbc_driver_sqlite, "connect", failing_connect)
    with pytest.raises(staging.StagingUnavailable) as info, \
            staging.staged(settings.db_file, day_table(DAY).to_batches(), TRANSACTIONS):
        pytest.fail("the block must not run")
    assert_unavailable(info, reason)
    assert [p.parent for p in created] == [settings.db_file.parent]
    assert str(created[0]) in info.value.message
    assert staging_files(settings.db_file.parent) == []


def test_leftover_files_are_this_databases_staging_files_only(tmp_path: Path) -> None:
    names = ["etl.db", "etl.db-wal", "etl.db-shm", "etl.db.lock", "etl.db.staging-abc",
             "etl.db.staging-x1y2z3w4", "other.db_file.staging-abc", "xetl.db.staging-abc",
             "etl.db.staging", "etl.dbx.staging-abc", "etl.db.stagingx"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert staging.leftover_files(tmp_path / "etl.db") == [
        tmp_path / "etl.db.staging-abc", tmp_path / "etl.db.staging-x1y2z3w4"]


@pytest.mark.parametrize(("db_name", "decoys"), [
    ("a[1].db", ["a1.db.staging-x"]),
    ("a*.db", ["abc.db.staging-x", "a.db.staging-x"]),
    ("a?.db", ["ab.db.staging-x"]),
    ("a[!x].db", ["ay.db.staging-x"]),
    ("a].db", []),
])
def test_leftover_files_escape_glob_characters_in_the_name(tmp_path: Path, db_name: str,
                                                           decoys: list[str]) -> None:
    ours = tmp_path / f"{db_name}.staging-x"
    for path in (ours, *(tmp_path / d for d in decoys)):
        path.write_bytes(b"")
    assert staging.leftover_files(tmp_path / db_name) == [ours]


def test_leftover_files_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert staging.leftover_files(tmp_path / "absent" / "etl.db") == []
