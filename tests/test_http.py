"""`--http` on the real daemon: real requests (urllib, a raw socket, a headless browser).

What a user sees: the routes, off by default, a refused address, IPv6, a prompt stop
with a client connected, and what a person sees of /healthz and /metrics in a browser.
What a daemon run cannot steer is in test_server.py, in-process.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from filedrop_etl.config import contract
from tests.conftest import DaemonProcess, day_table, drop, write_parquet
from tests.http_client import request, url_of

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

Start = Callable[..., DaemonProcess]
DAY = "2026-03-01"


def listening_ports(pid: int) -> set[int]:
    """TCP ports process `pid` listens on: its socket descriptors in the LISTEN table."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            sockets.add(str(fd.readlink()))
        except FileNotFoundError:
            continue  # closed meanwhile
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and f"socket:[{fields[9]}]" in sockets:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def raw(port: int, data: bytes) -> bytes:
    """Send `data` as is and read the whole answer: what urllib would tidy away."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_http_is_off_by_default_and_listens_only_when_asked(start_daemon: Start) -> None:
    quiet = start_daemon(log_name="off.log")
    assert listening_ports(quiet.proc.pid) == set()
    assert not quiet.matching("http_started")
    assert quiet.stop() == 0
    served = start_daemon("--http", "127.0.0.1:0", log_name="on.log")
    [started] = served.matching("http_started")
    assert listening_ports(served.proc.pid) == {started["port"]}
    assert served.stop() == 0


def test_the_routes_answer_as_documented(start_daemon: Start) -> None:
    daemon = start_daemon("--http", "127.0.0.1:0")
    base = url_of(daemon)
    health = request(base + "/healthz")
    assert (health.status, health.text) == (200, "ok\n")
    assert (request(base + "/readyz").status, request(base + "/readyz").text) == (200, "ready\n")
    metrics = request(base + "/metrics")
    assert metrics.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert 'etl_files_total{feed="transactions",outcome="processed"} 0.0' in metrics.text
    head = request(base + "/metrics", method="HEAD")
    assert head.headers["Content-Length"] == metrics.headers["Content-Length"]
    port = int(base.rsplit(":", 1)[1])
    assert raw(port, b"HEAD /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 ")
    assert raw(port, b"HEAD /metrics HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\n")  # no body
    # A malformed request is answered, and logged (at debug) as JSON, not raw on stderr.
    # (No status line: the version did not parse, so the answer is HTTP/0.9's, body only.)
    assert b"400 - Bad request" in raw(port, b"GET /metrics HTTP/x.y\r\n\r\n")
    page = request(base + "/")
    assert (page.status, page.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert [request(base + path).status for path in ("/nope", "/metrics/x")] == [404] * 2
    post = request(base + "/metrics", method="POST")
    assert (post.status, post.headers["Allow"]) == (405, "GET, HEAD")
    assert request(base + "/healthz", method="BREW").status == 501
    assert daemon.stop() == 0
    # Requests leave no access lines at info, and nothing raw: every line parsed as JSON.
    assert {e["event"] for e in daemon.events()} >= {"http_started", "http_stopped"}
    assert not [e for e in daemon.events() if e["event"].startswith("http_")
                and e["event"] not in ("http_started", "http_stopped")]


@pytest.mark.parametrize("taken", [True, False], ids=["port-in-use", "not-our-address"])
def test_an_address_it_cannot_listen_on_exits_2_with_one_line(start_daemon: Start,
                                                              taken: bool) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        # 192.0.2.1 is TEST-NET-1: no address of this machine (binding sends nothing).
        address = f"127.0.0.1:{holder.getsockname()[1]}" if taken else "192.0.2.1:0"
        daemon = start_daemon("--http", address, wait_started=False)
        assert daemon.proc.wait(timeout=30) == 2
    # One line: the address is asked before anything is made, so the refused start left
    # no folder, no lock file and no database behind (issue 24).
    [line] = daemon.events()
    assert (line["event"], line["level"]) == ("config_invalid", "error")
    settings = daemon.settings
    assert not [p for p in (settings.inbox, settings.processed, settings.failed,
                            settings.work, settings.db_file, settings.lock_file) if p.exists()]
    assert line["reason"].startswith(f"cannot serve HTTP on {address}: ")
    assert ("in use" if taken else "assign requested address") in line["reason"]
    assert "free port" in line["hint"]


def test_an_ipv6_address_is_served(start_daemon: Start) -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    daemon = start_daemon("--http", "[::1]:0")
    base = url_of(daemon)
    assert base.startswith("http://[::1]:")
    assert request(base + "/healthz").status == 200
    assert daemon.stop() == 0


def test_sigterm_stops_at_once_with_a_silent_client_connected(start_daemon: Start) -> None:
    daemon = start_daemon("--http", "127.0.0.1:0")
    [started] = daemon.matching("http_started")
    with socket.create_connection(("127.0.0.1", started["port"])):
        request(url_of(daemon) + "/healthz")  # served while the silent one waits
        began = time.monotonic()
        assert daemon.stop() == 0
    # Well within the 10 s a silent client may otherwise hold its connection.
    assert time.monotonic() - began < 5
    assert daemon.matching("http_stopped")


def test_a_browser_sees_the_health_and_the_metrics(tmp_path: Path, start_daemon: Start,
                                                   browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    daemon = start_daemon("--http", "127.0.0.1:0")
    base = url_of(daemon)
    drop(write_parquet(tmp_path / "out", day_table(DAY), contract.file_name_for(DAY)),
         daemon.settings.inbox)
    daemon.wait_for("file_processed")
    browser.get(base + "/healthz")
    assert browser.find_element(By.TAG_NAME, "body").text == "ok"
    browser.get(base + "/metrics")
    shown = browser.find_element(By.TAG_NAME, "body").text.splitlines()
    assert 'etl_files_total{feed="transactions",outcome="processed"} 1.0' in shown
    assert 'etl_rows_total{change="inserted",feed="transactions"} 25.0' in shown
    assert daemon.stop() == 0
