"""The HTTP server in-process: a real watcher and `StatusServer`, real requests to them.

What a daemon run cannot steer: readiness before the sweep, a worker held on an event
or dead, a silent client, `stop` with connections open, the connection cap, and the
seam for the status page. `--stall-seconds` is 0.5 s here so a held worker is soon stalled.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from filedrop_etl.config import Settings, contract
from filedrop_etl.daemon.app.worker import Worker, build
from filedrop_etl.daemon.ops.server import MAX_CONNECTIONS, PAGE_SLOTS, StatusServer
from filedrop_etl.daemon.watch.watcher import Watcher
from tests.conftest import as_warehouse, day_table, drop, wait_until, write_parquet
from tests.http_client import request

DAY = "2026-03-01"


@pytest.fixture
def built(settings: Settings, fresh_db: sqlite3.Connection) -> Iterator[Worker]:
    """A worker not yet started; stopped and joined at teardown if it was."""
    worker = build(replace(settings, stall_seconds=0.5), as_warehouse(fresh_db))
    yield worker
    held = worker.watcher
    held.request_stop()
    if held._thread.ident is not None:
        held.join()


@pytest.fixture
def watcher(built: Worker) -> Watcher:
    """The watcher of `built`."""
    return built.watcher


@pytest.fixture
def serve(built: Worker) -> Iterator[Callable[..., str]]:
    """Start a `StatusServer` on `built` (options as keywords); its base URL; stopped
    at teardown."""
    servers: list[StatusServer] = []

    def start(**options: Any) -> str:
        server = StatusServer(("127.0.0.1", 0), built.report, built.metrics, **options)
        servers.append(server)
        server.start()
        return f"http://127.0.0.1:{server.address[1]}"

    yield start
    for server in servers:
        server.stop()


def test_readyz_waits_for_the_sweep_and_healthz_for_the_worker(
        watcher: Watcher, serve: Callable[..., str]) -> None:
    base = serve()
    assert request(base + "/readyz").status == 503
    health = request(base + "/healthz")
    assert (health.status, health.text) == (
        503, "the worker thread is not running\nthe inbox observer is not running\n")
    watcher.start()
    wait_until(lambda: request(base + "/readyz").status == 200, "ready after the sweep")
    assert request(base + "/healthz").text == "ok\n"


def test_healthz_is_503_while_the_worker_is_stuck_then_200(
        tmp_path: Path, settings: Settings, watcher: Watcher, serve: Callable[..., str]) -> None:
    entered, release = threading.Event(), threading.Event()
    real = watcher.pipeline.process

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    watcher.pipeline.process = held  # type: ignore[method-assign]
    base = serve()
    watcher.start()
    try:
        drop(write_parquet(tmp_path / "out", day_table(DAY), contract.file_name_for(DAY)),
             settings.inbox)
        assert entered.wait(30), "the worker to take the file"
        wait_until(lambda: request(base + "/healthz").status == 503, "a stall (0.5 s)")
        assert request(base + "/healthz").text.startswith("the worker has not ticked for ")
        assert request(base + "/metrics").status == 200  # the server itself is not held
    finally:
        release.set()
    # Healthy again from the file's first staged batch on, before its outcome is counted:
    # wait for the outcome, then the worker is both moving and done.
    wait_until(lambda: watcher.outcomes["processed"] == 1, "the held file to be loaded")
    assert request(base + "/healthz").status == 200


def test_healthz_is_503_once_the_worker_has_died(
        tmp_path: Path, settings: Settings, watcher: Watcher, serve: Callable[..., str]) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug outside the pipeline's error boundary")

    watcher.pipeline.process = broken  # type: ignore[method-assign]
    base = serve()
    with capture_logs() as logs:
        watcher.start()
        drop(write_parquet(tmp_path / "out", day_table(DAY), contract.file_name_for(DAY)),
             settings.inbox)
        wait_until(lambda: watcher.crashed, "the worker to crash")
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["worker_crashed"]
    health = request(base + "/healthz")
    assert (health.status, health.text) == (503, "the worker thread is not running "
                                                 "(it crashed)\n")


def test_a_silent_client_is_cut_off_without_holding_up_others(
        serve: Callable[..., str]) -> None:
    base = serve(request_timeout=0.5)
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
        assert request(base + "/metrics").status == 200
        began = time.monotonic()
        assert silent.recv(1) == b""  # closed by the server, unanswered
    assert time.monotonic() - began < 5


def test_stop_cuts_open_connections_and_joins_every_thread(built: Worker) -> None:
    server = StatusServer(("127.0.0.1", 0), built.report, built.metrics, request_timeout=60)
    server.start()
    try:
        with socket.create_connection(server.address, timeout=10):
            wait_until(lambda: bool(server._server._open), "the connection to be taken")
            began = time.monotonic()
            server.stop()
            assert time.monotonic() - began < 2  # not the 60 s request timeout
    finally:
        server.stop()
    # The autouse guard fails the test if a request thread outlived `stop`.


def test_connections_over_the_cap_are_closed_unanswered_while_all_are_served(
        serve: Callable[..., str]) -> None:
    answering = threading.Event()
    release = threading.Event()

    def slow_page() -> str:
        answering.set()
        release.wait(timeout=30)
        return "<h1>slow</h1>"

    base = serve(max_connections=1, page=slow_page)
    first = threading.Thread(target=request, args=(base + "/",))
    first.start()
    try:
        assert answering.wait(timeout=10)
        assert _refused(base)  # the one slot is answering a request: never cut
    finally:
        release.set()
        first.join()
    wait_until(lambda: not _refused(base), "the slot to come back")


def test_probes_are_answered_while_viewers_hold_every_page_slot(
        watcher: Watcher, built: Worker) -> None:
    """Guards a found bug: page requests took every connection for as long as the page
    took to make (2.4 s at 100,000 loads a day, a session each), and a probe then found
    none. The page gets `PAGE_SLOTS` at most; one viewer more gets a 503 at once."""
    watcher.start()
    held, release = threading.Semaphore(0), threading.Event()

    def held_page() -> str:
        held.release()
        release.wait(timeout=30)
        return "<h1>page</h1>"

    server = StatusServer(("127.0.0.1", 0), built.report, built.metrics, page=held_page)
    server.start()
    base = f"http://127.0.0.1:{server.address[1]}"
    assert watcher.swept.wait(timeout=30)
    answers: list[tuple[object, str | None]] = []

    def view() -> None:
        try:
            answer = request(base + "/", timeout=30)
            answers.append((answer.status, answer.headers["Retry-After"]))
        except OSError as exc:  # refused: no connection left
            answers.append((type(exc).__name__, None))

    viewers = [threading.Thread(target=view) for _ in range(MAX_CONNECTIONS + 4)]
    for viewer in viewers:
        viewer.start()
    try:
        for _ in range(PAGE_SLOTS):
            assert held.acquire(timeout=10), "a page request to be held"
        wait_until(lambda: len(answers) == len(viewers) - PAGE_SLOTS,
                   "the viewers beyond the page's slots to be answered", timeout=10)
        assert answers == [(503, "1")] * (len(viewers) - PAGE_SLOTS)
        for path in ("/healthz", "/readyz", "/metrics"):
            began = time.monotonic()
            assert request(base + path, timeout=5).status == 200, path
            assert time.monotonic() - began < 2
    finally:
        release.set()
        for viewer in viewers:
            viewer.join()
        server.stop()
    assert answers.count((200, None)) == PAGE_SLOTS


def _idle_clients(base: str, count: int, says: bytes = b"") -> list[socket.socket]:
    port = int(base.rsplit(":", 1)[1])
    clients = [socket.create_connection(("127.0.0.1", port), timeout=10)
               for _ in range(count)]
    for client in clients:
        client.sendall(says)
    return clients


@pytest.mark.parametrize("says", [b"", b"GET /healthz HTTP/1.0\r\nHost: x\r\n"],
                         ids=["silent", "slow-headers"])
def test_idle_clients_never_keep_a_probe_from_being_answered(
        watcher: Watcher, built: Worker, says: bytes) -> None:
    """Guards a found bug: 16 idle TCP connections filled every slot for their 10 s
    timeout, and /healthz failed at once: a liveness probe that restarts a healthy
    daemon. The oldest idle connection now gives its place to a new one."""
    watcher.start()
    server = StatusServer(("127.0.0.1", 0), built.report, built.metrics)
    server.start()
    base = f"http://127.0.0.1:{server.address[1]}"
    assert watcher.swept.wait(timeout=30)
    threads_before = threading.active_count()
    clients = _idle_clients(base, 40, says)
    try:
        for _ in range(5):
            began = time.monotonic()
            health = request(base + "/healthz", timeout=5)
            assert (health.status, health.text) == (200, "ok\n")
            assert time.monotonic() - began < 2
        # Bounded: one thread per slot at most, whatever the number of clients.
        assert threading.active_count() <= threads_before + 16
    finally:
        for client in clients:
            client.close()
        # What the server makes of the clients' ends, before the test's own end.
        wait_until(lambda: not server._server._open, "the idle connections to close")
        server.stop()


def _refused(base: str) -> bool:
    try:
        request(base + "/metrics", timeout=5)
    except (ConnectionError, OSError):
        return True
    return False


def test_the_page_seam_serves_html_and_a_broken_page_is_a_500(
        serve: Callable[..., str]) -> None:
    page = serve(page=lambda: "<h1>status</h1>")
    assert request(page + "/").headers["Content-Type"] == "text/html; charset=utf-8"
    assert request(page + "/").text == "<h1>status</h1>"

    def broken() -> str:
        raise ValueError("a query went wrong")

    failing = serve(page=broken)
    with capture_logs() as logs:
        assert request(failing + "/").status == 500
    assert [(e["event"], e.get("status")) for e in logs] == [
        ("http_route_failed", None), ("http_request", 500)]
