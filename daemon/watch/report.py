"""The worker as other threads see it: one report, read alike by every reader.

`WorkerReport` is what the notifier, the signals, the metrics, the HTTP probes and the
status page read of the worker: what it is doing (`status`), what is wrong that a restart
would cure (`stuck`, for the systemd watchdog), what is wrong at all (`health`, for
/healthz), the outcomes so far (`tally`), the queue and the daemons beside it
(`fleet`, for the metrics). The worker's own facts are one frozen `Snapshot` that only
the worker replaces (whole, so a reader gets one consistent value with a single read);
the health of the parts that run beside the worker (the
observer, the heartbeat, the database file) is read from them live, as those threads
change it without the worker. Every reading method is safe from any thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filedrop_etl.config import Settings
from filedrop_etl.daemon import files
from filedrop_etl.daemon.outcomes import OUTCOMES
from filedrop_etl.daemon.warehouse.api import Warehouse
from filedrop_etl.daemon.watch.observer import UNWATCHED, InboxObserver
from filedrop_etl.daemon.watch.sharing import Heartbeat


@dataclass(frozen=True)
class Snapshot:
    """The worker's facts at its last update; replaced whole, never changed."""

    # When the worker last showed life (monotonic): a turn of its loop, a file begun or
    # ended, a batch of a file staged.
    ticked_at: float
    # The claimed file the worker is on, None between files.
    file: Path | None = None
    # Files by outcome so far (every one of `OUTCOMES`), as `daemon_stopped` reports them.
    tally: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    # The same by feed ("" for files whose names match none), for the metrics: only the
    # feeds that have had a file, each with every one of `OUTCOMES`.
    tally_by_feed: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # Files detected and not yet claimed, and claims waiting for a (re)try.
    queue_depth: int = 0
    # Whether the worker thread runs its loop; `crashed` once it ended by an exception.
    running: bool = False
    crashed: bool = False


class WorkerReport:
    """What the worker is doing and what is wrong; the worker writes `now`, anyone reads."""

    def __init__(self, settings: Settings, observer: InboxObserver, heartbeat: Heartbeat,
                 warehouse: Warehouse, *, once: bool = False) -> None:
        self.settings, self.once = settings, once
        self._observer, self._heartbeat, self._warehouse = observer, heartbeat, warehouse
        # Set once left-over claims are resumed and the inbox swept: from then on, a new
        # file is found by its event (what readiness means).
        self.swept = threading.Event()
        self.now = Snapshot(time.monotonic())

    def update(self, **changes: Any) -> None:
        """Replace the snapshot with one with `changes` (the worker's thread only)."""
        self.now = replace(self.now, **changes)

    def tick(self) -> None:
        """The worker shows life (a batch staged, say): what `stuck` watches."""
        self.update(ticked_at=time.monotonic())

    def in_hand(self) -> Path | None:
        """The claimed file the worker is on, None between files (for the heartbeat)."""
        return self.now.file

    def status(self) -> dict[str, object]:
        """What the worker is doing, for a `daemon_status` line."""
        now = self.now
        return {"file": files.display_name(now.file.name) if now.file else None,
                "queue_depth": now.queue_depth, "outcomes": dict(now.tally),
                "problems": self.health()}

    def stuck(self) -> list[str]:
        """What is wrong that a restart would cure: the worker or the observer thread
        dead, or a worker silent for `stall_seconds`; what the systemd watchdog acts on.

        The worker ticks on every turn of its loop (at least every HEARTBEAT_SECONDS when
        idle), around every file and after each staged batch of one, so a silence longer
        than `stall_seconds` means it is stuck (or one SQL statement, a merge, took that
        long).
        """
        problems = []
        now = self.now
        silent = time.monotonic() - now.ticked_at
        if not now.running:
            problems.append("the worker thread is not running"
                            + (" (it crashed)" if now.crashed else ""))
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
            problems += self._heartbeat.problems()
        if not self.once and self._observer.is_alive():
            why = self._observer.why_unwatched()
            if why is not None:
                problems.append(f"the inbox {self.settings.inbox} is not watched: {UNWATCHED[why]}")
        file = self._warehouse.file_identity
        moved = file.file_problem if file is not None else None
        if moved is not None:
            problems.append(f"the database {self.settings.where} is not the file the daemon "
                            f"opened ({moved}): no file is loaded until it is "
                            "back or the daemon is restarted")
        return problems

    def tally(self) -> Mapping[str, int]:
        """Files by outcome so far (every one of `OUTCOMES`), as `daemon_stopped`, the
        metrics and `daemon_status` report them."""
        return self.now.tally

    def tally_by_feed(self) -> Mapping[str, Mapping[str, int]]:
        """`tally`, by feed: the feeds that have had a file so far ("" for a name of no
        feed), each with every one of `OUTCOMES`."""
        return self.now.tally_by_feed

    def queue_depth(self) -> int:
        """Files detected and not yet claimed, and claims waiting for a (re)try."""
        return self.now.queue_depth

    def fleet(self) -> Mapping[str, int]:
        """The daemons on the warehouse by state (alive, lost, stopped), as the heartbeat
        last read them; this daemon alone, alive, on a warehouse it does not share (or
        before the first beat)."""
        known = self._heartbeat.fleet if self.settings.shared else None
        return known if known else {"alive": 1}
