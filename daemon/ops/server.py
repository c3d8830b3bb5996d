"""The HTTP side of the daemon: /metrics, /healthz, /readyz, and the status page at /.

A standard-library `ThreadingHTTPServer` on its own thread, on the address of `--http`
(off by default). It only reads: the metrics' exposition and the worker's report (its
health and readiness); it never touches the worker's database connection and the worker never waits
for it. Each connection gets a socket timeout, at most `max_connections` are served at
once and `stop` cuts those still open, so a slow or hostile client can neither stall the
daemon nor hold up its stop; every thread it starts is joined there. When all are taken,
a new connection takes the place of the oldest one that has not sent its request yet:
idle clients can never keep a probe from being answered. Nor can the status page's
viewers: at most `page_slots` page requests are answered at once, and one more gets a
503 with `Retry-After` at once rather than wait on a connection. Access and error
lines are structured debug events (`http_request`, `http_error`), never raw stderr.
HTTP/1.0, one request per connection: no idle keep-alive threads to wait for.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import structlog
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from filedrop_etl.daemon.ops.metrics import Metrics, WorkerState

log = structlog.get_logger("daemon.server")

TEXT = "text/plain; charset=utf-8"
# Long enough for a scrape over a slow link, short enough that a silent client's thread
# does not linger; `stop` does not wait for it (see `_Server.cut_open`).
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 16
# Requests for the status page answered at once, by default half of `max_connections`:
# one more gets a 503 at once (`BUSY`), so that the page's viewers never hold more than
# these of the connections, and the others stay free for /healthz, /readyz and /metrics.
# (Those being answered wait for the one page being made: `daemon.ops.snapshot`.)
PAGE_SLOTS = MAX_CONNECTIONS // 2
HTML = "text/html; charset=utf-8"
RETRY_AFTER_SECONDS = 1
# A screen left open on the page (its own script reloads only a page that loaded) comes
# back by itself.
BUSY = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv='
        f'"refresh" content="{RETRY_AFTER_SECONDS}"><title>filedrop-etl status</title>'
        "</head><body><p>Busy: the status page is being made for other viewers. It "
        f"reloads itself in {RETRY_AFTER_SECONDS} s.</p></body></html>\n").encode()
# How soon serve_forever notices `shutdown` (its default 0.5 s would slow every stop).
_POLL_SECONDS = 0.1
# How long a new connection waits for the slot of an idle one it had cut.
_EVICT_WAIT_SECONDS = 1.0


@runtime_checkable
class _Closing(Protocol):
    def close(self) -> None: ...


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "filedrop-etl"

    def version_string(self) -> str:
        return self.server_version  # not the Python version: nobody's business

    def setup(self) -> None:
        super().setup()
        # Every read and write of this connection, the request line included.
        self.connection.settimeout(self.server.request_timeout)

    def parse_request(self) -> bool:
        # The request line and the headers are in: from now on it is served, no longer
        # a client that only holds a connection open.
        parsed = super().parse_request()
        if parsed:
            self.server.serving(self.connection)
        return parsed

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _not_allowed(self) -> None:
        self._send(405, TEXT, b"method not allowed: use GET or HEAD\n", head=False,
                   extra={"Allow": "GET, HEAD"})

    # Methods HTTP defines; any other gets the standard library's 501. The names are
    # http.server's dispatch (do_<METHOD>).
    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815
    do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed  # noqa: N815

    def _respond(self, head: bool) -> None:
        extra: dict[str, str] = {}
        try:
            status, content_type, body, extra = self.server.app.answer(urlsplit(self.path).path)
        except Exception:
            # A bug in a route must not reach socketserver, which prints to stderr.
            log.exception("http_route_failed", path=self.path)
            status, content_type, body = 500, TEXT, b"internal error; see the daemon's log\n"
        self._send(status, content_type, body, head=head, extra=extra)

    def _send(self, status: int, content_type: str, body: bytes, head: bool,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # `path` is unset when the request line did not parse (a 400 for it, say).
        log.debug("http_request", method=self.command, path=getattr(self, "path", None),
                  status=int(code), client=self.client_address[0])

    def log_message(self, format: str, *args: Any) -> None:  # the base's argument name
        log.debug("http_error", message=format % args, client=self.client_address[0])


def family_of(address: tuple[str, int]) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


def check_bindable(address: tuple[str, int]) -> None:
    """`OSError` if `address` can not be served on now (in use, not an address of this
    machine, an unknown host), binding nothing for good: asked before a start makes
    anything, as the server is built only once the worker it reports on is."""
    with socket.socket(family_of(address), socket.SOCK_STREAM) as probe:
        # As the server binds (`allow_reuse_address`): a port left in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


class _Server(ThreadingHTTPServer):
    # Request threads are joined by server_close(), not left behind as daemon threads.
    daemon_threads = False
    block_on_close = True
    # The listen backlog (socketserver's 5): ten clients connecting at once (a few
    # viewers whose refreshes coincide, and a probe) overflowed it, and the kernel's
    # dropped SYN made the last ones wait a second for their retry.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: StatusServer, request_timeout: float,
                 max_connections: int) -> None:
        # Read by the socket's creation in TCPServer.__init__, so set before it.
        self.address_family = family_of(address)
        self.app = app
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        # Open connections, oldest first, and whether each has sent its whole request.
        self._open: dict[socket.socket, bool] = {}
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own would look up the host's name (DNS, on a closed network) only
        # to fill in a field we never use.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False) and not self._evict_idle(client_address):
            log.debug("http_refused", reason="too many connections", client=client_address[0])
            self.shutdown_request(request)
            return
        with self._lock:
            self._open[request] = False
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done(request)

    def _evict_idle(self, client_address: Any) -> bool:
        """Make room for a new connection by cutting the oldest one that has not sent a
        whole request yet; True once its slot is taken for the new one.

        Clients that connect and say nothing (or say it slowly) must not be able to keep
        a liveness probe from being answered: a probe that fails under a handful of idle
        clients gets a healthy daemon restarted. A request being answered is never cut.
        """
        with self._lock:
            idle = next((s for s, serving in self._open.items() if not serving), None)
        if idle is None:
            return False
        log.debug("http_evicted", reason="a new connection needs its slot",
                  client=client_address[0])
        with contextlib.suppress(OSError):  # closed meanwhile
            idle.shutdown(socket.SHUT_RDWR)
        # Its thread sees the end of its stream at once and gives the slot back.
        return self._slots.acquire(timeout=_EVICT_WAIT_SECONDS)

    def serving(self, request: socket.socket) -> None:
        with self._lock:
            if request in self._open:
                self._open[request] = True

    def _done(self, request: socket.socket) -> None:
        with self._lock:
            self._open.pop(request, None)
        self._slots.release()

    def cut_open(self) -> None:
        """End the connections still open, so that their threads return at once."""
        with self._lock:
            open_now = list(self._open)
        for request in open_now:
            with contextlib.suppress(OSError):  # closed meanwhile
                request.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client gone mid-response, or cut by `stop`; socketserver would print to stderr.
        log.debug("http_connection_failed", client=client_address[0], exc_info=True)


class StatusServer:
    """Serves one daemon's probes and metrics; binds at construction (`OSError`)."""

    def __init__(self, address: tuple[str, int], worker: WorkerState, metrics: Metrics, *,
                 page: Callable[[], str] | None = None,
                 request_timeout: float = REQUEST_TIMEOUT_SECONDS,
                 max_connections: int = MAX_CONNECTIONS,
                 page_slots: int | None = None) -> None:
        self.worker = worker
        self.metrics = metrics
        # The status page's renderer (`daemon.ops.page.source`): `/` is 404 without one.
        self.page = page
        self._page_slots = threading.BoundedSemaphore(page_slots or max(1, max_connections // 2))
        self._server = _Server(address, self, request_timeout, max_connections)
        self._thread = threading.Thread(target=self._server.serve_forever, name="etl-http",
                                        kwargs={"poll_interval": _POLL_SECONDS})

    @property
    def address(self) -> tuple[str, int]:
        """The host and port bound (the port chosen by the system for port 0)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        host, port = self.address
        log.info("http_started", host=host, port=port)

    def stop(self) -> None:
        """Stop serving, cut open connections, join every thread; safe if never started."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.cut_open()
        self._server.server_close()  # closes the socket and joins the request threads
        if isinstance(self.page, _Closing):
            self.page.close()  # its database session; no request uses it any more
        self.metrics.close()  # the failed files' count's session, likewise
        if self._thread.ident is not None:
            log.info("http_stopped")

    def answer(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        """`route`'s answer, with the headers it needs."""
        if path == "/" and self.page is not None:
            # Not blocking: a request that waited here would hold a connection a probe
            # may need.
            if not self._page_slots.acquire(blocking=False):
                return 503, HTML, BUSY, {"Retry-After": str(RETRY_AFTER_SECONDS)}
            try:
                return 200, HTML, self.page().encode(), {}
            finally:
                self._page_slots.release()
        return (*self.route(path), {})

    def route(self, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body for a GET of `path` (the page: `answer`)."""
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.metrics.exposition()
        if path == "/healthz":
            problems = self.worker.health()
            return (503, TEXT, "".join(f"{p}\n" for p in problems).encode()) if problems \
                else (200, TEXT, b"ok\n")
        if path == "/readyz":
            return (200, TEXT, b"ready\n") if self.worker.swept.is_set() \
                else (503, TEXT, b"not ready: the start-up sweep is not done\n")
        return 404, TEXT, b"not found: try /metrics, /healthz or /readyz\n"
