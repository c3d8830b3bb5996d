"""The systemd notify protocol, against a socket each test owns, as systemd would hold it.

The real daemon is started with NOTIFY_SOCKET (a path, or an abstract `@name`) and
WATCHDOG_USEC, and the test reads its datagrams: READY=1 only once the inbox is swept
(not while a locked database holds start-up back), WATCHDOG=1 at half the interval and
only while the worker is healthy, STOPPING=1 on SIGTERM. A socket that never reads, or
that does not exist, must cost the daemon nothing. The parsing of systemd's variables and
the per-turn logic run in-process too, with a stand-in for the watcher.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon.app import notify
from filedrop_etl.daemon.warehouse.sqlite import schema
from tests import sqlite_store as store
from tests.conftest import DEADLINE_SECONDS, DaemonProcess, day_table, drop, write_parquet

Start = Callable[..., DaemonProcess]
DAY = "2026-02-10"


@dataclass
class Datagram:
    at: float  # monotonic time of receipt
    fields: dict[str, str]


@dataclass
class Listener:
    """The receiving end of NOTIFY_SOCKET; keeps every datagram it has read."""

    sock: socket.socket
    address: str  # as NOTIFY_SOCKET spells it
    received: list[Datagram] = field(default_factory=list)

    def receive(self, timeout: float) -> Datagram | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines())
        datagram = Datagram(time.monotonic(), fields)
        self.received.append(datagram)
        return datagram

    def next_fields(self, timeout: float = 0.2) -> dict[str, str] | None:
        datagram = self.receive(timeout)
        return datagram.fields if datagram else None

    def wait_for(self, key: str, value: str | None = None,
                 timeout: float = DEADLINE_SECONDS) -> Datagram:
        """The next datagram with `key` (equal to `value`, if given)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.receive(left)
            if got and key in got.fields and value in (None, got.fields[key]):
                return got
        pytest.fail(f"no {key}={value or '*'} within {timeout}s; got {self.received}")

    def during(self, seconds: float) -> list[Datagram]:
        """Every datagram that arrives in the next `seconds`."""
        deadline, got = time.monotonic() + seconds, []
        while (left := deadline - time.monotonic()) > 0:
            datagram = self.receive(left)
            if datagram:
                got.append(datagram)
        return got


def _listener(sock: socket.socket, bound: str | bytes, address: str) -> Listener:
    sock.bind(bound)
    return Listener(sock, address)


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Listener]:
    """A datagram socket in `tmp_path`, or one in the abstract namespace (`@name`)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if request.param == "path":
            path = str(tmp_path / "notify.sock")
            yield _listener(sock, path, path)
        else:
            name = f"filedrop-etl-test-{os.getpid()}-{secrets.token_hex(4)}"
            yield _listener(sock, b"\0" + name.encode(), f"@{name}")


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[Listener]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        path = str(tmp_path / "notify.sock")
        yield _listener(sock, path, path)


def drop_day(settings: Settings, day: str = DAY) -> None:
    outbox = settings.db_file.parent / "outbox"
    drop(write_parquet(outbox, day_table(day), contract.file_name_for(day)), settings.inbox)


def initialised(db: Path) -> None:
    conn = store.connect(db)
    try:
        schema.init_schema(conn, TRANSACTIONS)
    finally:
        conn.close()


def write_locked(db: Path) -> sqlite3.Connection:
    """A connection of this (test) process holding the database's write lock until
    it rolls back: a backup job, as far as the daemon can tell."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


# --- the real daemon -------------------------------------------------------------------


def test_ready_once_swept_status_as_files_load_and_stopping_on_sigterm(
        settings: Settings, start_daemon: Start, listener: Listener) -> None:
    daemon = start_daemon(env={"NOTIFY_SOCKET": listener.address}, wait_started=False)
    ready = listener.wait_for("READY", "1")
    # Ready means watching: the sweep was logged before systemd was told.
    assert daemon.matching("inbox_swept")
    assert ready.fields["STATUS"] == "watching the inbox; 0 processed, 0 failed"
    drop_day(settings)
    daemon.wait_for("file_processed")
    listener.wait_for("STATUS", "watching the inbox; 1 processed, 0 failed")
    daemon.proc.send_signal(signal.SIGTERM)
    stopping = listener.wait_for("STOPPING", "1")
    assert stopping.fields["STATUS"] == "stopping (SIGTERM): finishing the file in flight"
    assert daemon.proc.wait(timeout=DEADLINE_SECONDS) == 0  # one signal: a warm stop
    assert [d.fields.get("READY") for d in listener.received].count("1") == 1
    assert daemon.matching("daemon_stopping", reason="SIGTERM")
    assert not daemon.matching("systemd_notify_failed")


def test_a_locked_database_holds_ready_back_and_extends_the_start_timeout(
        settings: Settings, start_daemon: Start, path_listener: Listener) -> None:
    initialised(settings.db_file)
    holder = write_locked(settings.db_file)
    try:
        daemon = start_daemon(env={"NOTIFY_SOCKET": path_listener.address,
                                   "ETL_BUSY_TIMEOUT_SECONDS": "0.1"}, wait_started=False)
        first = path_listener.wait_for("EXTEND_TIMEOUT_USEC")
        second = path_listener.wait_for("EXTEND_TIMEOUT_USEC")
    finally:
        holder.rollback()
        holder.close()
    for waiting, attempt, delay in ((first, 1, 1), (second, 2, 2)):
        assert waiting.fields["STATUS"].startswith("database_busy: database is locked "
                                                   f"(attempt {attempt}, next in {delay} s)")
        # Longer than the wait before the next attempt and that attempt itself.
        assert int(waiting.fields["EXTEND_TIMEOUT_USEC"]) > (delay + 0.1) * 1e6
    assert not [d for d in path_listener.received if "READY" in d.fields]
    path_listener.wait_for("READY", "1")
    assert daemon.matching("inbox_swept")
    assert daemon.stop() == 0


def test_watchdog_pings_come_at_half_the_interval(
        start_daemon: Start, path_listener: Listener) -> None:
    # WATCHDOG_PID is ours only in the child: systemd sets it to the pid it starts.
    daemon = start_daemon(env={"NOTIFY_SOCKET": path_listener.address,
                               "WATCHDOG_USEC": "1000000"})
    path_listener.wait_for("READY", "1")
    pings = [path_listener.wait_for("WATCHDOG", "1").at for _ in range(6)]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # Half of 1 s, give or take one 0.1 s turn of the main loop; never the whole second.
    assert 0.45 < statistics.median(gaps) < 0.7, gaps
    assert max(gaps) < 1.0, gaps
    assert daemon.stop() == 0


def test_a_stalled_worker_gets_no_pings_until_it_ticks_again(
        settings: Settings, start_daemon: Start, path_listener: Listener) -> None:
    """The worker blocks inside SQLite's busy handler (60 s) behind another process's
    write lock: alive, but silent for longer than stall_seconds."""
    initialised(settings.db_file)
    daemon = start_daemon("--stall-seconds", "2",
                          env={"NOTIFY_SOCKET": path_listener.address,
                               "WATCHDOG_USEC": "400000", "ETL_BUSY_TIMEOUT_SECONDS": "60"})
    path_listener.wait_for("READY", "1")
    path_listener.wait_for("WATCHDOG", "1")
    holder = write_locked(settings.db_file)
    try:
        drop_day(settings)
        unhealthy = path_listener.wait_for("STATUS")
        while not unhealthy.fields["STATUS"].startswith("unhealthy: "):
            unhealthy = path_listener.wait_for("STATUS")
        assert "the worker has not ticked for" in unhealthy.fields["STATUS"]
        # Five ping intervals without a single ping.
        assert not [d for d in path_listener.during(1.0) if "WATCHDOG" in d.fields]
        [withheld] = daemon.matching("watchdog_withheld")
        assert withheld["level"] == "error"
        assert withheld["problems"][0].startswith("the worker has not ticked for ")
    finally:
        holder.rollback()
        holder.close()
    daemon.wait_for("file_processed")
    path_listener.wait_for("WATCHDOG", "1")
    daemon.wait_for("watchdog_resumed")
    assert len(daemon.matching("watchdog_withheld")) == 1  # once per episode
    assert daemon.stop() == 0


def fill(path: str) -> list[socket.socket]:
    """Fill the receive queue of the socket at `path` until a new sender would block.

    Each sender can queue only its send buffer's worth, so senders are added until one
    sends nothing: then the receiver's queue itself is full. Returned to be closed.
    """
    senders: list[socket.socket] = []
    while len(senders) < 1000:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        senders.append(sender)
        sent = 0
        try:
            while True:
                sender.sendto(b"STATUS=filler", socket.MSG_DONTWAIT, path)
                sent += 1
        except BlockingIOError:
            if not sent:
                return senders
    pytest.fail("the notify socket's queue never filled")


def test_a_notify_socket_that_never_reads_neither_blocks_nor_stops_the_daemon(
        settings: Settings, start_daemon: Start, path_listener: Listener) -> None:
    senders = fill(path_listener.address)
    try:
        daemon = start_daemon(env={"NOTIFY_SOCKET": path_listener.address,
                                   "WATCHDOG_USEC": "200000"})
        drop_day(settings)
        daemon.wait_for("file_processed")
        daemon.wait_for("systemd_notify_failed")
        # A blocking send would hold the main thread, and the process, past its stop.
        assert daemon.stop(timeout=10) == 0
    finally:
        for sender in senders:
            sender.close()
    # Every send failed (READY, pings, STOPPING), and said so once.
    [failed] = daemon.matching("systemd_notify_failed")
    assert (failed["level"], failed["errno"], failed["message"]) == (
        "warning", "EAGAIN", "READY=1")
    assert daemon.matching("daemon_stopped", reason="SIGTERM", processed=1)


def test_a_notify_socket_that_does_not_exist_is_reported_once(
        settings: Settings, start_daemon: Start, tmp_path: Path) -> None:
    daemon = start_daemon(env={"NOTIFY_SOCKET": str(tmp_path / "absent.sock"),
                               "WATCHDOG_USEC": "200000"})
    drop_day(settings)
    daemon.wait_for("file_processed")
    daemon.wait_for("systemd_notify_failed")
    assert daemon.stop() == 0
    [failed] = daemon.matching("systemd_notify_failed")
    assert failed["errno"] == "ENOENT" and failed["hint"]


# --- in-process: systemd's variables and one turn of the loop --------------------------


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = notify.Notifier.from_environment({"WATCHDOG_USEC": "1000000"}, pid=1)
    worker = WorkerState()
    worker.swept.set()
    worker.problems = ["stuck"]
    with capture_logs() as logs, notifier:
        notifier.tick(worker, now=100.0)
        notifier.waiting("waiting", 10.0)
        notifier.stopping("SIGTERM")
        assert notifier.send("READY=1") is False
    assert not notifier.enabled and notifier.watchdog_seconds is None
    assert notifier._socket is None  # not even a socket was made
    assert logs == []


@pytest.mark.parametrize(("environ", "seconds"), [
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # someone else's
    ({}, None),
])
def test_the_watchdog_interval_is_read_for_this_pid_only(
        environ: dict[str, str], seconds: float | None) -> None:
    with notify.Notifier.from_environment(
            {"NOTIFY_SOCKET": "/run/systemd/notify", **environ}, pid=4242) as notifier:
        assert notifier.address == "/run/systemd/notify"
        assert notifier.watchdog_seconds == seconds


@pytest.mark.parametrize(("environ", "reason"), [
    ({"NOTIFY_SOCKET": "relative/notify"}, "NOTIFY_SOCKET='relative/notify' is neither"),
    ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "soon"}, "WATCHDOG_USEC='soon' is not"),
    ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "0"}, "WATCHDOG_USEC='0' is not"),
])
def test_variables_systemd_would_never_set_are_reported_not_raised(
        environ: dict[str, str], reason: str) -> None:
    with capture_logs() as logs, notify.Notifier.from_environment(environ, pid=1) as notifier:
        assert notifier.watchdog_seconds is None
    [line] = logs
    assert line["event"] == "systemd_notify_failed" and line["reason"].startswith(reason)


@dataclass
class WorkerState:
    """A stand-in for the worker's report: what `Notifier.tick` reads."""

    swept: threading.Event = field(default_factory=threading.Event)
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def tally(self) -> Counter[str]:
        return self.outcomes

    def stuck(self) -> list[str]:
        return list(self.problems)


def test_a_turn_sends_ready_once_swept_and_withholds_pings_once_per_episode(
        path_listener: Listener) -> None:
    worker = WorkerState()
    with capture_logs() as logs, notify.Notifier(path_listener.address, 1.0) as notifier:
        notifier.tick(worker, now=0.0)
        assert path_listener.next_fields() == {"WATCHDOG": "1"}
        worker.swept.set()
        worker.outcomes.update(processed=2, failed=1)
        notifier.tick(worker, now=0.1)  # before the next ping is due
        assert path_listener.next_fields() == {
            "READY": "1", "STATUS": "watching the inbox; 2 processed, 1 failed"}
        worker.problems = ["the worker has not ticked for 301 s (stall_seconds 300)"]
        for now in (0.5, 1.0, 1.5):
            notifier.tick(worker, now=now)
        assert path_listener.next_fields() == {
            "STATUS": f"unhealthy: {worker.problems[0]}"}
        assert path_listener.next_fields() is None  # no ping, no repeated status
        worker.problems = []
        notifier.tick(worker, now=2.0)
        assert path_listener.next_fields() == {"WATCHDOG": "1"}
    assert [(line["event"], line["log_level"]) for line in logs] == [
        ("watchdog_withheld", "error"), ("watchdog_resumed", "info")]
    assert logs[0]["problems"] == [
        "the worker has not ticked for 301 s (stall_seconds 300)"]
