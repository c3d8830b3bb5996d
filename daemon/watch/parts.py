"""What the worker works with: its parts, built by the service, and where it reports.

`Parts` is everything the watcher uses, made by `daemon.app.worker` (not by the watcher,
so that `daemon.watch` needs nothing from `daemon.ops`); `OutcomeSink` is what the
worker reports as it happens (the metrics implement it). It holds declarations only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.lock import DirectoryLocks
from filedrop_etl.daemon.outcomes import Ending
from filedrop_etl.daemon.warehouse.api import MergeCounts, Warehouse
from filedrop_etl.daemon.watch.inbox import FoundBy, Inbox
from filedrop_etl.daemon.watch.observer import Hints, InboxObserver
from filedrop_etl.daemon.watch.report import WorkerReport
from filedrop_etl.daemon.watch.resumes import Resumes
from filedrop_etl.daemon.watch.sharing import Heartbeat


class OutcomeSink(Protocol):
    """Where the worker reports what only it sees, as it happens (the metrics)."""

    def detected(self, found_by: FoundBy) -> None: ...

    def file_done(self, outcome: Ending, seconds: float, counts: MergeCounts | None,
                  feed: str) -> None:
        """One attempt at a claimed file of `feed` ("" for a name of none) ended."""
        ...


@dataclass(frozen=True)
class Parts:
    """Everything the worker works with, built by the service (`daemon.app.worker`)."""

    # Its `watch` says, every turn of the loop, why it may not be written now (SQLite:
    # its path no longer holds the file the worker writes to): no file is taken then.
    warehouse: Warehouse
    pipeline: Pipeline
    inbox: Inbox
    hints: Hints
    observer: InboxObserver
    # The inbox and the work directory, claimed by `prepare` unless the service has.
    locks: DirectoryLocks
    heartbeat: Heartbeat
    # The journal of how often the daemon stopped while loading each left-over claim.
    resumes: Resumes
    report: WorkerReport
    sink: OutcomeSink
