"""The metrics: a real daemon scraped over HTTP, its numbers against its own log lines.

The end-to-end test drops a good file before the start (found by the sweep), a bad one
and a re-drop (found by their events), scrapes /metrics and parses it with
prometheus_client's parser; a restart must keep the last success time. In-process
tests cover what a daemon run cannot steer cheaply: the queue and the vanished tally.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from filedrop_etl.config import Settings, contract
from filedrop_etl.daemon import files
from filedrop_etl.daemon.app.worker import build
from filedrop_etl.daemon.ops.folders import failed_count, failed_files
from tests.conftest import (
    ROOT,
    DaemonProcess,
    as_warehouse,
    day_table,
    drop,
    ledger,
    replaced_at,
    write_parquet,
)
from tests.http_client import Scrape, url_of
from tools.harness import process

Start = Callable[..., DaemonProcess]
DAY, BAD_DAY, LATER_DAY = "2026-03-01", "2026-03-02", "2026-03-03"
# No periodic rescan during the test: every file after the sweep is found by its event.
QUIET = ("--http", "127.0.0.1:0", "--rescan-seconds", "3600")


def test_a_scrape_counts_files_rows_durations_and_how_each_file_was_found(
        tmp_path: Path, settings: Settings, start_daemon: Start) -> None:
    good = write_parquet(tmp_path / "outbox", day_table(DAY), contract.file_name_for(DAY))
    drop(good, settings.inbox)  # before the start: the sweep finds it
    daemon = start_daemon(*QUIET)
    base = url_of(daemon)
    daemon.wait_for("file_processed")
    bad = tmp_path / "outbox" / contract.file_name_for(BAD_DAY)
    bad.write_bytes(b"not parquet at all")
    drop(bad, settings.inbox)
    daemon.wait_for("file_failed")
    drop(write_parquet(tmp_path / "outbox", day_table(DAY), contract.file_name_for(DAY)),
         settings.inbox)
    processed = daemon.wait_for("file_processed", count=2)
    scrape = Scrape.of(base)

    assert scrape.by("etl_files_total", "outcome") == {
        "processed": 2, "failed": 1, "retry": 0, "vanished": 0, "claim_failed": 0,
        "claimed_elsewhere": 0}
    assert scrape.by("etl_rows_total", "change") == {
        change: sum(line[change] for line in processed)
        for change in ("inserted", "updated", "unchanged", "deleted")}
    # The re-drop's rows.
    assert scrape.value("etl_rows_total", feed="transactions", change="unchanged") == 25
    assert scrape.by("etl_file_duration_seconds_count", "outcome") == {
        "processed": 2, "failed": 1, "retry": 0, "vanished": 0}
    # The histogram's sum is the pipeline's own durations, give or take the call itself.
    logged = sum(line["duration_ms"] for line in [*processed, *daemon.matching("file_failed")])
    assert 0 < logged / 1000 <= sum(scrape.by("etl_file_duration_seconds_sum", "outcome")
                                    .values()) < logged / 1000 + 0.5
    assert scrape.by("etl_files_detected_total", "found_by") == {
        "sweep": 1, "event": 2, "rescan": 0}
    assert time.time() - 60 < scrape.value("etl_last_success_timestamp_seconds") <= time.time()
    assert scrape.value("etl_daemon_info", version="0.1.0", write_mode="merge",
                        observer="auto") == 1
    assert (scrape.value("etl_queue_depth"), scrape.value("etl_failed_files")) == (0, 1)
    assert (scrape.value("etl_healthy"), scrape.value("etl_ready")) == (1, 1)
    assert daemon.stop() == 0

    # A restart must not look like a day without success: seeded from the ledger.
    restarted = start_daemon(*QUIET)
    seeded = Scrape.of(url_of(restarted))
    finished = max(r["finished_at"] for r in ledger(settings.db_file) if r["status"] == "processed")
    assert seeded.value("etl_last_success_timestamp_seconds") == \
        datetime.fromisoformat(finished).timestamp()
    assert seeded.value("etl_files_total", feed="transactions", outcome="processed") == 0
    assert restarted.stop() == 0


def test_a_success_recorded_in_the_future_is_not_the_last_one(
        tmp_path: Path, settings: Settings, start_daemon: Start) -> None:
    """Guards a found bug: after a clock that ran ahead was set back, a restart seeded
    the last-success metric from the future `finished_at`, which silenced the no-success
    alert until that time came, and `status` said otherwise."""
    daemon = start_daemon(*QUIET)
    for day in (DAY, LATER_DAY):
        drop(write_parquet(tmp_path / "outbox", day_table(day), contract.file_name_for(day)),
             settings.inbox)
        daemon.wait_for("file_processed", file=contract.file_name_for(day))
    assert daemon.stop() == 0
    # The second load was timed by a clock a year ahead (since set back).
    conn = sqlite3.connect(settings.db_file)
    with conn:
        conn.execute("UPDATE load_history SET finished_at = '2027-12-03T10:00:00.000000Z' "
                     "WHERE file_name = ?", (contract.file_name_for(LATER_DAY),))
    conn.close()
    [first] = [r for r in ledger(settings.db_file) if r["file_name"] == contract.file_name_for(DAY)]

    restarted = start_daemon(*QUIET, log_name="restarted.log")
    seeded = Scrape.of(url_of(restarted)).value("etl_last_success_timestamp_seconds")
    assert seeded == datetime.fromisoformat(first["finished_at"]).timestamp() < time.time()
    status = subprocess.run(
        process.daemon_argv("status", "--json", "--db", str(settings.db_file),
                            "--inbox", str(settings.inbox), "--processed",
                            str(settings.processed), "--failed", str(settings.failed)),
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    document = json.loads(status.stdout)
    assert document["last_success"]["finished_at"] == first["finished_at"]
    assert document["loads_in_the_future"] == 1
    assert restarted.stop() == 0


def test_the_queue_is_waiting_files_and_claims_waiting_for_a_retry(
        tmp_path: Path, settings: Settings, fresh_db: sqlite3.Connection) -> None:
    worker = build(settings, as_warehouse(fresh_db))  # not started: the test is its worker
    watcher = worker.watcher
    watcher.prepare()
    for day in (DAY, LATER_DAY):
        write_parquet(settings.inbox, day_table(day), contract.file_name_for(day))
    # A claim left in the work directory: resumed at start-up, it waits in the retry queue.
    write_parquet(settings.work, day_table(DAY), "claimed.parquet")
    watcher.begin()
    assert (len(watcher.inbox.candidates), len(watcher._retries)) == (2, 1)
    assert Scrape(worker.metrics.exposition().decode()).value("etl_queue_depth") == 3


def test_a_file_deleted_before_its_claim_counts_as_vanished(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    """As `daemon_stopped` counts it: the two tallies must not disagree."""
    worker = build(settings, as_warehouse(fresh_db))
    watcher = worker.watcher
    watcher.prepare()
    path = write_parquet(settings.inbox, day_table(DAY), contract.file_name_for(DAY))
    watcher.begin()
    path.unlink()
    watcher.turn(time.monotonic() + settings.rescan_seconds)  # its periodic rescan
    assert worker.report.tally()["vanished"] == 1
    scrape = Scrape(worker.metrics.exposition().decode())
    assert scrape.value("etl_files_total", feed="transactions", outcome="vanished") == 1


def test_failed_count_counts_what_waits_for_a_person(tmp_path: Path) -> None:
    failed = tmp_path / "failed"
    assert failed_count(failed) == 0  # not made yet
    failed.mkdir()
    for name in ("a.parquet", "a.parquet" + files.SIDECAR_SUFFIX, "b.parquet",
                 "b.parquet" + files.SIDECAR_SUFFIX, ".sidecar-x.tmp"):
        (failed / name).write_bytes(b"")
    assert failed_count(failed) == 2 == len(failed_files(failed))  # as `status` lists them


def test_a_superseded_failed_file_is_not_a_file_waiting_for_a_retry(
        tmp_path: Path, settings: Settings, fresh_db: sqlite3.Connection) -> None:
    """Issue 24, item 10: `etl_failed_files` counted a failed file whose run date had
    loaded since from a later drop, so `EtlFailedFilesWaiting` fired while `status`
    exited 0. It counts the files waiting for a retry; `etl_superseded_files` the rest,
    as `status` and the page count them."""
    worker = build(replace(settings, settle_seconds=0.0), as_warehouse(fresh_db))
    watcher = worker.watcher
    watcher.prepare()
    watcher.begin()
    name = contract.file_name_for(DAY)

    def dropped(table: Any) -> Scrape:
        drop(write_parquet(tmp_path / "outbox", table, name), settings.inbox)
        watcher.request_rescan("test")
        while watcher.turn() == 0.0:
            pass
        return Scrape(worker.metrics.exposition().decode())

    try:
        first = dropped(replaced_at(day_table(DAY), "amount", 0, -5.0))  # fails its checks
        assert worker.report.tally()["failed"] == 1
        assert (first.value("etl_failed_files"), first.value("etl_superseded_files")) == (1, 0)
        later = dropped(day_table(DAY))
        assert worker.report.tally()["processed"] == 1 and (settings.failed / name).exists()
        assert (later.value("etl_failed_files"), later.value("etl_superseded_files")) == (0, 1)
        status = subprocess.run(
            process.daemon_argv("status", "--json", "--db", str(settings.db_file),
                                "--inbox", str(settings.inbox), "--failed", str(settings.failed)),
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        document = json.loads(status.stdout)
        assert (status.returncode, document["failed"]["to_retry"],
                document["failed"]["superseded"]) == (0, 0, 1)
    finally:
        worker.metrics.close()
        watcher.locks.release()
