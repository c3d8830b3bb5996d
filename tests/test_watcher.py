"""The watcher in-process: a real watchdog observer on a real inbox, one worker thread.

Covers what the end-to-end tests cannot steer: a rescan forced by watchdog's overflow
warning when no event arrives, a handler that must never raise, transient retries with
backoff, and `once` waiting for a file still settling.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from structlog.testing import capture_logs
from watchdog.events import FileMovedEvent, FileSystemEvent

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon import files
from filedrop_etl.daemon.app.worker import build
from filedrop_etl.daemon.outcomes import OUTCOMES
from filedrop_etl.daemon.warehouse.sqlite import schema
from filedrop_etl.daemon.watch.observer import Hints, InboxEventHandler
from filedrop_etl.daemon.watch.watcher import HEARTBEAT_SECONDS, Watcher, retry_delay
from tests import sqlite_store as store
from tests.conftest import (
    as_warehouse,
    day_table,
    drop,
    fact_rows,
    ledger,
    wait_until,
    write_parquet,
)

NAME = contract.file_name_for("2026-02-10")


@pytest.fixture
def watcher(settings: Settings, fresh_db: sqlite3.Connection) -> Iterator[Watcher]:
    """A started watcher; stopped and joined at teardown."""
    running = build(settings, as_warehouse(fresh_db)).watcher
    running.start()
    yield running
    running.request_stop()
    running.join()


def prepared(tmp_path: Path, name: str = NAME, run_date: str = "2026-02-10") -> Path:
    return write_parquet(tmp_path / "outbox", day_table(run_date), name)


def test_a_dropped_file_is_loaded_and_stop_joins_every_thread(
        tmp_path: Path, settings: Settings, fresh_db: sqlite3.Connection) -> None:
    # No periodic rescan: on a busy machine it could find the file before its event.
    watcher = build(replace(settings, rescan_seconds=3600.0), as_warehouse(fresh_db)).watcher
    watcher.start()
    try:
        assert watcher.swept.wait(timeout=30), "the start-up sweep"
        with capture_logs() as logs:
            drop(prepared(tmp_path), settings.inbox)
            wait_until(lambda: watcher.outcomes["processed"] == 1, "the file to load")
    finally:
        watcher.request_stop()
        watcher.join()
    assert (settings.processed / NAME).exists()
    [detected] = [e for e in logs if e["event"] == "file_detected"]
    assert detected["found_by"] == "event"


def test_an_overflow_warning_triggers_a_rescan(tmp_path: Path, settings: Settings,
                                               fresh_db: sqlite3.Connection) -> None:
    slow = replace(settings, rescan_seconds=3600.0)
    running = build(slow, as_warehouse(fresh_db)).watcher
    running.start()
    try:
        assert running.swept.wait(timeout=30)
        observer = running._observer._observer
        assert observer is not None
        observer.unschedule_all()  # events are lost from here on
        drop(prepared(tmp_path), settings.inbox)
        with capture_logs() as logs:
            logging.getLogger("watchdog.observers.inotify_c").warning(
                "Inotify queue overflowed; filesystem events were lost")
            wait_until(lambda: running.outcomes["processed"] == 1, "the rescan to find it")
    finally:
        running.request_stop()
        running.join()
    assert [e["found_by"] for e in logs if e["event"] == "file_detected"] == ["rescan"]
    assert [e["reason"] for e in logs if e["event"] == "inbox_rescanned"] == ["overflow"]


def test_the_event_handler_never_raises() -> None:
    class Broken(FileSystemEvent):
        @property
        def event_type(self) -> str:  # type: ignore[override]
            raise RuntimeError("malformed event")

    hints = Hints()
    InboxEventHandler(hints).on_any_event(Broken("x"))
    assert hints.drain() == ([], "overflow")


def test_the_handler_records_the_destination_of_a_move() -> None:
    from watchdog.events import FileClosedEvent, FileMovedEvent

    hints = Hints()
    handler = InboxEventHandler(hints)
    handler.on_any_event(FileMovedEvent("/in/.a.tmp", "/in/a.parquet"))
    handler.on_any_event(FileClosedEvent("/in/b.parquet"))
    assert hints.drain() == ([("/in/a.parquet", "moved"), ("/in/b.parquet", "closed")], None)
    assert hints.wake.is_set()


@dataclass
class LockedDatabase:
    """A watcher whose database another connection holds a write lock on."""

    watcher: Watcher
    blocker: sqlite3.Connection

    def release(self) -> None:
        self.blocker.execute("ROLLBACK")


@pytest.fixture
def locked_db(settings: Settings) -> Iterator[LockedDatabase]:
    """A started watcher with a short busy timeout, its database write-locked by another
    connection until `release()`; everything stopped and closed at teardown."""
    conn = store.connect(settings.db_file, busy_timeout_seconds=0.05)
    schema.init_schema(conn, TRANSACTIONS)
    blocker = sqlite3.connect(settings.db_file, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    running = build(settings, as_warehouse(conn)).watcher
    running.start()
    yield LockedDatabase(running, blocker)
    running.request_stop()
    running.join()
    if blocker.in_transaction:
        blocker.execute("ROLLBACK")
    blocker.close()
    conn.close()


def test_a_locked_database_is_retried_until_it_loads(tmp_path: Path, settings: Settings,
                                                     locked_db: LockedDatabase) -> None:
    running = locked_db.watcher
    drop(prepared(tmp_path), settings.inbox)
    wait_until(lambda: running.outcomes["retry"] >= 1, "a transient failure")
    assert (settings.work / NAME).exists() and not settings.failed.joinpath(NAME).exists()
    locked_db.release()
    wait_until(lambda: running.outcomes["processed"] == 1 and not running._retries,
               "the retry to load it and be forgotten")
    assert len(fact_rows(settings.db_file)) == 25
    # The loaded file is not retried again (it would have been found vanished).
    assert running.outcomes["vanished"] == 0


def test_once_waits_for_a_settling_file_then_exits(settings: Settings,
                                                   fresh_db: sqlite3.Connection) -> None:
    # Written in place just now, with no event to say it is complete: it must settle.
    write_parquet(settings.inbox, day_table("2026-02-10"), NAME)
    running = build(settings, as_warehouse(fresh_db), once=True).watcher
    running.start()
    running.join()
    assert running.outcomes["processed"] == 1 and not running.crashed
    assert list(settings.inbox.iterdir()) == []


def test_files_left_in_work_are_resumed_first(settings: Settings,
                                              fresh_db: sqlite3.Connection) -> None:
    write_parquet(settings.work, day_table("2026-02-09"), contract.file_name_for("2026-02-09"))
    write_parquet(settings.inbox, day_table("2026-02-10"), NAME)
    with capture_logs() as logs:
        running = build(settings, as_warehouse(fresh_db), once=True).watcher
        running.start()
        running.join()
    order = [e["file"] for e in logs if e["event"] == "file_processed"]
    assert order == [contract.file_name_for("2026-02-09"), NAME]
    events = [e["event"] for e in logs]
    assert events.index("file_resumed") == 0
    # One line says the start-up work is found: before any file is loaded.
    [swept] = [e for e in logs if e["event"] == "inbox_swept"]
    assert (swept["found"], swept["resumed"]) == (1, 1)
    assert events.index("inbox_swept") < events.index("file_claimed")


@pytest.mark.slow  # waits out two rounds of retries
def test_later_drops_wait_while_an_older_file_is_retried(tmp_path: Path, settings: Settings,
                                                         locked_db: LockedDatabase) -> None:
    """Guards a found bug: a corrected re-drop loaded first, then the older drop's retry
    overwrote it with the old values."""
    running = locked_db.watcher
    original = day_table("2026-02-10")
    corrected = original.set_column(2, "amount", pa.array([999.0] * 25))
    drop(write_parquet(tmp_path / "a", original, NAME), settings.inbox)
    wait_until(lambda: running.outcomes["retry"] >= 1, "the first file to wait")
    drop(write_parquet(tmp_path / "b", corrected, NAME), settings.inbox)
    wait_until(lambda: running.outcomes["retry"] >= 2, "a second retry round")
    assert (settings.inbox / NAME).exists()  # not claimed while the retry is pending
    locked_db.release()
    wait_until(lambda: running.outcomes["processed"] == 2, "both files to load in order")
    assert {row[2] for row in fact_rows(settings.db_file)} == {999.0}


def test_once_counts_a_file_it_could_not_claim(settings: Settings,
                                               fresh_db: sqlite3.Connection) -> None:
    running = build(settings, as_warehouse(fresh_db), once=True).watcher
    running.prepare()
    settings.work.rmdir()
    settings.work.write_bytes(b"")  # the claim's rename now fails
    write_parquet(settings.inbox, day_table("2026-02-10"), NAME)
    with capture_logs() as logs:
        running.start()
        running.join()
    assert running.outcomes["claim_failed"] == 1 and not running.crashed
    assert (settings.inbox / NAME).exists()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "work_unavailable", "claim_failed"]


def test_a_file_renamed_in_from_outside_is_taken_without_waiting_to_settle(
        tmp_path: Path, settings: Settings, fresh_db: sqlite3.Connection) -> None:
    # A rename from another directory is an unpaired IN_MOVED_TO: by default watchdog
    # reports it as a creation, which would wait the whole settle time.
    patient = replace(settings, settle_seconds=120.0, rescan_seconds=3600.0)
    running = build(patient, as_warehouse(fresh_db)).watcher
    running.start()
    try:
        assert running.swept.wait(timeout=30), "the start-up sweep"
        drop(prepared(tmp_path), settings.inbox)
        wait_until(lambda: running.outcomes["processed"] == 1,
                   "the moved-in file to load before its settle time", timeout=20)
    finally:
        running.request_stop()
        running.join()


def test_a_move_out_of_the_inbox_is_no_hint() -> None:
    hints = Hints()
    InboxEventHandler(hints).on_any_event(FileMovedEvent("/inbox/" + NAME, ""))
    assert hints.drain() == ([], None)
    InboxEventHandler(hints).on_any_event(FileMovedEvent("", "/inbox/" + NAME))
    assert hints.drain() == ([("/inbox/" + NAME, "moved")], None)


def _staging_disk_full(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                       faults: list[int]) -> None:
    """Make the next `faults[0]` staging files fail to be created (ENOSPC)."""
    real_mkstemp = tempfile.mkstemp

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if str(kwargs.get("prefix", "")).startswith(f"{settings.db_file.name}.staging-") \
                and faults[0] > 0:
            faults[0] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", flaky)


def corrected(run_date: str = "2026-02-10") -> pa.Table:
    table = day_table(run_date)
    amounts = pc.add(table.column("amount"), 1.0)
    return table.set_column(table.schema.get_field_index("amount"), "amount", amounts)


def test_a_once_drain_never_applies_a_later_drop_before_a_file_that_must_wait(
        tmp_path: Path, settings: Settings, fresh_db: sqlite3.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards a found bug: in a --once drain, the first drop of a day hit a transient
    fault and stayed in the work directory while its corrected re-drop loaded; the next
    drain then applied the older drop over the newer one."""
    faults = [1]
    _staging_disk_full(monkeypatch, settings, faults)
    newer = "transactions_2026-02-10~1.parquet"
    drop(prepared(tmp_path), settings.inbox)
    drop(write_parquet(tmp_path / "outbox2", corrected(), newer), settings.inbox)
    drains = []
    for _ in range(2):
        drain = build(settings, as_warehouse(fresh_db), once=True).watcher
        drain.start()
        drain.join()
        drains.append(dict(drain.outcomes))
        if len(drains) == 1:
            assert (settings.inbox / newer).exists()  # not claimed behind the waiting file
    assert drains == [{"retry": 1}, {"processed": 2}]
    assert [r["file_name"] for r in ledger(settings.db_file)] == [NAME, newer]
    assert [r[2] for r in fact_rows(settings.db_file)] == corrected().column("amount").to_pylist()


def test_a_waiting_left_over_holds_back_the_claims_made_after_it(
        tmp_path: Path, settings: Settings, fresh_db: sqlite3.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Left-over claims resume in claim order; one that must wait holds the rest back."""
    settings.work.mkdir(parents=True, exist_ok=True)
    older = drop(prepared(tmp_path), settings.work)
    newer = drop(write_parquet(tmp_path / "outbox2", corrected(), NAME), settings.work,
                 "transactions_2026-02-10~1.parquet")
    # Claim order is by change time: make the corrected file the later claim.
    os.utime(newer)
    assert files.in_claim_order(settings.work) == [older, newer]
    _staging_disk_full(monkeypatch, settings, [1])
    running = build(replace(settings, rescan_seconds=3600.0), as_warehouse(fresh_db)).watcher
    running.start()
    try:
        wait_until(lambda: running.outcomes["processed"] == 2, "both left-overs to load")
    finally:
        running.request_stop()
        running.join()
    assert running.outcomes["retry"] == 1
    assert [r["file_name"] for r in ledger(settings.db_file)] == [older.name, newer.name]
    assert [r[2] for r in fact_rows(settings.db_file)] == corrected().column("amount").to_pylist()


def test_health_names_a_stopped_worker_a_stall_and_a_dead_observer(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    running = build(settings, as_warehouse(fresh_db)).watcher
    assert running.report.health() == ["the worker thread is not running",
                                "the inbox observer is not running"]
    running.start()
    try:
        assert running.swept.wait(timeout=30)
        assert running.report.health() == []
        # The idle loop ticks at least every HEARTBEAT_SECONDS: a tick long ago comes back.
        running.report.update(ticked_at=running.report.now.ticked_at - settings.stall_seconds - 60)
        [stalled] = running.report.health()
        assert stalled.startswith("the worker has not ticked for ")
        wait_until(lambda: running.report.health() == [], "the idle worker to tick again")
    finally:
        running.request_stop()
        running.join()
    assert running.report.health() == ["the worker thread is not running",
                                "the inbox observer is not running"]


def test_an_unwatched_inbox_is_unhealthy_but_not_stuck(settings: Settings,
                                                       fresh_db: sqlite3.Connection) -> None:
    """A restart cannot make a directory where a file is (it would only exit 2 at start):
    /healthz reports it, while the systemd watchdog, fed from `stuck`, keeps the daemon
    running to watch the inbox again by itself."""
    running = build(settings, as_warehouse(fresh_db)).watcher
    running.start()
    try:
        assert running.swept.wait(timeout=30)
        shutil.rmtree(settings.inbox)
        settings.inbox.write_bytes(b"not a directory")
        wait_until(lambda: running.report.health() != [], "the lost watch to be noticed")
        assert running.report.health() == [
            f"the inbox {settings.inbox} is not watched: no directory at its path (deleted?)"]
        assert running.report.stuck() == []
        settings.inbox.unlink()
        wait_until(lambda: running.report.health() == [], "the inbox to be watched again")
    finally:
        running.request_stop()
        running.join()


@pytest.fixture
def turned(settings: Settings, fresh_db: sqlite3.Connection) -> Iterator[Watcher]:
    """A watcher whose loop the test runs one `turn` at a time: no worker thread, no
    observer; its folders claimed, left-over claims resumed and the inbox swept. Files
    count as complete once seen (no settle time), so a turn can take one at once."""
    worker = build(replace(settings, settle_seconds=0.0), as_warehouse(fresh_db))
    worker.watcher.prepare()
    worker.watcher.begin()
    yield worker.watcher
    worker.watcher.locks.release()


def test_one_turn_loads_a_file_its_event_reports(tmp_path: Path, settings: Settings,
                                                 turned: Watcher) -> None:
    dropped = drop(prepared(tmp_path), settings.inbox)
    turned.hints.add(str(dropped), "moved")  # what the observer would hand over
    with capture_logs() as logs:
        pause = turned.turn()
    assert pause == 0.0  # it did work: the next turn comes at once
    assert [(e["event"], e.get("found_by")) for e in logs if e["event"] in (
        "file_detected", "file_processed")] == [("file_detected", "event"),
                                                ("file_processed", None)]
    assert (settings.processed / NAME).exists() and list(settings.inbox.iterdir()) == []
    assert [r["file_name"] for r in ledger(settings.db_file)] == [NAME]
    report = turned.report
    assert (report.tally()["processed"], report.queue_depth(), report.in_hand()) == (1, 0, None)


def test_a_turn_with_nothing_to_do_does_nothing(settings: Settings, turned: Watcher) -> None:
    before = turned.report.now
    with capture_logs() as logs:
        pause = turned.turn()
    assert logs == []
    # Until the periodic rescan, and never longer than the heartbeat (its tick).
    assert pause is not None and 0 < pause <= HEARTBEAT_SECONDS
    assert turned.report.now.ticked_at > before.ticked_at  # yet it showed life
    assert turned.report.tally() == before.tally == dict.fromkeys(OUTCOMES, 0)
    assert ledger(settings.db_file) == [] and list(settings.processed.iterdir()) == []


def test_a_turn_finds_a_file_by_the_periodic_rescan_once_it_is_due(
        tmp_path: Path, settings: Settings, turned: Watcher) -> None:
    drop(prepared(tmp_path), settings.inbox)  # no event: only a rescan finds it
    assert turned.turn() != 0.0 and turned.report.queue_depth() == 0
    with capture_logs() as logs:
        assert turned.turn(time.monotonic() + settings.rescan_seconds) == 0.0
    assert [e["found_by"] for e in logs if e["event"] == "file_detected"] == ["rescan"]
    assert (settings.processed / NAME).exists()


def test_a_turn_during_the_backoff_does_not_load_the_file_then_one_after_does(
        tmp_path: Path, settings: Settings, turned: Watcher,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _staging_disk_full(monkeypatch, settings, [1])
    turned.hints.add(str(drop(prepared(tmp_path), settings.inbox)), "moved")
    assert turned.turn() == 0.0  # the attempt, a transient failure
    assert turned.report.tally()["retry"] == 1 and (settings.work / NAME).exists()
    assert turned.report.queue_depth() == 1  # a claim waiting for its retry
    with capture_logs() as logs:
        pause = turned.turn()  # the disk has room again, but the backoff is not over
    assert pause is not None and 0 < pause <= retry_delay(1)
    assert [e["event"] for e in logs] == [] and (settings.work / NAME).exists()
    assert turned.turn(time.monotonic() + retry_delay(1)) == 0.0
    assert (settings.processed / NAME).exists()
    assert turned.report.tally()["processed"] == 1 and turned.report.queue_depth() == 0
