"""Faults of the environment, against the real daemon process: what an operator sees.

Another process holding the database, a full disk, a read-only archive, the inbox
deleted or replaced under a running daemon, and stop signals under load. None of them is
the file's fault: the file must never reach failed/ for it, must stay where it can be
recovered (the work directory or the inbox), and must load exactly once when the fault
is gone. Each test but one (the sidecar's, in-process) starts `python -m filedrop_etl` and
waits on its JSON log lines, the directories and the database, never on fixed sleeps.
Fixtures own what they set up: the lock-holding process is ended and every mount is
undone at teardown, whatever the test did.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon.load import quarantine
from filedrop_etl.daemon.warehouse.sqlite import schema
from filedrop_etl.daemon.watch.watcher import HEARTBEAT_SECONDS, RETRY_BACKOFF_SECONDS
from filedrop_etl.generator.publish import publish_parquet
from filedrop_etl.generator.transactions import generate
from tests import sqlite_store as store
from tests.backends import load_settings
from tests.conftest import (
    ROOT,
    DaemonProcess,
    day_table,
    drop,
    fact_rows,
    integrity,
    ledger,
    wait_until,
    write_parquet,
)
from tests.http_client import request, url_of

Start = Callable[..., DaemonProcess]
DAY1, DAY2, DAY3 = "2026-02-10", "2026-02-11", "2026-02-12"
# Another writer is given up on after this long, so that each retry comes quickly.
FAST_BUSY = {"ETL_BUSY_TIMEOUT_SECONDS": "0.1"}


def name(day: str) -> str:
    return contract.file_name_for(day)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """As conftest's, with every directory and the database under `tmp_path/data`, so
    that a test can mount a filesystem there; the daemons' logs stay outside it. The
    folder is there: a daemon refuses to make an inbox whose parent folder is not."""
    data = tmp_path / "data"
    data.mkdir()
    return load_settings(
        {"inbox": data / "inbox", "processed": data / "processed", "failed": data / "failed",
         "db": data / "etl.db", "settle_seconds": 0.2, "rescan_seconds": 0.5},
        config_file=ROOT / "config" / "etl.toml", environ={},
    )


def outbox(settings: Settings) -> Path:
    """Where files are prepared before the drop: the inbox's filesystem, not watched."""
    path = settings.db_file.parent / "outbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_day(settings: Settings, day: str, rows: int = 25) -> Path:
    return write_parquet(outbox(settings), day_table(day, rows=rows), name(day))


def drop_day(settings: Settings, day: str) -> Path:
    return drop(prepare_day(settings, day), settings.inbox)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _run(*argv: str) -> None:
    """Run a system command (mount, chattr), raising with its stderr if it fails."""
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)


def initialised(settings: Settings) -> None:
    """Create the daemon's database, as a previous run would have left it."""
    conn = store.connect(settings.db_file)
    try:
        schema.init_schema(conn, TRANSACTIONS)
    finally:
        conn.close()


def fact_count(db: Path, what: str = "*") -> int:
    conn = sqlite3.connect(db)
    try:
        count, = conn.execute(f"SELECT COUNT({what}) FROM {store.FACT}").fetchone()
        return int(count)
    finally:
        conn.close()


# --- another process holds the database --------------------------------------------

# A separate process, as a backup job or an operator's sqlite3 shell would be: it takes
# the write lock, says so, and keeps it until its stdin closes.
_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
conn.close()
"""


@dataclass
class DatabaseLock:
    """A process holding `BEGIN EXCLUSIVE` on the database until `release()`."""

    proc: subprocess.Popen[str]

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0, "the lock holder ended badly"

    def end(self) -> None:
        """Kill the holder if it still runs, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def lock_database(settings: Settings) -> Iterator[Callable[[], DatabaseLock]]:
    """Start a process that write-locks `settings.db_file`; returns once it holds the lock.
    Every holder still running at teardown is killed."""
    holders: list[DatabaseLock] = []

    def lock() -> DatabaseLock:
        proc = subprocess.Popen([sys.executable, "-c", _LOCKER, str(settings.db_file)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        holder = DatabaseLock(proc)
        holders.append(holder)
        assert proc.stdout is not None
        # Bounded: the holder prints, or fails (its own busy timeout) and closes stdout.
        assert proc.stdout.readline() == "locked\n", "the lock holder could not lock"
        return holder

    yield lock
    for holder in holders:
        holder.end()


def test_a_database_locked_by_another_process_keeps_the_file_and_retries_it(
        settings: Settings, start_daemon: Start,
        lock_database: Callable[[], DatabaseLock]) -> None:
    daemon = start_daemon(env=FAST_BUSY)
    drop_day(settings, DAY1)
    daemon.wait_for("file_processed")
    before = fact_rows(settings.db_file)
    held = lock_database()
    drop_day(settings, DAY2)
    drop_day(settings, DAY3)
    retries = daemon.wait_for("file_retry_scheduled", count=2, file=name(DAY2))
    # Loud, saying why, and waiting longer each time.
    for line in retries:
        assert (line["level"], line["stage"], line["error_type"]) == (
            "error", "load", "OperationalError")
        assert "locked" in line["reason"] and line["hint"]
    assert [(r["attempt"], r["retry_in_seconds"]) for r in retries] == [
        (n + 1, RETRY_BACKOFF_SECONDS[n]) for n in range(len(retries))]
    # The file waits in the work directory, the later drop behind it in the inbox.
    assert listing(settings.work) == [name(DAY2)]
    assert listing(settings.inbox) == [name(DAY3)]
    assert listing(settings.failed) == []
    assert fact_rows(settings.db_file) == before
    assert [r["file_name"] for r in ledger(settings.db_file)] == [name(DAY1)]

    held.release()
    daemon.wait_for("file_processed", count=3)
    assert [(r["file_name"], r["status"], r["inserted"]) for r in ledger(settings.db_file)] == [
        (name(d), "processed", 25) for d in (DAY1, DAY2, DAY3)]
    assert len(fact_rows(settings.db_file)) == 75
    assert listing(settings.processed) == [name(d) for d in (DAY1, DAY2, DAY3)]
    assert listing(settings.work) == listing(settings.inbox) == listing(settings.failed) == []
    assert not daemon.matching("file_failed")
    assert daemon.stop() == 0


def drop_bad(settings: Settings, day: str) -> Path:
    bad = outbox(settings) / name(day)
    bad.write_bytes(b"not parquet at all")
    return drop(bad, settings.inbox)


def first_outcome(daemon: DaemonProcess, file: str) -> str:
    """Wait for the file to be loaded, failed or kept for a retry; say which came first."""
    events = ("file_processed", "file_failed", "file_retry_scheduled")
    wait_until(lambda: any(daemon.matching(e, file=file) for e in events), f"{file}'s outcome")
    return next(str(e["event"]) for e in daemon.events()
                if e["event"] in events and e.get("file") == file)


def test_a_bad_file_whose_failure_cannot_be_recorded_waits_to_be_recorded(
        settings: Settings, start_daemon: Start,
        lock_database: Callable[[], DatabaseLock]) -> None:
    """Guards a found bug: with the database locked (or full), a bad file went to
    failed/ at once after `ledger_write_failed`, and the ledger lost that attempt."""
    daemon = start_daemon(env=FAST_BUSY)
    held = lock_database()
    drop_bad(settings, DAY1)
    assert first_outcome(daemon, name(DAY1)) == "file_retry_scheduled"
    retry = daemon.matching("file_retry_scheduled")[0]
    assert retry["stage"] == "ledger" and "locked" in retry["reason"]
    assert listing(settings.work) == [name(DAY1)]
    assert listing(settings.failed) == [] and ledger(settings.db_file) == []

    held.release()
    [line] = daemon.wait_for("file_failed")
    [row] = ledger(settings.db_file)
    assert row["status"] == "failed" and row["error"].startswith(f"{line['stage']}: ")
    assert listing(settings.failed) == [name(DAY1), f"{name(DAY1)}.error.json"]
    assert listing(settings.work) == []
    assert not daemon.matching("ledger_write_failed")


def test_a_daemon_started_on_a_locked_database_waits_for_it_then_serves(
        settings: Settings, start_daemon: Start,
        lock_database: Callable[[], DatabaseLock]) -> None:
    """Guards a found bug: the daemon exited 2 (database_unavailable) when another
    process held the database at start, and a service manager restarted it in a loop."""
    initialised(settings)
    held = lock_database()
    daemon = start_daemon(env=FAST_BUSY, wait_started=False)
    waits = daemon.wait_for("database_busy", count=2)
    for line in waits:
        assert line["level"] == "error" and "locked" in line["reason"] and line["hint"]
        assert line["db"] == str(settings.db_file)
    assert [(w["attempt"], w["retry_in_seconds"]) for w in waits] == [
        (n + 1, RETRY_BACKOFF_SECONDS[n]) for n in range(len(waits))]
    assert not daemon.matching("daemon_started")
    held.release()
    daemon.wait_for("daemon_started")
    drop_day(settings, DAY1)
    daemon.wait_for("file_processed")
    assert len(fact_rows(settings.db_file)) == 25
    assert daemon.stop() == 0


def test_a_stop_signal_while_waiting_for_the_database_exits_0_at_once(
        settings: Settings, start_daemon: Start,
        lock_database: Callable[[], DatabaseLock]) -> None:
    initialised(settings)
    lock_database()  # held to the end: only the signal can end the wait
    daemon = start_daemon(env=FAST_BUSY, wait_started=False)
    daemon.wait_for("database_busy")
    assert daemon.stop(timeout=10) == 0
    assert [e["event"] for e in daemon.events()][-1] == "daemon_stopped"
    assert daemon.matching("daemon_stopped", reason="SIGTERM", processed=0)
    assert not daemon.matching("daemon_started")


def test_signals_while_waiting_for_the_database_are_answered_and_sigquit_ends_it(
        settings: Settings, start_daemon: Start,
        lock_database: Callable[[], DatabaseLock]) -> None:
    """The daemon's signals are blocked from its first instruction and taken during the
    start-up wait: none ends it without a word, and a quit is a quit."""
    initialised(settings)
    lock_database()
    daemon = start_daemon(env=FAST_BUSY, wait_started=False)
    daemon.wait_for("database_busy")
    daemon.proc.send_signal(signal.SIGHUP)
    [line] = daemon.wait_for("signal_received")
    assert (line["signal"], line["action"]) == ("SIGHUP", "none")
    daemon.proc.send_signal(signal.SIGUSR2)
    daemon.wait_for("signal_ignored", signal="SIGUSR2")
    assert daemon.proc.poll() is None
    daemon.proc.send_signal(signal.SIGQUIT)
    assert daemon.proc.wait(timeout=10) == 128 + signal.SIGQUIT
    assert daemon.matching("daemon_stopped", reason="SIGQUIT")
    assert not daemon.matching("daemon_started")


def _not_a_database(db: Path) -> None:
    db.write_bytes(b"this is not a SQLite database, only text in its place\n" * 100)


def _newer_schema(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    conn.close()


def _a_directory(db: Path) -> None:
    db.mkdir()


@pytest.mark.parametrize("spoil", [_not_a_database, _newer_schema, _a_directory],
                         ids=["not-a-db", "newer", "a-directory"])
def test_a_database_that_is_wrong_rather_than_busy_still_exits_2_at_once(
        settings: Settings, start_daemon: Start, spoil: Callable[[Path], None]) -> None:
    settings.db_file.parent.mkdir(parents=True, exist_ok=True)
    spoil(settings.db_file)
    daemon = start_daemon(env=FAST_BUSY, wait_started=False)
    assert daemon.proc.wait(timeout=30) == 2
    [line] = daemon.matching("database_unavailable")
    assert line["level"] == "error" and line["reason"] and line["hint"]
    assert not daemon.matching("database_busy")
    if spoil is _a_directory:
        # Not SQLite's "unable to open database file": the path and the mistake.
        assert line["reason"] == f"{settings.db_file} is a directory, not a database file"
        assert f"--db {settings.db_file / 'etl.db'}" in line["hint"]


# --- a full disk ---------------------------------------------------------------------

DISK_BYTES = 4 << 20


@dataclass
class SmallDisk:
    """A small tmpfs holding the daemon's directories and database, and a ballast file
    that fills it."""

    root: Path

    @property
    def ballast(self) -> Path:
        return self.root / "ballast"

    def fill(self, leave: int = 0) -> None:
        """Grow the ballast until the disk is full, then give `leave` bytes back."""
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (b"\0" * (1 << 16), b"\0" * 4096):
                try:
                    while os.write(fd, chunk):
                        pass
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)

    def free(self) -> None:
        self.ballast.unlink()

    def resize(self, size: int) -> None:
        _run("mount", "-o", f"remount,size={size // 1024}k", str(self.root))


@pytest.fixture
def small_disk(settings: Settings) -> Iterator[SmallDisk]:
    """A 4 MiB tmpfs mounted where `settings` keeps everything (skipped if mounting is not
    permitted), unmounted at teardown. Ask for it before `start_daemon`, so that the
    daemons are killed first; a mount still busy is detached lazily all the same."""
    root = settings.db_file.parent
    root.mkdir(parents=True, exist_ok=True)
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES // 1024}k,mode=0755", "tmpfs",
             str(root))
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here: {getattr(exc, 'stderr', None) or exc}")
    try:
        yield SmallDisk(root)
    finally:
        try:
            _run("umount", str(root))
        except subprocess.CalledProcessError:
            _run("umount", "--lazy", str(root))


@dataclass(frozen=True)
class FullAt:
    """Where the next file meets the full disk, and how the daemon must say so."""

    leave: int  # bytes left free after the ballast
    rows: int  # in the dropped file; 0 drops a file that is not Parquet
    stage: str
    error_type: str
    says: str  # in the reason
    disk: int = DISK_BYTES


FULL_AT = {
    # Nothing free: the staging database cannot be written.
    "staging": FullAt(0, 25, "stage", "StagingUnavailable", "disk is full"),
    # Room for the staging database to begin, not to hold the file: the disk fills while
    # the rows stream in. Guards a found bug: the driver let go of the stream, the
    # `GeneratorExit` that closed it was taken for the input's error and crashed the
    # worker, and every restart resumed the file first and crashed again.
    # (More rows than the driver's page cache holds, so that pages are written while the
    # stream is open.)
    "staging-midstream": FullAt(2 << 20, 200_000, "stage", "StagingUnavailable",
                                "disk is full", disk=48 << 20),
    # Room for the staging database but not for the merge's pages in the WAL.
    "merge": FullAt(800 << 10, 10_000, "load", "OperationalError", "disk is full"),
    # A bad file whose failure cannot be written to the ledger.
    "ledger": FullAt(0, 0, "ledger", "OperationalError", "disk is full"),
}


@pytest.mark.parametrize("case", FULL_AT.values(), ids=FULL_AT.keys())
def test_a_full_disk_keeps_the_file_and_the_database_then_loads_it_once_there_is_room(
        settings: Settings, small_disk: SmallDisk, start_daemon: Start, case: FullAt) -> None:
    if case.disk != DISK_BYTES:
        small_disk.resize(case.disk)
    daemon = start_daemon()
    drop_day(settings, DAY1)
    daemon.wait_for("file_processed")
    before, history = fact_rows(settings.db_file), ledger(settings.db_file)
    if case.rows:
        prepared = write_parquet(outbox(settings), day_table(DAY2, rows=case.rows), name(DAY2))
    else:
        prepared = outbox(settings) / name(DAY2)
        prepared.write_bytes(b"not parquet at all")
    dropped = sha256(prepared)
    small_disk.fill(leave=case.leave)
    drop(prepared, settings.inbox)

    assert first_outcome(daemon, name(DAY2)) == "file_retry_scheduled"
    line = daemon.matching("file_retry_scheduled", file=name(DAY2))[0]
    assert (line["level"], line["stage"], line["error_type"]) == (
        "error", case.stage, case.error_type)
    assert case.says in line["reason"] and line["hint"]
    # The file is whole in the work directory; the database intact and unchanged.
    assert daemon.proc.poll() is None
    assert {p.name: sha256(p) for p in settings.work.iterdir()} == {name(DAY2): dropped}
    assert listing(settings.inbox) == listing(settings.failed) == []
    assert integrity(settings.db_file) == [("ok",)]
    assert fact_rows(settings.db_file) == before and ledger(settings.db_file) == history

    small_disk.free()
    outcome = "file_processed" if case.rows else "file_failed"
    daemon.wait_for(outcome, file=name(DAY2))
    assert [r["file_name"] for r in ledger(settings.db_file)] == [name(DAY1), name(DAY2)]
    assert len(fact_rows(settings.db_file)) == len(before) + case.rows
    archive = settings.processed if case.rows else settings.failed
    assert sha256(archive / name(DAY2)) == dropped
    assert listing(settings.work) == listing(settings.inbox) == []
    assert [p.name for p in settings.db_file.parent.iterdir() if ".staging-" in p.name] == []
    assert integrity(settings.db_file) == [("ok",)]
    assert daemon.stop() == 0


@pytest.mark.slow  # a process
def test_a_sidecar_that_does_not_fit_on_the_disk_leaves_nothing_behind(
        small_disk: SmallDisk) -> None:
    """Guards a found bug: the sidecar's temporary file stayed in failed/ after a full
    disk failed its write; a restarted daemon (another pid) never cleaned it up."""
    failed, work = small_disk.root / "failed", small_disk.root / "work"
    failed.mkdir()
    work.mkdir()
    bad = work / name(DAY1)
    bad.write_bytes(b"not parquet at all")
    report = {"stage": "read", "reason": "not a Parquet file " * 50}
    small_disk.fill()
    with pytest.raises(OSError) as full:
        quarantine.quarantine(bad, failed, report)
    assert full.value.errno == errno.ENOSPC
    assert listing(failed) == [] and bad.read_bytes() == b"not parquet at all"
    small_disk.free()
    assert quarantine.quarantine(bad, failed, report) == failed / name(DAY1)
    assert listing(failed) == [name(DAY1), f"{name(DAY1)}.error.json"]


def test_a_daemon_started_on_a_full_disk_waits_for_room_then_serves(
        settings: Settings, small_disk: SmallDisk, start_daemon: Start) -> None:
    """Guards a found bug: a daemon (re)started on a full disk exited 2 (disk I/O error:
    SQLite could not create its -shm file), so a service manager restarted it in a loop."""
    first = start_daemon()
    drop_day(settings, DAY1)
    first.wait_for("file_processed")
    assert first.stop() == 0
    prepared = prepare_day(settings, DAY2)
    small_disk.fill()
    daemon = start_daemon(wait_started=False)
    # One wait is enough here: the backoff is the busy database's (tested above).
    line = daemon.wait_for("database_full")[0]
    assert (line["level"], line["attempt"], line["retry_in_seconds"]) == (
        "error", 1, RETRY_BACKOFF_SECONDS[0])
    assert line["db"] == str(settings.db_file) and line["reason"] and line["hint"]
    assert not daemon.matching("daemon_started")
    small_disk.free()
    daemon.wait_for("daemon_started")
    drop(prepared, settings.inbox)
    daemon.wait_for("file_processed", file=name(DAY2))
    assert len(fact_rows(settings.db_file)) == 50 and integrity(settings.db_file) == [("ok",)]
    assert daemon.stop() == 0


# --- an archive directory that cannot be written -------------------------------------


@dataclass
class ReadOnly:
    """Makes directories unwritable even for root: a read-only bind mount, else the
    immutable attribute, else (not root) the permission bits."""

    method: str
    active: list[Path]

    def make(self, directory: Path) -> None:
        if self.method == "bind":
            _run("mount", "--bind", str(directory), str(directory))
            try:
                _run("mount", "-o", "remount,bind,ro", str(directory))
            except BaseException:
                _run("umount", str(directory))
                raise
        elif self.method == "chattr":
            _run("chattr", "+i", str(directory))
        else:
            directory.chmod(0o555)
        self.active.append(directory)

    def undo(self, directory: Path) -> None:
        self.active.remove(directory)
        if self.method == "bind":
            _run("umount", str(directory))
        elif self.method == "chattr":
            _run("chattr", "-i", str(directory))
        else:
            directory.chmod(0o755)


def _unwritable(directory: Path) -> bool:
    try:
        (directory / "probe").touch()
    except OSError:
        return True
    (directory / "probe").unlink()
    return False


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[ReadOnly]:
    """A `ReadOnly` whose method is proven on a probe directory first (skipped if none
    works here); whatever is still read-only at teardown is made writable again."""
    probe = tmp_path / "read-only-probe"
    probe.mkdir()
    tried = []
    for method in ("bind", "chattr") if os.geteuid() == 0 else ("chmod",):
        candidate = ReadOnly(method, [])
        try:
            candidate.make(probe)
        except (OSError, subprocess.SubprocessError) as exc:
            tried.append(f"{method}: {getattr(exc, 'stderr', None) or exc}")
            continue
        works = _unwritable(probe)
        candidate.undo(probe)
        if works:
            break
        tried.append(f"{method}: the directory stayed writable")
    else:
        pytest.skip(f"cannot make a directory read-only here ({'; '.join(tried)})")
    yield candidate
    for directory in list(candidate.active):
        candidate.undo(directory)


def test_a_read_only_processed_dir_keeps_the_loaded_file_in_work_then_archives_it_unloaded(
        settings: Settings, start_daemon: Start, read_only: ReadOnly) -> None:
    daemon = start_daemon()
    read_only.make(settings.processed)
    dropped = sha256(drop_day(settings, DAY1))
    retry = daemon.wait_for("file_retry_scheduled", file=name(DAY1))[0]
    assert (retry["level"], retry["stage"], retry["attempt"]) == ("error", "archive", 1)
    assert retry["reason"] and retry["hint"]
    # Committed once; the file waits in the work directory, whole.
    history = ledger(settings.db_file)
    assert [(r["status"], r["inserted"]) for r in history] == [("processed", 25)]
    loaded = fact_rows(settings.db_file)
    assert len(loaded) == 25
    assert {p.name: sha256(p) for p in settings.work.iterdir()} == {name(DAY1): dropped}
    assert listing(settings.processed) == listing(settings.failed) == []

    read_only.undo(settings.processed)
    [line] = daemon.wait_for("file_processed")
    assert (line["inserted"], line["unchanged"]) == (25, 0)  # the counts of the one load
    # Only moved: no second ledger row, every fact row as the one load left it.
    assert ledger(settings.db_file) == history
    assert fact_rows(settings.db_file) == loaded
    assert {p.name: sha256(p) for p in settings.processed.iterdir()} == {name(DAY1): dropped}
    assert listing(settings.work) == listing(settings.failed) == []


def test_a_read_only_failed_dir_keeps_the_bad_file_in_work_then_quarantines_it_once(
        settings: Settings, start_daemon: Start, read_only: ReadOnly) -> None:
    daemon = start_daemon()
    read_only.make(settings.failed)
    drop_bad(settings, DAY2)
    retry = daemon.wait_for("file_retry_scheduled", file=name(DAY2))[0]
    assert (retry["level"], retry["stage"]) == ("error", "quarantine")
    assert retry["reason"] and retry["hint"]
    # Waiting in the work directory, its reason already in the ledger.
    assert (settings.work / name(DAY2)).read_bytes() == b"not parquet at all"
    [row] = ledger(settings.db_file)
    assert row["status"] == "failed" and row["error"]

    read_only.undo(settings.failed)
    [line] = daemon.wait_for("file_failed")
    assert listing(settings.failed) == [name(DAY2), f"{name(DAY2)}.error.json"]
    sidecar = json.loads((settings.failed / f"{name(DAY2)}.error.json").read_text())
    assert sidecar["stage"] == line["stage"] and sidecar["reason"] and sidecar["hint"]
    assert row["error"].startswith(f"{line['stage']}: ")
    assert ledger(settings.db_file) == [row]  # one attempt, one row
    assert (settings.failed / name(DAY2)).read_bytes() == b"not parquet at all"
    assert listing(settings.work) == listing(settings.processed) == []
    assert fact_rows(settings.db_file) == []


# --- stop signals under load ---------------------------------------------------------

BIG_DAY = "2026-02-01"
BIG_ROWS = 400_000  # about a second of loading: long enough to signal mid-file
SMALL_DAYS = tuple(f"2026-02-{day:02d}" for day in range(2, 22))  # 20 later days


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One large day, written once for the module; tests drop copies of it."""
    return publish_parquet(tmp_path_factory.mktemp("big"), name(BIG_DAY), contract.ARROW_SCHEMA,
                           generate(date.fromisoformat(BIG_DAY), BIG_ROWS))


def backlog(settings: Settings, big_file: Path) -> dict[str, str]:
    """The large day and 20 small later ones, waiting in the inbox before the daemon
    starts, so that the large one is taken first; each file's SHA-256 by name."""
    drop(Path(shutil.copyfile(big_file, outbox(settings) / big_file.name)), settings.inbox)
    for day in SMALL_DAYS:
        drop_day(settings, day)
    return {p.name: sha256(p) for p in settings.inbox.iterdir()}


def assert_each_loaded_once(settings: Settings, dropped: dict[str, str]) -> None:
    history = ledger(settings.db_file)
    assert sorted(r["file_name"] for r in history) == sorted(dropped)
    assert {r["status"] for r in history} == {"processed"}
    assert [r["inserted"] for r in history if r["file_name"] == name(BIG_DAY)] == [BIG_ROWS]
    # Counted in SQL: a list of 400,000 tuples costs more than the daemon's load.
    assert fact_count(settings.db_file) == BIG_ROWS + 25 * len(SMALL_DAYS)
    assert fact_count(settings.db_file, "DISTINCT load_id") == len(history)
    # Archived byte for byte; nothing left anywhere else, scratch files included.
    assert {p.name: sha256(p) for p in settings.processed.iterdir()} == dropped
    assert listing(settings.inbox) == listing(settings.work) == listing(settings.failed) == []
    assert [p.name for p in settings.db_file.parent.iterdir() if ".staging-" in p.name] == []


def test_sigterm_under_load_finishes_the_file_in_flight_and_leaves_the_rest(
        settings: Settings, start_daemon: Start, big_file: Path) -> None:
    dropped = backlog(settings, big_file)
    daemon = start_daemon()
    daemon.wait_for("file_claimed", file=name(BIG_DAY))
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=60) == 0
    assert [e["file"] for e in daemon.matching("file_processed")] == [name(BIG_DAY)]
    assert [e["file"] for e in daemon.matching("file_claimed")] == [name(BIG_DAY)]
    [stopping] = daemon.matching("daemon_stopping")
    assert stopping["reason"] == "SIGTERM" and stopping["hint"]
    [stopped] = daemon.matching("daemon_stopped")
    assert (stopped["reason"], stopped["processed"]) == ("SIGTERM", 1)
    # The later files were not touched: same names, same bytes, still in the inbox.
    assert {p.name: sha256(p) for p in settings.inbox.iterdir()} == {
        n: h for n, h in dropped.items() if n != name(BIG_DAY)}
    assert listing(settings.work) == []
    assert fact_count(settings.db_file) == BIG_ROWS

    again = start_daemon()
    again.wait_for("file_processed", count=len(SMALL_DAYS))
    assert not again.matching("file_resumed")
    assert_each_loaded_once(settings, dropped)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_exits_at_once_and_a_restart_resumes_exactly_once(
        settings: Settings, start_daemon: Start, big_file: Path, second: signal.Signals) -> None:
    """Guards a found gap: two signals sent back to back reach the daemon as one (the
    kernel does not queue a pending signal twice), so it stopped warm; `daemon_stopping`
    now says when the first was taken, and a signal after it ends the process."""
    dropped = backlog(settings, big_file)
    daemon = start_daemon()
    daemon.wait_for("file_claimed", file=name(BIG_DAY))
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_for("daemon_stopping")
    daemon.proc.send_signal(second)
    assert daemon.proc.wait(timeout=30) == -second  # ended by that signal
    assert not daemon.matching("file_processed"), "the file must still have been in flight"
    assert not daemon.matching("daemon_stopped")
    # Nothing committed; the claimed file intact in the work directory, the rest untouched.
    assert fact_count(settings.db_file) == 0 and ledger(settings.db_file) == []
    assert {p.name: sha256(p) for p in settings.work.iterdir()} == {
        name(BIG_DAY): dropped[name(BIG_DAY)]}
    assert {p.name: sha256(p) for p in settings.inbox.iterdir()} == {
        n: h for n, h in dropped.items() if n != name(BIG_DAY)}

    again = start_daemon()
    again.wait_for("file_resumed", file=name(BIG_DAY))
    lines = again.wait_for("file_processed", count=len(dropped))
    assert lines[0]["file"] == name(BIG_DAY) and lines[0]["inserted"] == BIG_ROWS
    assert not again.matching("file_already_loaded")
    assert_each_loaded_once(settings, dropped)


# With the safety-net rescan an hour away, a drop is found by an event or not at all.
WATCH_ONLY = ("--rescan-seconds", "3600", "--http", "127.0.0.1:0")
OBSERVERS = {"inotify": (), "polling": ("--observer", "polling", "--poll-seconds", "0.2")}


def rewatched(daemon: DaemonProcess) -> dict[str, Any]:
    """The daemon's `inbox_rewatched` line, once the rescan that follows it has run: a
    file dropped before that rescan may be found by it or by its event, whichever comes
    first; one dropped after can only be found by its event (the rescan is hourly)."""
    [line] = daemon.wait_for("inbox_rewatched")
    daemon.wait_for("inbox_rescanned", reason="rewatched")
    return line


def loaded_by_its_event(daemon: DaemonProcess, settings: Settings, day: str) -> None:
    """Drop `day` and see it found by an event (not a rescan) and loaded."""
    drop_day(settings, day)
    [line] = daemon.wait_for("file_processed", file=name(day))
    assert line["inserted"] == 25
    assert daemon.matching("file_detected", file=name(day), found_by="event")


@pytest.mark.parametrize("observer", OBSERVERS, ids=list(OBSERVERS))
def test_a_deleted_inbox_is_created_again_and_watched_again(
        settings: Settings, start_daemon: Start, observer: str) -> None:
    """Guards a found gap: deleting the inbox ended watchdog's emitter while the observer
    thread lived on, so /healthz said ok and no drop was ever seen by an event again."""
    daemon = start_daemon(*WATCH_ONLY, *OBSERVERS[observer])
    loaded_by_its_event(daemon, settings, DAY1)
    shutil.rmtree(settings.inbox)
    line = rewatched(daemon)
    assert (line["lost"], line["recreated"], line["level"]) == ("missing", True, "warning")
    assert settings.inbox.is_dir()
    assert request(url_of(daemon) + "/healthz").status == 200
    loaded_by_its_event(daemon, settings, DAY2)


@pytest.mark.parametrize("observer", OBSERVERS, ids=list(OBSERVERS))
def test_an_inbox_replaced_by_another_directory_is_watched_at_its_path(
        settings: Settings, start_daemon: Start, observer: str) -> None:
    """A watch follows its directory: renamed away, it would go on reporting the old one."""
    daemon = start_daemon(*WATCH_ONLY, *OBSERVERS[observer])
    old = settings.inbox.with_name("inbox.old")
    settings.inbox.rename(old)
    settings.inbox.mkdir()
    line = rewatched(daemon)
    assert (line["lost"], line["recreated"]) == ("replaced", False)
    loaded_by_its_event(daemon, settings, DAY1)
    # The directory renamed away is no longer the inbox: nothing in it is taken.
    drop(prepare_day(settings, DAY2), old)
    loaded_by_its_event(daemon, settings, DAY3)
    assert listing(old) == [name(DAY2)]


def test_an_inbox_that_cannot_be_made_again_is_unhealthy_until_it_can(
        settings: Settings, start_daemon: Start) -> None:
    daemon = start_daemon(*WATCH_ONLY)
    base = url_of(daemon)
    shutil.rmtree(settings.inbox)
    settings.inbox.write_bytes(b"a file where the inbox was")
    [line] = daemon.wait_for("inbox_unwatched")
    assert line["lost"] == "missing" and str(settings.inbox) in line["reason"]
    health = request(base + "/healthz")
    assert health.status == 503 and f"the inbox {settings.inbox} is not watched" in health.text
    # Unhealthy for as long as it lasts (three watch checks, one a second), and said
    # once in the log, not at every check.
    until = time.monotonic() + 3 * HEARTBEAT_SECONDS
    while time.monotonic() < until:
        assert request(base + "/healthz").status == 503
    assert len(daemon.matching("inbox_unwatched")) == 1
    settings.inbox.unlink()
    rewatched(daemon)
    wait_until(lambda: request(base + "/healthz").status == 200, "/healthz back to 200")
    assert len(daemon.matching("inbox_unwatched")) == 1
    loaded_by_its_event(daemon, settings, DAY1)


# --- a symlinked inbox ---------------------------------------------------------------


@pytest.mark.parametrize("observer", OBSERVERS, ids=list(OBSERVERS))
def test_a_symlinked_inbox_is_watched_where_it_points_and_when_it_is_repointed(
        settings: Settings, start_daemon: Start, observer: str) -> None:
    """Guards a found bug: watchdog watched the link itself and heard nothing of the files
    behind it, so drops were found only by the rescan while /healthz said ok."""
    first = settings.inbox.with_name("landing-1")
    first.mkdir(parents=True)
    settings.inbox.symlink_to(first.name)
    daemon = start_daemon(*WATCH_ONLY, *OBSERVERS[observer])
    loaded_by_its_event(daemon, settings, DAY1)  # through the link
    drop(prepare_day(settings, DAY2), first)  # by the directory's own path
    daemon.wait_for("file_processed", file=name(DAY2))
    assert daemon.matching("file_detected", file=name(DAY2), found_by="event")

    second = settings.inbox.with_name("landing-2")
    second.mkdir()
    temporary = settings.inbox.with_name("inbox.new-link")
    temporary.symlink_to(second.name)
    temporary.replace(settings.inbox)  # re-pointed atomically, as deploy tools do
    line = rewatched(daemon)
    assert (line["lost"], line["recreated"]) == ("repointed", False)
    assert "points to another directory" in line["reason"]
    loaded_by_its_event(daemon, settings, DAY3)
    assert listing(second) == [] and request(url_of(daemon) + "/healthz").status == 200
    # The directory it no longer points to is no longer the inbox.
    drop(prepare_day(settings, "2026-02-13"), first)
    loaded_by_its_event(daemon, settings, "2026-02-14")
    assert listing(first) == [name("2026-02-13")]


def test_a_symlinked_inbox_whose_directory_is_gone_is_unhealthy(
        settings: Settings, start_daemon: Start) -> None:
    target = settings.inbox.with_name("landing")
    target.mkdir(parents=True)
    settings.inbox.symlink_to(target.name)
    daemon = start_daemon(*WATCH_ONLY)
    base = url_of(daemon)
    target.rmdir()
    [line] = daemon.wait_for("inbox_unwatched")
    assert line["lost"] == "missing"
    health = request(base + "/healthz")
    assert health.status == 503 and f"the inbox {settings.inbox} is not watched" in health.text
    target.mkdir()
    rewatched(daemon)
    loaded_by_its_event(daemon, settings, DAY1)


def test_an_inbox_made_again_is_claimed_again(settings: Settings, start_daemon: Start,
                                              tmp_path: Path) -> None:
    """The claim is a lock on the directory itself: the one deleted goes with it, so the
    daemon claims the inbox it made again, and a second daemon is still refused."""
    daemon = start_daemon(*WATCH_ONLY)
    shutil.rmtree(settings.inbox)
    rewatched(daemon)
    other = tmp_path / "other"
    second = start_daemon("--db", str(other / "etl.db"), "--work", str(other / "work"),
                          wait_started=False, log_name="second.log")
    assert second.proc.wait(timeout=30) == 3
    [refusal] = second.matching("daemon_already_running")
    assert f"(pid {daemon.proc.pid}) is already using the inbox" in refusal["reason"]
    loaded_by_its_event(daemon, settings, DAY1)


def test_a_symlinked_inbox_pointed_at_another_filesystem_is_unhealthy_not_half_used(
        settings: Settings, start_daemon: Start) -> None:
    """No claim (a rename into the work directory) can succeed from another filesystem:
    the daemon says so instead of watching a directory it could never take a file from."""
    first = settings.inbox.with_name("landing")
    first.mkdir(parents=True)
    settings.inbox.symlink_to(first.name)
    elsewhere = settings.inbox.with_name("elsewhere")
    elsewhere.mkdir()
    try:
        _run("mount", "-t", "tmpfs", "-o", "size=1024k", "tmpfs", str(elsewhere))
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {getattr(exc, 'stderr', None) or exc}")
    try:
        daemon = start_daemon(*WATCH_ONLY)
        base = url_of(daemon)
        temporary = settings.inbox.with_name("inbox.new-link")
        temporary.symlink_to(elsewhere.name)
        temporary.replace(settings.inbox)
        [line] = daemon.wait_for("inbox_unwatched")
        assert line["lost"] == "repointed" and "different filesystems" in line["reason"]
        health = request(base + "/healthz")
        assert health.status == 503 and "is not watched" in health.text
        temporary.symlink_to(first.name)
        temporary.replace(settings.inbox)
        wait_until(lambda: request(base + "/healthz").status == 200, "/healthz back to 200")
        loaded_by_its_event(daemon, settings, DAY1)
        assert daemon.stop() == 0
    finally:
        _run("umount", "--lazy", str(elsewhere))
