"""The signals the daemon takes, and what each one does; handlers that only set flags.

Every signal whose default action would end the process is taken, so that none ends it
without a word (a SIGHUP death even counts as clean to systemd, which then does not
restart it). SIGTERM and SIGINT stop it warmly: the file in flight is finished, and the
same signal again exits at once. SIGHUP rescans the inbox now (`systemctl reload`), as a
daemon's operators expect; settings are read at start only. SIGUSR1 logs one
`daemon_status` line. SIGQUIT logs where each thread is and exits at once with status
131, the file in flight resumed at the next start. The rest that nothing should send a
loader (SIGUSR2, SIGALRM, ...) are logged and ignored. Handlers only record the signal
and wake the worker; `Signals.dispatch` acts on them in the main thread. The signals
stay blocked until the handlers are in place (`daemon.app.cli`), and `on_start_up` says
what one taken during the start-up wait for the database means.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any, Protocol

import structlog

log = structlog.get_logger("daemon")

STOP = (signal.SIGTERM, signal.SIGINT)
RESCAN, STATUS, QUIT = signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT
# Default action "terminate", and no meaning for a loader.
IGNORED = tuple(getattr(signal, name) for name in (
    "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR") if hasattr(signal, name))
TAKEN = (*STOP, RESCAN, STATUS, QUIT, *IGNORED)
# What a shell shows for a process killed by SIGQUIT; systemd restarts on it.
QUIT_EXIT = 128 + QUIT


class Controlled(Protocol):
    """What the signals act on: the watcher."""

    def request_stop(self) -> None: ...

    def request_rescan(self, reason: str) -> None: ...


class Reported(Protocol):
    """What SIGUSR1 reads: the worker's report."""

    def status(self) -> Mapping[str, object]: ...


def name(signum: int) -> str:
    return signal.Signals(signum).name


def on_start_up(signum: int) -> int | None:
    """What a signal taken while the daemon waits for its database means: an exit code
    (0 for a stop, QUIT_EXIT), or None to go on waiting, said in the log."""
    if signum in STOP:
        return 0
    if signum == QUIT:
        log.warning("daemon_stopping", reason=name(signum), hint="exiting at once")
        return QUIT_EXIT
    if signum in (RESCAN, STATUS):
        log.info("signal_received", signal=name(signum), action="none",
                 hint="the daemon is still waiting for its database; the inbox is swept "
                 "as soon as it is open")
    else:
        _ignored(signum)
    return None


def _ignored(signum: int) -> None:
    log.warning("signal_ignored", signal=name(signum),
                hint="nothing in the daemon uses this signal; SIGTERM stops it, SIGHUP "
                "rescans the inbox, SIGUSR1 logs its status")


class Signals:
    """The daemon's handlers, installed for its lifetime; `dispatch` acts on them."""

    def __init__(self, controlled: Controlled, reported: Reported) -> None:
        self.controlled, self.reported = controlled, reported
        # Appended to by the handlers (list.append is atomic), read by the main thread.
        self.stops: list[int] = []
        self._pending: list[int] = []
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in TAKEN}

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only flags. A second stop signal ends the process at once, by that signal's
        # default action, so the exit status names the signal.
        if signum not in STOP:
            self._pending.append(signum)
            return
        self.stops.append(signum)
        self.controlled.request_stop()
        if len(self.stops) > 1:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def dispatch(self) -> int | None:
        """Act on the signals other than stops taken since the last call, in the order
        they came; an exit code if the process must end now (SIGQUIT)."""
        while self._pending:
            signum = self._pending.pop(0)
            if signum == QUIT:
                log.warning("daemon_stopping", reason=name(signum), threads=_stacks(),
                            hint="exiting at once; the file in flight, if any, stays in "
                            "the work directory and is resumed at the next start")
                return QUIT_EXIT
            if signum == RESCAN:
                log.info("signal_received", signal=name(signum), action="rescan",
                         hint="settings are read at start only: restart the daemon to "
                         "apply a changed configuration")
                self.controlled.request_rescan("signal")
            elif signum == STATUS:
                log.info("daemon_status", signal=name(signum), **self.reported.status())
            else:
                _ignored(signum)
        return None


def _stacks() -> dict[str, list[str]]:
    """Where each thread is, innermost frame last: what a stuck daemon was doing."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    stacks = {}
    for ident, frame in sys._current_frames().items():
        lines: list[str] = []
        current: FrameType | None = frame
        while current is not None and len(lines) < 12:
            code = current.f_code
            lines.append(f"{code.co_filename}:{current.f_lineno} {code.co_name}")
            current = current.f_back
        stacks[names.get(ident, str(ident))] = lines[::-1]
    return stacks
