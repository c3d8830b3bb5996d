"""The worker as the probes, the metrics and the status line see it: healthy or not, why.

`WorkerReport` is the part of the `Watcher` that other threads read: what is wrong that
a restart would cure (`stuck`, for the systemd watchdog), what is wrong at all
(`health`, for /healthz), the outcomes so far and the queue. Every method is safe from
any thread: single reads of values the worker replaces whole, never an iteration the
worker could change under it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from filedrop_etl.config import Settings
from filedrop_etl.daemon import files
from filedrop_etl.daemon.ops.metrics import OUTCOMES
from filedrop_etl.daemon.warehouse.api import Warehouse
from filedrop_etl.daemon.watch.inbox import Inbox
from filedrop_etl.daemon.watch.observer import LOST, InboxObserver
from filedrop_etl.daemon.watch.sharing import Heartbeat


class WorkerReport:
    """What the worker is doing and what is wrong; mixed into `Watcher`, whose state it
    reads."""

    settings: Settings
    once: bool
    current: Path | None
    ticked_at: float
    crashed: bool
    warehouse: Warehouse
    outcomes: Counter[str]
    inbox: Inbox
    _retries: dict[Path, tuple[float, int]]
    _thread: threading.Thread
    _observer: InboxObserver
    heartbeat: Heartbeat

    def status(self) -> dict[str, object]:
        """What the worker is doing, for a `daemon_status` line; safe from any thread."""
        current = self.current
        return {"file": files.display_name(current.name) if current else None,
                "queue_depth": self.queue_depth(), "outcomes": dict(self.tally()),
                "problems": self.health()}

    def stuck(self) -> list[str]:
        """What is wrong that a restart would cure: the worker or the observer thread
        dead, or a worker silent for `stall_seconds`; what the systemd watchdog acts on.

        Safe from any thread. The worker ticks on every turn of its loop (at least every
        HEARTBEAT_SECONDS when idle), around every file and after each staged batch of
        one, so a silence longer than `stall_seconds` means it is stuck (or one SQL
        statement, a merge, took that long).
        """
        problems = []
        silent = time.monotonic() - self.ticked_at
        if not self._thread.is_alive():
            problems.append("the worker thread is not running"
                            + (" (it crashed)" if self.crashed else ""))
        elif silent > self.settings.stall_seconds:
            problems.append(f"the worker has not ticked for {silent:.0f} s "
                            f"(stall_seconds {self.settings.stall_seconds:g})")
        if not self.once and not self._observer.is_alive():
            problems.append("the inbox observer is not running")
        return problems

    def health(self) -> list[str]:
        """What is wrong now, for /healthz; empty while all is well. `stuck`, and what a
        restart would not bring back, so the systemd watchdog ignores it: an inbox that
        is not watched (the daemon watches it again by itself once it can), a shared
        warehouse the heartbeat cannot reach (it beats on until it can), a node name
        another daemon took."""
        problems = self.stuck()
        if self.settings.shared:
            problems += self.heartbeat.problems()
        if not self.once and self._observer.is_alive():
            lost = self._observer.watch_lost()
            if lost is not None:
                problems.append(f"the inbox {self.settings.inbox} is not watched: {LOST[lost]}")
        file = self.warehouse.file_identity
        moved = file.file_problem if file is not None else None
        if moved is not None:
            problems.append(f"the database {self.settings.where} is not the file the daemon "
                            f"opened ({moved}): no file is loaded until it is "
                            "back or the daemon is restarted")
        return problems

    def tally(self) -> Mapping[str, int]:
        """Files by outcome so far, as `daemon_stopped` reports them; safe from any thread
        (single dict look-ups, never an iteration the worker could change under it)."""
        tally = {outcome: self.outcomes[outcome] for outcome in OUTCOMES}
        # Detected, then gone before the claim: deleted, or another daemon's now.
        tally["vanished"] += self.inbox.vanished
        tally["claimed_elsewhere"] += self.inbox.claimed_elsewhere
        return tally

    def queue_depth(self) -> int:
        """Files detected and not yet claimed, and claims waiting for a (re)try."""
        return len(self.inbox.candidates) + len(self._retries)
