"""The database file deleted, moved or replaced under a running daemon.

SQLite writes to the file it opened, whatever happens at the path. Guards a found bug:
after `rm etl.db` (or a backup moved into its place) later drops logged `file_processed`
and were archived while /healthz said ok, and their rows were in an unlinked file, or the
restored file failed `PRAGMA integrity_check`. Now nothing is committed or archived into
a file that is not the one at the path, the daemon says so (`database_lost`, /healthz
503) and takes no file until the file is back or the daemon is restarted.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.warehouse.api import DatabaseMoved
from tests import sqlite_store as store
from tests.conftest import (
    DaemonProcess,
    day_table,
    drop,
    integrity,
    write_parquet,
)
from tests.http_client import request, url_of

Start = Callable[..., DaemonProcess]
DAY1, DAY2, DAY3 = "2026-02-10", "2026-02-11", "2026-02-12"


def name(day: str) -> str:
    return contract.file_name_for(day)


def load(daemon: DaemonProcess, tmp_path: Path, day: str) -> None:
    drop(write_parquet(tmp_path / "outbox", day_table(day), run_date=day),
         daemon.settings.inbox)
    daemon.wait_for("file_processed", file=name(day))


def files_in(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [n for n, in conn.execute('SELECT "file_name" FROM "load_history" ORDER BY "id"')]
    finally:
        conn.close()


def stays(condition: Callable[[], bool], what: str, seconds: float = 1.5) -> None:
    """Assert that `condition` holds throughout `seconds`: more than a heartbeat of the
    worker (1 s), in which it would have taken the file. An absence has no event to wait
    for, so this watches a bounded window instead."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), what
        time.sleep(0.05)


def assert_unhealthy(base: str, says: str) -> None:
    health = request(base + "/healthz")
    assert health.status == 503 and says in health.text, health.text


def test_a_deleted_database_stops_the_loads_until_a_restart(
        settings: Settings, start_daemon: Start, tmp_path: Path) -> None:
    daemon = start_daemon("--http", "127.0.0.1:0")
    base = url_of(daemon)
    load(daemon, tmp_path, DAY1)
    settings.db_file.unlink()
    [lost] = daemon.wait_for("database_lost")
    assert (lost["level"], lost["lost"], lost["db"]) == ("error", "missing", str(settings.db_file))
    assert "restart the daemon" in lost["hint"]
    assert_unhealthy(base, f"the database {settings.db_file} is not the file the daemon opened")

    drop(write_parquet(tmp_path / "outbox", day_table(DAY2), run_date=DAY2), settings.inbox)
    daemon.wait_for("file_detected", file=name(DAY2))
    stays(lambda: (settings.inbox / name(DAY2)).exists(), "the drop waits in the inbox")
    assert not daemon.matching("file_processed", file=name(DAY2))
    assert sorted(p.name for p in settings.processed.iterdir()) == [name(DAY1)]
    assert daemon.stop() == 0

    # The operator's answer: a restart, which makes a new database at the path.
    restarted = start_daemon(log_name="restarted.log")
    restarted.wait_for("file_processed", file=name(DAY2))
    assert files_in(settings.db_file) == [name(DAY2)]


def test_a_backup_moved_into_its_place_is_left_whole_and_so_is_the_old_file(
        settings: Settings, start_daemon: Start, tmp_path: Path) -> None:
    daemon = start_daemon("--http", "127.0.0.1:0")
    base = url_of(daemon)
    load(daemon, tmp_path, DAY1)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(settings.db_file) as source, sqlite3.connect(backup) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    load(daemon, tmp_path, DAY2)
    moved = tmp_path / "moved.db_file"
    settings.db_file.rename(moved)
    backup.rename(settings.db_file)
    [lost] = daemon.wait_for("database_lost")
    assert lost["lost"] == "replaced"
    assert_unhealthy(base, "(replaced)")

    drop(write_parquet(tmp_path / "outbox", day_table(DAY3), run_date=DAY3), settings.inbox)
    daemon.wait_for("file_detected", file=name(DAY3))
    stays(lambda: (settings.inbox / name(DAY3)).exists(), "the drop waits in the inbox")
    assert daemon.stop() == 0
    # Both files whole: the moved one holds every load committed into it (its write-ahead
    # log, found by the old path, was emptied into it), the restored one only its own.
    assert integrity(moved) == integrity(settings.db_file) == [("ok",)]
    assert files_in(moved) == [name(DAY1), name(DAY2)]
    assert files_in(settings.db_file) == [name(DAY1)]

    restarted = start_daemon(log_name="restarted.log")
    restarted.wait_for("file_processed", file=name(DAY3))
    assert files_in(settings.db_file) == [name(DAY1), name(DAY3)]
    assert integrity(settings.db_file) == [("ok",)]


def test_the_same_file_moved_back_resumes_the_loads(
        settings: Settings, start_daemon: Start, tmp_path: Path) -> None:
    daemon = start_daemon("--http", "127.0.0.1:0")
    base = url_of(daemon)
    aside = tmp_path / "aside.db"
    settings.db_file.rename(aside)
    daemon.wait_for("database_lost")
    aside.rename(settings.db_file)
    [back] = daemon.wait_for("database_returned")
    assert back["db"] == str(settings.db_file)
    load(daemon, tmp_path, DAY1)
    assert request(base + "/healthz").status == 200
    assert files_in(settings.db_file) == [name(DAY1)]


def test_no_commit_lands_in_a_file_that_left_its_path(settings: Settings) -> None:
    conn = store.connect(settings.db_file)
    try:
        conn.execute("CREATE TABLE t (x)")
        settings.db_file.rename(settings.db_file.with_name("gone.db"))
        with pytest.raises(DatabaseMoved, match="no file is at that path"), \
                store.transaction(conn):
            conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
    finally:
        conn.close()


def test_a_load_into_a_replaced_database_waits_in_the_work_directory(
        settings: Settings, pipeline: Pipeline, fresh_db: sqlite3.Connection) -> None:
    claimed = write_parquet(settings.work, day_table(DAY1), run_date=DAY1)
    settings.db_file.rename(settings.db_file.with_name("old.db"))
    settings.db_file.write_bytes(b"")  # another file at the path
    outcome = pipeline.process(claimed)
    assert (outcome.status, outcome.path) == ("retry", claimed)
    assert claimed.exists() and list(settings.processed.iterdir()) == []
    # Through the connection that still holds the old file: nothing was committed there.
    for table in (store.FACT, store.LEDGER):
        assert fresh_db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)
