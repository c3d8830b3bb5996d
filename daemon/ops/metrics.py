"""The daemon's Prometheus metrics: their names, labels and buckets, and the one registry.

Each `Metrics` owns a private `CollectorRegistry` (not the process-wide default, so that
tests can make many and no library's metrics leak in). The worker reports what only it
sees as it happens (a file's duration and row counts, how a file was found); the rest is
read at scrape time from the worker's report (`WorkerState`): the files by outcome (the tally
`daemon_stopped` reports, so the two cannot disagree), the queue, health, readiness, the
files in failed/ waiting for a retry and those superseded (`daemon.ops.failed_figures`,
which asks the warehouse only when failed/ or the loads changed), and the daemons on the
warehouse by state (`etl_daemons`, as
the heartbeat last read them: a lost one is what `EtlDaemonLost` alerts on). The per-file
series (files, rows, durations) carry the file's `feed` (`""` for a name that matches no
feed). Every labelled series of each declared feed exists from the start at 0, so that
`rate()` and alerts see the first file. It serves nothing and knows no threads; see
`daemon.ops.server`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from filedrop_etl.config import Settings
from filedrop_etl.daemon import package_version
from filedrop_etl.daemon.ops.failed_figures import FailedFigures
from filedrop_etl.daemon.outcomes import OUTCOMES, Ending
from filedrop_etl.daemon.warehouse import api

CHANGES = ("inserted", "updated", "unchanged", "deleted")
FOUND_BY = ("event", "sweep", "rescan")
FLEET_STATES = ("alive", "lost", "stopped")
# From a 25-row file (about 10 ms) to a 5M-row one (tens of seconds) and a stuck disk.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0, 300.0, 600.0)


class WorkerState(Protocol):
    """What the metrics, the probes and the status page read of the running worker (its
    `WorkerReport`, `daemon.watch.report`), at scrape or request time."""

    swept: threading.Event

    def tally(self) -> Mapping[str, int]: ...

    def tally_by_feed(self) -> Mapping[str, Mapping[str, int]]: ...

    def queue_depth(self) -> int: ...

    def health(self) -> list[str]: ...


class _Tally(Collector):
    """`etl_files_total{feed,outcome}`, read from the worker's own tally at each scrape:
    every declared feed's series, and those of any other feed a file was counted for
    (`""`, a name of none)."""

    def __init__(self, worker: WorkerState, feeds: tuple[str, ...]) -> None:
        self.worker, self.feeds = worker, feeds

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("etl_files", "Files by feed and how their last "
                                     "attempt ended", labels=["feed", "outcome"])
        tally = self.worker.tally_by_feed()
        for feed in dict.fromkeys([*self.feeds, *tally]):
            counts = tally.get(feed, {})
            for outcome in OUTCOMES:
                family.add_metric([feed, outcome], counts.get(outcome, 0))
        yield family


Fleet = Callable[[], Mapping[str, int]]


def alone() -> Mapping[str, int]:
    """The fleet of a daemon with the warehouse to itself: itself, alive."""
    return {"alive": 1}


class _Fleet(Collector):
    """`etl_daemons{state}`: the daemons recorded on the warehouse by state, as `fleet`
    gives them (this daemon's heartbeat's last reading: every daemon sharing the
    warehouse says the same), each state's series there from the start."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "etl_daemons", "Daemons on the warehouse by state: alive, lost (the lease ran "
            "out without a clean stop) or stopped", labels=["state"])
        fleet = self.fleet()
        for state in FLEET_STATES:
            family.add_metric([state], fleet.get(state, 0))
        yield family


class _Failed(Collector):
    """`etl_failed_files` and `etl_superseded_files`, from one reading of failed/: a
    superseded file (a later drop of its run date loaded since) waits for no one, so the
    alert on the first does not fire for it while `status` exits 0."""

    def __init__(self, figures: FailedFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        waiting, stale = self.figures.counts()
        yield GaugeMetricFamily("etl_failed_files", "Files in failed/ waiting for a retry "
                                "(superseded ones not counted)", value=waiting)
        yield GaugeMetricFamily("etl_superseded_files", "Files in failed/ superseded: their "
                                "run date loaded since from a later drop (no retry needed; "
                                "`dismiss` clears them)", value=stale)


def last_success(finished_at: str | None) -> float:
    """Unix time of a ledger `finished_at` (ISO-8601 UTC), 0 for none."""
    return datetime.fromisoformat(finished_at).timestamp() if finished_at else 0.0


class Metrics:
    """One daemon's metrics; the worker calls `file_done` and `detected`."""

    def __init__(self, settings: Settings, worker: WorkerState,
                 last_finished_at: str | None = None, *, fleet: Fleet = alone) -> None:
        # No `_created` series beside every counter and histogram: in the text format
        # Prometheus ignores them, and they would double what a scrape carries. (The
        # switch is process-wide; no other metrics live in this process.)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.registry = CollectorRegistry()
        registry = self.registry
        feeds = settings.feeds.names
        self.registry.register(_Tally(worker, feeds))
        self.registry.register(_Fleet(fleet))
        self.failed = FailedFigures(settings, lambda: worker.tally().get("processed", 0))
        self.registry.register(_Failed(self.failed))
        self.rows = Counter("etl_rows", "Fact rows by feed and what loading files did to "
                            "them", ["feed", "change"], registry=registry)
        self.duration = Histogram("etl_file_duration_seconds",
                                  "Seconds from a claimed file's open to its move",
                                  ["feed", "outcome"], buckets=DURATION_BUCKETS,
                                  registry=registry)
        self.found = Counter("etl_files_detected", "Files detected in the inbox, by what "
                             "found them", ["found_by"], registry=registry)
        for feed in feeds:
            for change in CHANGES:
                self.rows.labels(feed, change)
            for outcome in OUTCOMES:
                # A claim that failed or was another daemon's never reaches the pipeline.
                if outcome not in ("claim_failed", "claimed_elsewhere"):
                    self.duration.labels(feed, outcome)
        for found_by in FOUND_BY:
            self.found.labels(found_by)
        # Seeded from the ledger, so that a restart does not look like a day without one.
        self.last_success = Gauge("etl_last_success_timestamp_seconds",
                                  "Unix time the last file was processed", registry=registry)
        self.last_success.set(last_success(last_finished_at))
        Info("etl_daemon", "The running daemon", registry=registry).info({
            "version": package_version(), "write_mode": settings.write_mode,
            "observer": settings.observer})
        Gauge("etl_queue_depth", "Files detected and waiting, and claims waiting for a "
              "retry", registry=registry).set_function(worker.queue_depth)
        Gauge("etl_healthy", "1 while the worker and the observer are alive and the worker "
              "ticks (see /healthz)", registry=registry).set_function(
                  lambda: not worker.health())
        Gauge("etl_ready", "1 once the start-up sweep is done", registry=registry
              ).set_function(worker.swept.is_set)

    def detected(self, found_by: str) -> None:
        self.found.labels(found_by).inc()

    def file_done(self, outcome: Ending, seconds: float, counts: api.MergeCounts | None,
                  feed: str) -> None:
        """One attempt at a claimed file of `feed` ended (its tally is the report's,
        `WorkerState`)."""
        self.duration.labels(feed, outcome).observe(seconds)
        if outcome == "processed":
            self.last_success.set(time.time())
        # Counts come with every committed load, even one whose file then vanished
        # before its archive: its rows changed all the same.
        if counts is not None:
            for change in CHANGES:
                self.rows.labels(feed, change).inc(getattr(counts, change))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        """Close the read session the failed files' count may have opened."""
        self.failed.close()
