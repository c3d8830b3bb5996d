"""Working beside other daemons on one warehouse: the heartbeat, and strays adopted.

A daemon sharing a PostgreSQL warehouse renews its claims' leases from a thread of its
own (`Heartbeat`, every third of `lease_seconds`), so that a long merge on the worker's
connection never lets them run out; each beat also reads how many daemons are alive,
lost and stopped, for the metrics. The heartbeat never dies of an error: it logs it
(once per streak), keeps beating, and says what is wrong for /healthz; when the
warehouse answers again it says so to the worker, whose waiting files are then due at
once. Another daemon starting under this node's name ends the beats for good: this
daemon must claim nothing more. At start, files a daemon of another kind (SQLite) left
claimed in the inbox's work root are adopted (`adopt_strays`). Taking over the files of
daemons whose leases ran out is `daemon.watch.takeover`'s. With an embedded warehouse
there is no one to share with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.daemon import files, routing
from filedrop_etl.daemon.warehouse.api import Claims, NodeTaken, WarehouseFault

log = structlog.get_logger("daemon.watcher")

_FAILED_HINT = ("this daemon's claims lapse unless the warehouse answers again within "
                "lease_seconds; another daemon then takes its files over, and this one can "
                "no longer commit them")


class Heartbeat:
    """Renews this daemon's leases and heartbeat until stopped; logs when it can not
    (once per streak of failures) and when it can again (then calls `restored`)."""

    def __init__(self, settings: Settings, claims: Claims,
                 in_hand: Callable[[], Path | None],
                 restored: Callable[[], None] = lambda: None) -> None:
        self.claims, self.in_hand, self.restored = claims, in_hand, restored
        self.interval = settings.lease_seconds / 3
        self._stop = threading.Event()
        # Set to beat at once: the file in hand changed, which `status` should show now.
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etl-heartbeat", daemon=True)
        # Why the last beat failed (None while beating); read by other threads.
        self.failing: str | None = None
        # Set once another daemon took this node's name: no more claims, no more beats.
        self.node_taken: str | None = None
        # The daemons on the warehouse by state, as the last beat read them (None before
        # one could): for the metrics, read by other threads.
        self.fleet: dict[str, int] | None = None

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        """Beat now rather than at the next interval (from the worker; never waits)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def problems(self) -> list[str]:
        """What /healthz says of the heartbeat; safe from any thread."""
        if self.node_taken is not None:
            return [self.node_taken]
        problems = []
        if self._thread.ident is not None and not self._thread.is_alive() \
                and not self._stop.is_set():
            problems.append("the heartbeat thread is not running")
        failing = self.failing
        if failing is not None:
            problems.append(f"the heartbeat cannot renew this daemon's leases: {failing}")
        return problems

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._beat():
                return
            self._wake.wait(self.interval)
            self._wake.clear()

    def _beat(self) -> bool:
        """One beat; False once beating must end (the node is another daemon's)."""
        current = self.in_hand()
        try:
            self.claims.beat(files.display_name(current.name) if current else None)
            self.fleet = self.claims.fleet()
        except NodeTaken as exc:
            self.node_taken = exc.message
            log.error("node_taken", reason=exc.message, hint=exc.hint)
            return False
        except Exception as exc:  # a beat's error is logged, never its end
            self._failed(exc)
            return True
        if self.failing is not None:
            # Said after it is so: a reader of the log then finds /healthz agreeing.
            self.failing = None
            log.info("heartbeat_restored")
            self.restored()
        return True

    def _failed(self, exc: Exception) -> None:
        fault = isinstance(exc, WarehouseFault)
        reason = exc.message if isinstance(exc, WarehouseFault) else f"{type(exc).__name__}: {exc}"
        first, self.failing = self.failing is None, reason
        if first:
            # Anything but the warehouse's own faults is unexpected (a table changed by
            # hand, a bug): its traceback is logged once, and the beats go on. Logged
            # after `failing` is set, so that /healthz already says so.
            log.error("heartbeat_failed", reason=reason, error_type=type(exc).__name__,
                      hint=_FAILED_HINT if fault else _FAILED_HINT + "; this is not a "
                      "fault of the server's reach: report this line",
                      exc_info=not fault)


def adopt_strays(settings: Settings) -> list[Path]:
    """Files left claimed in the inbox's work root itself, where a daemon with a warehouse
    of its own (SQLite) claims into by default (`.<inbox>.work`), moved into this daemon's
    work directory to be resumed with its own. None of those daemons runs now: it would
    hold the inbox alone, and this daemon shares it (`daemon.lock`)."""
    root = settings.work_root
    if root == settings.work:
        return []  # this daemon's own work directory: its files are resumed as they are
    adopted = []
    try:
        strays = files.in_claim_order(root)
    except OSError:
        return []
    for stray in strays:
        try:
            moved = files.move_unique(stray, settings.work)
        except FileNotFoundError:
            continue  # another daemon adopted it first
        except OSError as exc:
            log.error("work_unavailable", work=str(root), reason=exc.strerror or str(exc),
                      hint="make the work root writable; the file is adopted at the next "
                      "start")
            continue
        log.info("file_adopted", file=files.display_name(moved.name),
                 feed=routing.feed_name(moved.name, settings.feeds), work=str(root),
                 hint="claimed by a daemon of another warehouse (SQLite) on this inbox "
                 "before it stopped; loaded into this one")
        adopted.append(moved)
    return adopted
