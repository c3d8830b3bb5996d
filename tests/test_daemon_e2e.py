"""The real daemon as a subprocess on real directories: what a user sees.

Each test starts `python -m filedrop_etl`, drops real files (by rename, or written in place),
and waits on the daemon's own JSON log lines and on the archive, never on fixed sleeps.
Every log line must parse as JSON (`DaemonProcess.events` fails otherwise).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.generator.transactions import generate
from tests.backends import fact_rows_in, ledger_in
from tests.conftest import (
    ROOT,
    DaemonProcess,
    day_table,
    drop,
    fact_rows,
    on_both_backends,
    write_parquet,
)
from tools.harness import process

Start = Callable[..., DaemonProcess]
DAY1, DAY2 = "2026-02-10", "2026-02-11"


def name(day: str) -> str:
    return contract.file_name_for(day)


def outbox(tmp_path: Path) -> Path:
    """Where tests prepare files before dropping them: same filesystem, not watched."""
    path = tmp_path / "outbox"
    path.mkdir(exist_ok=True)
    return path


def drop_day(tmp_path: Path, daemon: DaemonProcess, day: str, table: pa.Table | None = None,
             ) -> None:
    source = write_parquet(outbox(tmp_path), table if table is not None else day_table(day),
                           name(day))
    drop(source, daemon.settings.inbox)


@on_both_backends
def test_three_run_scenario(tmp_path: Path, start_daemon: Start) -> None:
    daemon = start_daemon()
    drop_day(tmp_path, daemon, DAY1)
    daemon.wait_for("file_processed", count=1)
    drop_day(tmp_path, daemon, DAY1)
    daemon.wait_for("file_processed", count=2)
    drop_day(tmp_path, daemon, DAY2)
    lines = daemon.wait_for("file_processed", count=3)
    assert [(e["file"], e["inserted"], e["updated"], e["unchanged"]) for e in lines] == [
        (name(DAY1), 25, 0, 0), (name(DAY1), 0, 0, 25), (name(DAY2), 25, 0, 0)]
    assert [(r["status"], r["inserted"], r["updated"], r["unchanged"])
            for r in ledger_in(daemon.settings)] == [
        ("processed", 25, 0, 0), ("processed", 0, 0, 25), ("processed", 25, 0, 0)]
    assert len(fact_rows_in(daemon.settings)) == 50
    assert daemon.stop() == 0
    assert daemon.matching("daemon_stopped", processed=3, failed=0)
    # A clean run logs nothing an operator would be paged for.
    assert [e for e in daemon.events() if e["level"] in ("error", "critical")] == []
    assert list(daemon.settings.inbox.iterdir()) == []
    assert list(daemon.settings.work.iterdir()) == []
    assert len(list(daemon.settings.processed.iterdir())) == 3


@on_both_backends
def test_identical_redrop_leaves_fact_byte_identical(tmp_path: Path, start_daemon: Start) -> None:
    daemon = start_daemon()
    drop_day(tmp_path, daemon, DAY1)
    daemon.wait_for("file_processed")
    before = fact_rows_in(daemon.settings)
    # Re-drop the archived file itself: the very same bytes.
    drop(daemon.settings.processed / name(DAY1), daemon.settings.inbox)
    [_, again] = daemon.wait_for("file_processed", count=2)
    assert fact_rows_in(daemon.settings) == before
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 25)


@on_both_backends
def test_corrected_redrop_in_replace_mode_makes_the_day_equal_the_file(
        tmp_path: Path, start_daemon: Start) -> None:
    daemon = start_daemon("--write-mode", "replace")
    drop_day(tmp_path, daemon, DAY1)
    drop_day(tmp_path, daemon, DAY2)
    daemon.wait_for("file_processed", count=2)
    corrected = day_table(DAY1, rows=20, seed=7)
    drop_day(tmp_path, daemon, DAY1, corrected)
    last = daemon.wait_for("file_processed", count=3)[-1]
    assert last["deleted"] == 5 and last["rows"] == 20
    rows = fact_rows_in(daemon.settings)
    day1 = sorted((r[0], r[1], r[2]) for r in rows if r[3] == DAY1)
    assert day1 == sorted(zip(corrected.column("txn_id").to_pylist(),
                              corrected.column("customer_id").to_pylist(),
                              corrected.column("amount").to_pylist(), strict=True))
    assert len([r for r in rows if r[3] == DAY2]) == 25


@on_both_backends
def test_shuffled_keys_load_as_sorted_ones_and_a_repeat_among_them_is_named(
        tmp_path: Path, start_daemon: Start) -> None:
    """A producer that writes its keys in any order: the file is sorted in memory and
    loads as the sorted one would, in either write mode, and a repeated key among
    shuffled ones fails the `unique` check with the key named in the sidecar."""
    daemon = start_daemon("--write-mode", "replace")
    shuffled = day_table(DAY1, rows=300).take(random.Random(2).sample(range(300), 300))
    drop_day(tmp_path, daemon, DAY1, shuffled)
    [first] = daemon.wait_for("file_processed")
    assert (first["inserted"], first["updated"], first["deleted"]) == (300, 0, 0)
    rows = fact_rows_in(daemon.settings)
    assert sorted(r[0] for r in rows) == sorted(str(k) for k in shuffled["txn_id"].to_pylist())
    corrected = day_table(DAY1, rows=280, seed=3)
    drop_day(tmp_path, daemon, DAY1, corrected.take(random.Random(4).sample(range(280), 280)))
    [_, again] = daemon.wait_for("file_processed", count=2)
    assert (again["inserted"], again["updated"], again["unchanged"], again["deleted"]) == (
        0, 280, 0, 20)
    # Day 2's keys, shuffled, with the 41st repeated in the middle of the file.
    keys = [str(k).replace(DAY1.replace("-", ""), DAY2.replace("-", ""))
            for k in shuffled["txn_id"].to_pylist()]
    repeated = pa.concat_tables([shuffled.slice(0, 150), shuffled.slice(40, 1),
                                 shuffled.slice(150)])
    drop_day(tmp_path, daemon, DAY2, repeated.set_column(
        3, "run_date", pa.array([DAY2] * 301)).set_column(
        0, "txn_id", pa.array(keys[:150] + keys[40:41] + keys[150:])))
    [failed] = daemon.wait_for("file_failed", file=name(DAY2))
    [unique] = [c for c in failed["checks"] if c["check"] == "unique:txn_id"]
    assert (unique["failed_rows"], unique["sample_keys"]) == (1, [keys[40]])
    assert len(fact_rows_in(daemon.settings)) == 280


@on_both_backends
def test_corrected_redrop_in_merge_mode_updates_and_keeps(tmp_path: Path,
                                                          start_daemon: Start) -> None:
    daemon = start_daemon()
    drop_day(tmp_path, daemon, DAY1)
    daemon.wait_for("file_processed")
    original = {r[0]: r for r in fact_rows_in(daemon.settings)}
    corrected = day_table(DAY1, rows=20, seed=7)
    drop_day(tmp_path, daemon, DAY1, corrected)
    last = daemon.wait_for("file_processed", count=2)[-1]
    assert last["deleted"] == 0 and last["inserted"] == 0
    assert last["updated"] + last["unchanged"] == 20 and last["updated"] > 0
    after = {r[0]: r for r in fact_rows_in(daemon.settings)}
    assert len(after) == 25
    untouched = [k for k in original if k not in corrected.column("txn_id").to_pylist()]
    assert all(after[k] == original[k] for k in untouched)


@on_both_backends
def test_bad_inputs_go_to_failed_and_the_daemon_serves_on(tmp_path: Path,
                                                          start_daemon: Start) -> None:
    daemon = start_daemon()
    drop_day(tmp_path, daemon, DAY1)
    daemon.wait_for("file_processed")
    before = fact_rows_in(daemon.settings)
    bad = {
        "transactions_2026-02-12.parquet": b"",
        "transactions_2026-02-13.parquet": b"txn_id,amount\n1,2\n",
    }
    for bad_name, data in bad.items():
        (outbox(tmp_path) / bad_name).write_bytes(data)
        drop(outbox(tmp_path) / bad_name, daemon.settings.inbox)
    wrong_schema = day_table("2026-02-14").drop_columns(["customer_id"])
    drop(write_parquet(outbox(tmp_path), wrong_schema, name("2026-02-14")), daemon.settings.inbox)
    negative = day_table("2026-02-15")
    negative = negative.set_column(2, "amount", pa.array([-1.0] * 25))
    drop(write_parquet(outbox(tmp_path), negative, name("2026-02-15")), daemon.settings.inbox)
    failed = daemon.wait_for("file_failed", count=4)
    assert {e["file"] for e in failed} == {*bad, name("2026-02-14"), name("2026-02-15")}
    assert {e["file"]: e["stage"] for e in failed}[name("2026-02-15")] == "checks"
    for line in failed:
        sidecar = json.loads((daemon.settings.failed / f"{line['file']}.error.json").read_text())
        assert sidecar["message"] and sidecar["hint"]
    assert fact_rows_in(daemon.settings) == before
    # Still alive and serving.
    drop_day(tmp_path, daemon, DAY2)
    daemon.wait_for("file_processed", file=name(DAY2))
    assert daemon.proc.poll() is None


@on_both_backends
def test_files_present_before_start_are_swept_in_name_order(tmp_path: Path,
                                                            start_daemon: Start,
                                                            ) -> None:
    days = ["2026-02-12", "2026-02-10", "2026-02-11"]
    inbox = tmp_path / "inbox"
    for day in days:
        drop(write_parquet(outbox(tmp_path), day_table(day), name(day)), inbox)
    daemon = start_daemon()
    lines = daemon.wait_for("file_processed", count=3)
    assert [e["file"] for e in lines] == [name(d) for d in sorted(days)]
    assert {e["found_by"] for e in daemon.matching("file_detected")} == {"sweep"}


def test_temporary_and_hidden_files_are_ignored(tmp_path: Path, start_daemon: Start) -> None:
    inbox = tmp_path / "inbox"
    before = [".transactions_2026-02-12.parquet", "transactions_2026-02-12.parquet.tmp"]
    after = [".transactions_2026-02-13.parquet", "transactions_2026-02-13.parquet.part"]
    for ignored in before:
        write_parquet(inbox, day_table("2026-02-12"), ignored)
    daemon = start_daemon()
    for ignored in after:
        write_parquet(inbox, day_table("2026-02-13"), ignored)
    # Hints are handled in order and the sweep precedes any load, so once a file dropped
    # after all of them is loaded, every ignored name has been seen and passed over.
    drop_day(tmp_path, daemon, DAY1)
    daemon.wait_for("file_processed")
    assert sorted(p.name for p in inbox.iterdir()) == sorted(before + after)
    assert {e["file"] for e in daemon.matching("file_detected")} == {name(DAY1)}


def test_a_file_written_in_place_is_taken_once_complete(tmp_path: Path,
                                                        start_daemon: Start) -> None:
    daemon = start_daemon()
    path = daemon.settings.inbox / name(DAY1)
    with path.open("wb") as sink, pq.ParquetWriter(sink, contract.ARROW_SCHEMA) as writer:
        for batch in generate(date.fromisoformat(DAY1), 25):
            writer.write_batch(batch)
        sink.flush()
        # Half-written: the daemon must not take it yet.
        assert not daemon.matching("file_claimed")
    [line] = daemon.wait_for("file_processed")
    assert line["rows"] == 25
    assert not daemon.matching("file_failed")


def test_a_second_daemon_on_the_same_database_is_refused(start_daemon: Start) -> None:
    first = start_daemon()
    second = start_daemon(wait_started=False)
    assert second.proc.wait(timeout=30) == 3
    [refusal] = second.matching("daemon_already_running")
    assert str(first.proc.pid) in refusal["reason"] and refusal["hint"]
    assert first.proc.poll() is None


@pytest.mark.parametrize("shared", ["inbox", "inbox-own-work", "work"])
def test_a_second_daemon_on_the_same_inbox_or_work_directory_is_refused(
        tmp_path: Path, settings: Settings, start_daemon: Start, shared: str) -> None:
    """Guards a found bug: two daemons with different databases on one inbox both
    started, and split its files between their databases without a word."""
    first = start_daemon()
    other = tmp_path / "other"
    other.mkdir()  # an inbox whose parent folder is missing is refused (exit 2)
    argv = ["--db", str(other / "etl.db"), "--processed", str(other / "processed"),
            "--failed", str(other / "failed")]
    if shared == "inbox-own-work":
        argv += ["--work", str(other / "work")]
    elif shared == "work":
        argv += ["--inbox", str(other / "inbox"), "--work", str(settings.work)]
    second = start_daemon(*argv, wait_started=False, log_name="second.log")
    assert second.proc.wait(timeout=30) == 3
    [refusal] = second.matching("daemon_already_running")
    what = "the work directory" if shared == "work" else "the inbox"
    directory = settings.work if shared == "work" else settings.inbox
    assert refusal["reason"] == (f"another daemon (pid {first.proc.pid}) is already using "
                                 f"{what} {directory}")
    assert refusal["hint"] and not second.matching("file_claimed")
    assert first.proc.poll() is None
    # The first still loads, into its own database only.
    drop(write_parquet(outbox(tmp_path), day_table(DAY1), run_date=DAY1), settings.inbox)
    first.wait_for("file_processed", file=name(DAY1))
    assert not (other / "etl.db").exists()  # refused before its database was made
    # Once the first stops, the directory is free again.
    assert first.stop() == 0
    third = start_daemon(*argv, log_name="third.log")
    assert third.proc.poll() is None


@on_both_backends
def test_once_drains_and_reports_failures_in_its_exit_code(tmp_path: Path,
                                                           start_daemon: Start) -> None:
    inbox = tmp_path / "inbox"
    drop(write_parquet(outbox(tmp_path), day_table(DAY1), name(DAY1)), inbox)
    ok = start_daemon("--once", wait_started=False)
    assert ok.proc.wait(timeout=60) == 0
    assert ok.matching("file_processed", file=name(DAY1))
    (outbox(tmp_path) / name(DAY2)).write_bytes(b"garbage")
    drop(outbox(tmp_path) / name(DAY2), inbox)
    bad = start_daemon("--once", wait_started=False)
    assert bad.proc.wait(timeout=60) == 1
    assert bad.matching("file_failed", file=name(DAY2))
    assert list(inbox.iterdir()) == []


def test_environment_and_config_file_settings_reach_the_daemon(tmp_path: Path,
                                                               start_daemon: Start) -> None:
    config = tmp_path / "etl.toml"
    config.write_text('write_mode = "merge"\nbusy_timeout_seconds = 7.5\n')
    daemon = start_daemon("--config", str(config), env={"ETL_WRITE_MODE": "replace"})
    [started] = daemon.matching("daemon_started")
    assert started["write_mode"] == "replace"  # the environment beats the file
    assert started["busy_timeout_seconds"] == 7.5  # the file beats the default
    assert started["config_file"] == str(config)
    daemon.stop()
    # The flag beats the environment.
    flagged = start_daemon("--config", str(config), "--write-mode", "merge",
                           env={"ETL_WRITE_MODE": "replace"})
    assert flagged.matching("daemon_started")[0]["write_mode"] == "merge"


def test_bad_configuration_exits_2_with_one_json_line(tmp_path: Path, start_daemon: Start) -> None:
    daemon = start_daemon("--write-mode", "upsert", wait_started=False)
    assert daemon.proc.wait(timeout=30) == 2
    [line] = daemon.events()
    assert line["event"] == "usage_error" and line["level"] == "error"
    config = tmp_path / "bad.toml"
    config.write_text("inbox = [\n")
    daemon = start_daemon("--config", str(config), wait_started=False)
    assert daemon.proc.wait(timeout=30) == 2
    assert daemon.matching("config_invalid")


def test_the_ledger_is_readable_while_the_daemon_runs(tmp_path: Path,
                                                      start_daemon: Start) -> None:
    daemon = start_daemon()
    drop_day(tmp_path, daemon, DAY1)
    daemon.wait_for("file_processed")
    reader = sqlite3.connect(f"file:{daemon.settings.db_file}?mode=ro", uri=True)
    try:
        assert reader.execute("SELECT status FROM load_history").fetchall() == [("processed",)]
    finally:
        reader.close()


def test_directories_on_different_filesystems_are_refused(tmp_path: Path,
                                                          start_daemon: Start) -> None:
    other = Path("/dev/shm")  # noqa: S108 - a tmpfs, i.e. another filesystem than tmp_path
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to place a directory on")
    processed = other / f"etl-test-{tmp_path.name}"
    try:
        daemon = start_daemon("--processed", str(processed), wait_started=False)
        assert daemon.proc.wait(timeout=30) == 2
        [line] = daemon.matching("config_invalid")
        assert "different filesystems" in line["reason"] and line["hint"]
    finally:
        if processed.exists():
            processed.rmdir()


def test_a_database_of_another_schema_is_refused_at_start(settings: Settings,
                                                          start_daemon: Start) -> None:
    conn = sqlite3.connect(settings.db_file)
    # The prototype's fact table: no lineage column, and staging never cleared.
    conn.execute("CREATE TABLE fact_transactions(txn_id TEXT PRIMARY KEY, customer_id INTEGER "
                 "NOT NULL, amount REAL NOT NULL, run_date TEXT NOT NULL, loaded_at TEXT NOT NULL)")
    conn.close()
    daemon = start_daemon(wait_started=False)
    assert daemon.proc.wait(timeout=30) == 2
    [line] = daemon.matching("database_unavailable")
    assert "fact_transactions" in line["reason"] and line["hint"]


def test_a_directory_that_cannot_be_made_is_a_configuration_error(
        settings: Settings, start_daemon: Start) -> None:
    settings.inbox.parent.mkdir(parents=True, exist_ok=True)
    settings.inbox.write_bytes(b"")  # a file where the inbox should be
    daemon = start_daemon(wait_started=False)
    assert daemon.proc.wait(timeout=30) == 2
    [line] = daemon.matching("config_invalid")
    assert str(settings.inbox) in line["reason"] and line["hint"]


# The settle time of the paused-writer tests: the pause is three of them and the daemon
# waits ten for a file still open, so 3.5 s (not 1.4 s at the fixtures' 0.2) separate the
# writer's second write from a claim on a machine busy enough to delay it.
PAUSE_SETTLE = ("--settle-seconds", "0.5")


def test_a_writer_pausing_longer_than_the_settle_time_is_waited_for(
        start_daemon: Start) -> None:
    """Guards a found bug: a producer writing in place that paused mid-file had its half
    file quarantined, then kept writing into the quarantined copy."""
    daemon = start_daemon(*PAUSE_SETTLE)
    path = daemon.settings.inbox / name(DAY1)
    table = day_table(DAY1, rows=40)
    with pq.ParquetWriter(path, contract.ARROW_SCHEMA) as writer:
        writer.write_table(table.slice(0, 20))
        # The producer's own pause under test (no condition to wait on): three settle
        # times, well under the ten a file still open for writing is given.
        time.sleep(3 * float(PAUSE_SETTLE[1]))
        assert not daemon.matching("file_claimed")
        writer.write_table(table.slice(20))
    [line] = daemon.wait_for("file_processed")
    assert line["rows"] == 40 and not daemon.matching("file_failed")


@pytest.mark.parametrize("observer", ["auto", "polling"])
def test_a_writer_whose_clock_lags_is_waited_for_all_the_same(
        start_daemon: Start, observer: str) -> None:
    """Guards a found bug: quiet time took the larger of the daemon's own observation and
    the wall clock's distance from the file's mtime, so a file written in place on a host
    (or NFS server) whose clock lags by an hour looked finished and was claimed mid-write."""
    daemon = start_daemon("--observer", observer, "--poll-seconds", "0.1", *PAUSE_SETTLE)
    path = daemon.settings.inbox / name(DAY1)
    table = day_table(DAY1, rows=40)

    def lagging_mtime() -> None:
        behind = time.time_ns() - 3600 * 10**9
        os.utime(path, ns=(behind, behind))

    with path.open("wb") as handle, pq.ParquetWriter(handle, contract.ARROW_SCHEMA) as writer:
        writer.write_table(table.slice(0, 20))
        handle.flush()  # so that no buffered write comes after the mtime is set
        lagging_mtime()
        # The producer's own pause under test, as above: three settle times.
        time.sleep(3 * float(PAUSE_SETTLE[1]))
        assert not daemon.matching("file_claimed")
        writer.write_table(table.slice(20))
    lagging_mtime()
    [line] = daemon.wait_for("file_processed")
    assert line["rows"] == 40 and not daemon.matching("file_failed")


def test_a_staging_leftover_is_removed_at_start(tmp_path: Path, settings: Settings,
                                                start_daemon: Start) -> None:
    """A daemon killed mid-load leaves its staging file; the next one deletes it."""
    leftover = settings.db_file.with_name(f"{settings.db_file.name}.staging-abc")
    leftover.write_bytes(b"half a staging database")
    unrelated = settings.db_file.with_name("other.db_file.staging-abc")
    unrelated.write_bytes(b"another database's")
    drop(write_parquet(outbox(tmp_path), day_table(DAY1), name(DAY1)), settings.inbox)
    daemon = start_daemon("--once", wait_started=False)
    assert daemon.proc.wait(timeout=60) == 0
    assert not leftover.exists()
    assert unrelated.read_bytes() == b"another database's"
    [line] = daemon.matching("staging_leftover_removed")
    assert {k: line[k] for k in ("event", "level", "path")} == {
        "event": "staging_leftover_removed", "level": "info", "path": str(leftover)}
    events = [e["event"] for e in daemon.events()]
    assert events.index("staging_leftover_removed") < events.index("file_processed")
    assert len(fact_rows(settings.db_file)) == 25
    assert [p.name for p in tmp_path.iterdir() if ".staging-" in p.name] == [unrelated.name]


@pytest.mark.parametrize("where", ["processed", "failed"])
def test_a_database_inside_an_archive_is_refused_by_the_daemon_and_the_commands(
        settings: Settings, start_daemon: Start, where: str) -> None:
    """Guards a found bug: `--db failed/etl.db` was accepted, and `status` then listed the
    database's own files as failed files, forever."""
    db = str(getattr(settings, where) / "etl.db")
    daemon = start_daemon("--db", db, wait_started=False)
    assert daemon.proc.wait(timeout=30) == 2
    [line] = daemon.matching("config_invalid")
    assert line["reason"] == f"the database {db} (db from --db) is inside the {where} " \
        f"directory {getattr(settings, where)} ({where} from --{where})"
    assert not Path(db).exists()
    status = subprocess.run(
        process.daemon_argv("status", "--db", db, "--inbox", str(settings.inbox),
                            "--processed", str(settings.processed), "--failed",
                            str(settings.failed)),
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert status.returncode == 2 and f"inside the {where} directory" in status.stderr
