"""The systemd notify protocol (sd_notify), spoken without a library: readiness, status,
stopping and the watchdog.

A `Type=notify` service is given `NOTIFY_SOCKET` (a unix datagram socket: a path, or
`@name` in the abstract namespace) and, with `WatchdogSec=`, `WATCHDOG_USEC` and
`WATCHDOG_PID`. Those are the service manager's protocol, not settings, so this module
reads them itself, once, at start-up; `config.settings` stays the only reader of the
`ETL_*` settings. Each message is one datagram sent with MSG_DONTWAIT: the daemon never
waits on its supervisor, so a full queue or a missing socket is logged once per cause as
`systemd_notify_failed` and the message is dropped; without NOTIFY_SOCKET every call
does nothing. `Notifier.tick`, called on each turn of the main loop, sends READY=1 once
the start-up sweep is done and pings the watchdog at half its interval, but only while
the worker and the observer are not stuck (threads alive, the worker ticking), so that a
stuck worker gets the service restarted. Nothing here raises on a send, blocks, or starts a thread.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Protocol

import structlog

log = structlog.get_logger("daemon.notify")

# STATUS= is what `systemctl status` shows; no need to say the same thing ten times a second.
STATUS_EVERY_SECONDS = 1.0


class Supervised(Protocol):
    """What the notifier reads of the worker (its `WorkerReport`; a protocol, so tests can
    pass a stand-in)."""

    swept: threading.Event

    def tally(self) -> Mapping[str, int]: ...

    def stuck(self) -> list[str]: ...


def summary(worker: Supervised) -> str:
    """A short human line for STATUS=: what the daemon does and what it has done."""
    done = worker.tally()
    text = f"watching the inbox; {done['processed']} processed, {done['failed']} failed"
    return text + (f", {done['retry']} retries" if done["retry"] else "")


class Notifier:
    """One daemon's messages to systemd; every method is a no-op without NOTIFY_SOCKET."""

    def __init__(self, address: str | bytes | None, watchdog_seconds: float | None) -> None:
        self.address = address
        # Pings are withheld, not faked, when there is nobody to send them to.
        self.watchdog_seconds = watchdog_seconds if address is not None else None
        self.withheld: list[str] = []
        self._socket: socket.socket | None = None
        self._reported: set[int | None] = set()
        self._ready = False
        self._next_ping = 0.0
        self._next_status = 0.0
        self._status = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ,
                         pid: int | None = None) -> Notifier:
        """The notifier systemd asked for through the environment (read, not changed).

        The variables are left in `os.environ`, unlike sd_notify(unset_environment=1):
        the daemon starts no child that could inherit them (and with NotifyAccess=main
        systemd would ignore a child's messages anyway), while setenv/unsetenv race with
        getenv in native threads that imports have already started.
        """
        text = environ.get("NOTIFY_SOCKET", "")
        if not text:
            return cls(None, None)
        address: str | bytes
        if text.startswith("@"):
            # The abstract namespace: a leading NUL instead of the '@', no file at all.
            address = b"\0" + os.fsencode(text[1:])
        elif text.startswith("/"):
            address = text
        else:
            _warn(f"NOTIFY_SOCKET={text!r} is neither an absolute path nor an @name",
                  "systemd sets it; unset it to run without notifications")
            return cls(None, None)
        return cls(address, _watchdog_seconds(environ, os.getpid() if pid is None else pid))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` lines as one datagram, never waiting; True if it was sent."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX,
                                             socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto("\n".join(assignments).encode(), socket.MSG_DONTWAIT,
                                self.address)
        except OSError as exc:
            # Once per cause (a full queue, no listener, no such socket): the daemon's
            # work goes on either way, and a log line per ping would drown the log.
            if exc.errno not in self._reported:
                self._reported.add(exc.errno)
                _warn(exc.strerror or str(exc),
                      "systemd may time out waiting for READY or the watchdog; the "
                      "daemon goes on loading files", message=assignments[0],
                      errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)))
            return False
        return True

    def waiting(self, status: str, extend_seconds: float) -> None:
        """Not ready yet, and why: systemd gives start-up `extend_seconds` more, so that
        TimeoutStartSec= ends only a daemon that stopped saying it waits."""
        self.send(f"STATUS={status}", f"EXTEND_TIMEOUT_USEC={round(extend_seconds * 1e6)}")

    def stopping(self, reason: str) -> None:
        self.send("STOPPING=1", f"STATUS=stopping ({reason}): finishing the file in flight")
        self._next_status = float("inf")  # the summary must not hide that it is stopping

    def tick(self, worker: Supervised, now: float | None = None) -> None:
        """One turn of the main loop: READY once swept, the watchdog, a fresh STATUS."""
        if self.address is None:
            return
        now = time.monotonic() if now is None else now
        if not self._ready and worker.swept.is_set():
            # Ready means watched: `systemctl start` returns once new drops are seen.
            self._ready = True
            self._status = summary(worker)
            self.send("READY=1", f"STATUS={self._status}")
        if self.watchdog_seconds is not None and now >= self._next_ping:
            # Half the interval, as sd_watchdog_enabled(3) advises: one late turn of the
            # loop does not cost the service its life.
            self._next_ping = now + self.watchdog_seconds / 2
            self._ping_watchdog(worker.stuck())
        if self._ready and not self.withheld and now >= self._next_status:
            self._next_status = now + STATUS_EVERY_SECONDS
            status = summary(worker)
            if status != self._status:
                self._status = status
                self.send(f"STATUS={status}")

    def _ping_watchdog(self, problems: list[str]) -> None:
        if not problems:
            if self.withheld:
                log.info("watchdog_resumed", after=self.withheld)
                self.withheld = []
            self.send("WATCHDOG=1")
            return
        if not self.withheld:
            # Once per episode: from here systemd restarts the service within WatchdogSec.
            log.error("watchdog_withheld", problems=problems,
                      hint="no systemd watchdog ping while this lasts: systemd restarts "
                      "the service after WatchdogSec")
            self.send(f"STATUS=unhealthy: {'; '.join(problems)}")
        self.withheld = problems

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _watchdog_seconds(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog interval meant for this process, as sd_watchdog_enabled(3) reads it."""
    usec_text = environ.get("WATCHDOG_USEC", "")
    if not usec_text:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None  # meant for another process (the one that started us, say)
    if not usec_text.isdigit() or int(usec_text) == 0:
        _warn(f"WATCHDOG_USEC={usec_text!r} is not a positive number of microseconds",
              "the watchdog is off; check WatchdogSec= in the unit")
        return None
    return int(usec_text) / 1e6


def _warn(reason: str, hint: str, **keys: object) -> None:
    log.warning("systemd_notify_failed", reason=reason, hint=hint, **keys)
