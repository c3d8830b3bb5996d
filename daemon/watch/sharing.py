"""Working beside other daemons on one warehouse: the heartbeat and the take-over.

A daemon sharing a PostgreSQL warehouse renews its claims' leases from a thread of its
own (`Heartbeat`, every third of `lease_seconds`), so that a long merge on the worker's
connection never lets them run out. The worker, at each periodic rescan, takes over the
files of daemons whose leases did run out (`take_over`): the warehouse moves them into
this daemon's work directory and bumps their fences, and they join the retry queue ahead
of new drops. With an embedded warehouse both are no-ops: there is no one to share with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from config import Settings
from daemon import files
from daemon.warehouse.api import Claims, TakenOver, WarehouseFault

log = structlog.get_logger("daemon.watcher")


class Heartbeat:
    """Renews this daemon's leases and heartbeat until stopped; logs when it can not
    (once per streak of failures) and when it can again."""

    def __init__(self, settings: Settings, claims: Claims,
                 in_hand: Callable[[], Path | None]) -> None:
        self.claims, self.in_hand = claims, in_hand
        self.interval = settings.lease_seconds / 3
        self._stop = threading.Event()
        # Set to beat at once: the file in hand changed, which `status` should show now.
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etl-heartbeat", daemon=True)
        self.failing = False

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

    def _run(self) -> None:
        while True:
            current = self.in_hand()
            try:
                self.claims.beat(files.display_name(current.name) if current else None)
            except WarehouseFault as exc:
                if not self.failing:
                    log.error("heartbeat_failed", reason=str(exc),
                              hint="this daemon's claims lapse unless the warehouse answers "
                              "again within lease_seconds; another daemon then takes its "
                              "files over, and this one can no longer commit them")
                self.failing = True
            else:
                if self.failing:
                    log.info("heartbeat_restored")
                self.failing = False
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return


def take_over(claims: Claims) -> list[TakenOver]:
    """The files of daemons whose leases ran out, now in this daemon's work directory;
    none if the warehouse can not be asked now (the next rescan asks again)."""
    try:
        taken = claims.take_over()
    except WarehouseFault as exc:
        log.warning("take_over_failed", reason=str(exc),
                    hint="the next rescan tries again")
        return []
    for file in taken:
        log.info("file_taken_over", file=files.display_name(file.path.name),
                 from_node=file.from_node)
    return taken
