"""The worker, composed: every part the watcher works with, and the metrics it reports to.

`build` is where the daemon's worker is put together, once per run (`daemon.app.service`),
and the tests build theirs the same way: the pipeline, the inbox and its observer, the
directory locks, the heartbeat, the resume journal, the `WorkerReport` every other
thread reads, and the `Metrics`, which the worker knows only as its `OutcomeSink`. The
watcher builds none of these itself, so that `daemon.watch` needs nothing from
`daemon.ops`. It starts nothing: `Watcher.start` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from filedrop_etl.config import Settings
from filedrop_etl.daemon import clock
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.lock import DirectoryLocks
from filedrop_etl.daemon.ops.metrics import Metrics
from filedrop_etl.daemon.warehouse.api import Warehouse
from filedrop_etl.daemon.watch.inbox import Inbox
from filedrop_etl.daemon.watch.observer import Hints, InboxObserver
from filedrop_etl.daemon.watch.parts import Parts
from filedrop_etl.daemon.watch.report import WorkerReport
from filedrop_etl.daemon.watch.resumes import Resumes
from filedrop_etl.daemon.watch.sharing import Heartbeat
from filedrop_etl.daemon.watch.watcher import Watcher, directory_locks


@dataclass(frozen=True)
class Worker:
    """A composed worker: the watcher to start, what it reports, and its metrics."""

    watcher: Watcher
    report: WorkerReport
    metrics: Metrics


def build(settings: Settings, warehouse: Warehouse, *, once: bool = False,
          locks: DirectoryLocks | None = None) -> Worker:
    """The worker on `warehouse`, its parts made but not started; `locks` already held
    by the caller, or made here (`Watcher.prepare` then takes them)."""
    hints = Hints()
    observer = InboxObserver(settings, hints)
    # The file in hand is the report's, made just below: the heartbeat reads it only once
    # it beats. Its word that the warehouse answers again wakes the worker.
    heartbeat = Heartbeat(settings, warehouse.claims, lambda: report.in_hand(),
                          restored=hints.warehouse_back)
    report = WorkerReport(settings, observer, heartbeat, warehouse, once=once)
    pipeline = Pipeline(settings, warehouse, progress=report.tick)
    inbox = Inbox(settings.inbox, settings.settle_seconds, whereabouts=pipeline.whereabouts,
                  feeds=settings.feeds)
    # Always collected, served or not: a few counter updates per file (measured in the
    # report of `make bench-quick`), and one code path with and without --http. Seeded
    # from the ledger, so that a restart does not look like a day without a success.
    last = warehouse.last_success(clock.utc_now())
    metrics = Metrics(settings, report, last.finished_at if last else None, fleet=report.fleet)
    parts = Parts(warehouse=warehouse, pipeline=pipeline, inbox=inbox, hints=hints,
                  observer=observer, locks=locks or directory_locks(settings),
                  heartbeat=heartbeat, resumes=Resumes(settings.work, settings.max_resumes),
                  report=report, sink=metrics)
    return Worker(Watcher(settings, parts, once=once), report, metrics)
