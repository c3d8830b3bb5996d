"""A TCP proxy for the tests: the network between the daemon and its server, made to fail.

`TcpProxy` listens on a free port of 127.0.0.1 and forwards each connection to the
upstream address, from one thread (a selector), until `close`. Its mode can be switched
while it runs, and each switch is in effect when the call returns:

- `pass`: forward both ways;
- `refuse`: no listener, so new connections are refused (existing ones go on);
- `blackhole`: new connections are accepted and read, and nothing is ever answered or
  forwarded; existing connections stop forwarding too. What is read is dropped, so a
  connection that was black-holed is closed when the mode changes again, as the
  kernel's timeouts would end it on a real network.

`cut` closes every connection now, whatever the mode. The proxy stands in for the
network, not the server: the server sees connections from the proxy, and a server-side
end of a connection reaches the daemon through it.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

Mode = Literal["pass", "refuse", "blackhole"]
_CHUNK = 65536


@dataclass(eq=False)
class _Pair:
    """One client connection and, unless it was black-holed from the start, its server."""

    client: socket.socket
    server: socket.socket | None
    forwarding: bool
    # Bytes waiting to be written to each socket.
    pending: dict[socket.socket, bytearray] = field(default_factory=dict)

    def peer(self, sock: socket.socket) -> socket.socket | None:
        return self.server if sock is self.client else self.client

    @property
    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.server) if s is not None]


class TcpProxy:
    """A proxy from a port of 127.0.0.1 to `upstream` (see the module's docstring)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode: Mode = "pass"
        self._selector = selectors.DefaultSelector()
        self._listener: socket.socket | None = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._pairs: dict[socket.socket, _Pair] = {}
        self._commands: list[tuple[Callable[[], None], threading.Event]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    def url(self, url: str) -> str:
        """`url` (a PostgreSQL URL to the upstream) through this proxy instead."""
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def set_mode(self, mode: Mode) -> None:
        self._call(lambda: self._switch(mode))

    def cut(self) -> None:
        """Close every connection now (the mode stays)."""
        self._call(self._cut)

    @property
    def connections(self) -> int:
        """How many client connections are open through the proxy now."""
        result: list[int] = []
        self._call(lambda: result.append(len({id(p) for p in self._pairs.values()})))
        return result[0]

    def close(self) -> None:
        self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join()
        for key in [*self._selector.get_map().values()]:
            if isinstance(key.fileobj, socket.socket):
                key.fileobj.close()
        self._selector.close()
        self._wake_w.close()

    # --- the proxy's own thread ------------------------------------------------------

    def _call(self, command: Callable[[], None]) -> None:
        done = threading.Event()
        with self._lock:
            self._commands.append((command, done))
        self._wake_w.send(b"x")
        if not done.wait(10):
            raise TimeoutError("the proxy's thread did not answer")

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ)
        return listener

    def _switch(self, mode: Mode) -> None:
        if mode == self.mode:
            return
        if self.mode == "blackhole":
            for pair in {id(p): p for p in self._pairs.values()}.values():
                self._drop(pair)  # what they carried was lost: no stream to resume
        if mode == "refuse" and self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        elif mode != "refuse" and self._listener is None:
            self._listener = self._listen(self.port)
        if mode == "blackhole":
            for sock, pair in self._pairs.items():
                pair.forwarding = False
                pair.pending[sock].clear()
                self._selector.modify(sock, selectors.EVENT_READ)
        self.mode = mode

    def _cut(self) -> None:
        for pair in {id(p): p for p in self._pairs.values()}.values():
            self._drop(pair)

    def _drop(self, pair: _Pair) -> None:
        for sock in pair.sockets:
            self._pairs.pop(sock, None)
            self._selector.unregister(sock)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        client, _ = listener.accept()
        client.setblocking(False)
        server: socket.socket | None = None
        if self.mode == "pass":
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                return
            server.setblocking(False)
        pair = _Pair(client, server, forwarding=server is not None)
        for sock in pair.sockets:
            self._pairs[sock] = pair
            pair.pending[sock] = bytearray()
            self._selector.register(sock, selectors.EVENT_READ)

    def _read(self, sock: socket.socket, pair: _Pair) -> None:
        try:
            data = sock.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(pair)
            return
        peer = pair.peer(sock)
        if pair.forwarding and peer is not None:
            pair.pending[peer] += data
            self._selector.modify(peer, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def _write(self, sock: socket.socket, pair: _Pair) -> None:
        buffer = pair.pending[sock]
        try:
            sent = sock.send(buffer)
        except BlockingIOError:
            return
        except OSError:
            self._drop(pair)
            return
        del buffer[:sent]
        if not buffer:
            self._selector.modify(sock, selectors.EVENT_READ)

    def _run(self) -> None:
        while not self._stopping:
            for key, events in self._selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._wake_r:
                    sock.recv(_CHUNK)
                    with self._lock:
                        commands, self._commands = self._commands, []
                    for command, done in commands:
                        command()
                        done.set()
                elif sock is self._listener:
                    self._accept(sock)
                elif sock in self._pairs:
                    pair = self._pairs[sock]
                    if events & selectors.EVENT_WRITE and pair.forwarding:
                        self._write(sock, pair)
                    if events & selectors.EVENT_READ and sock in self._pairs:
                        self._read(sock, pair)
