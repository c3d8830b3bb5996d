"""The status of one installation at a glance: daemon, loads, inbox and failed files.

Owns the snapshot behind the `status` command: whether a daemon holds the lock on the
database and its pid, files processed and failed (and their loads) today (UTC) and in
all, the last success, files waiting in the inbox and in flight in the work directory,
and the failed files with their reasons (those superseded, a later drop of their run date
having loaded since, apart: `daemon.ops.superseded`) and the sidecars left there without
their file.
The status page does not use it: `daemon.ops.page` gathers its own facts (the last day
as `daemon.ops.figures` counts it), reading failed/ through the same `daemon.ops.folders`.
Where several feeds are declared, the loads are also counted per feed (`FeedLoads`);
given one feed, the loads and the failed files are that feed's alone.
It only reads: the lock is probed without waiting (`lock.probe`), the database through a
read-only connection the caller opens, the directories through `daemon.ops.folders`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from filedrop_etl.config import Settings
from filedrop_etl.daemon import clock, lock
from filedrop_etl.daemon.ops import fleet, folders, superseded
from filedrop_etl.daemon.warehouse import api


@dataclass(frozen=True)
class Leftover:
    """A sidecar in failed/ without its file, and the retry that left it (None if none
    recorded it, or without a database)."""

    sidecar: folders.LeftoverSidecar
    retry: api.Retry | None


@dataclass(frozen=True)
class FeedLoads:
    """One feed's files today and in all, and its last success."""

    feed: str
    loads_today: api.Tally
    loads_total: api.Tally
    last_success: api.Load | None


@dataclass(frozen=True)
class Overview:
    """One reading of the status; the database parts are None without a database."""

    daemon: lock.LockState
    db: str  # as it may be shown: a path, or a server's URL without its password
    schema_version: int | None
    today: str  # the UTC date `loads_today` counts
    loads_today: api.Tally | None
    loads_total: api.Tally | None
    last_success: api.Load | None
    # Loads recorded as finished later than now: a clock that ran ahead, since corrected.
    loads_in_the_future: int | None
    # Where the daemon said at its last start it keeps its folders, and which it made.
    recorded: api.Daemon | None
    # Every daemon (node) recorded on the warehouse, latest start first; on a shared
    # warehouse each with its last heartbeat and the file in its hands.
    nodes: list[api.Daemon]
    inbox: Path
    # In the inbox; None when the inbox does not exist: nothing to count, not zero.
    waiting: int | None
    work: Path
    # Claimed, in the work directory: loading now, or to resume; None without one.
    in_flight: int | None
    failed_dir: Path
    failed: list[folders.FailedFile]
    leftovers: list[Leftover]
    # Each feed's loads, where several feeds are counted together; else empty.
    feeds: list[FeedLoads] = field(default_factory=list)
    # Of `failed`, those superseded, by name in failed/: each with the load that stands
    # for its run date (none without a database).
    superseded: dict[str, api.Load] = field(default_factory=dict)
    # Whether failed/ exists: an empty `failed` of a folder not there is no "0 failed".
    failed_exists: bool = True

    @property
    def to_retry(self) -> list[folders.FailedFile]:
        """The failed files that wait for a person: all but the superseded."""
        return [f for f in self.failed if f.name not in self.superseded]

    @property
    def healthy(self) -> bool:
        """No failed file waits for a retry (a superseded one needs none)."""
        return not self.to_retry


def gather(settings: Settings, history: api.History | None, now: datetime, *,
           feed: str | None = None, per_feed: bool = False) -> Overview:
    """The status at `now` (UTC); `history` is a read-only connection, or None if there is no
    database. Given `feed`, the loads and failed files of that feed only; `per_feed`, each
    feed's loads besides."""
    daemon = lock.probe(settings.lock_file)
    version = loads_today = loads_total = last = future = recorded = None
    nodes: list[api.Daemon] = []
    feeds: list[FeedLoads] = []
    today = now.date()
    if history is not None:
        stamp = clock.stamp(now)
        version = history.schema_version()
        # Up to now: a load recorded later (a clock that ran ahead, since set back) did
        # not happen today, whatever its date says; `loads_in_the_future` counts it.
        loads_today = history.tally(since=today.isoformat(), until=stamp, feed=feed)
        loads_total = history.tally(feed=feed)
        last = history.last_success(stamp, feed=feed)
        future = history.loads_in_the_future(stamp)
        nodes = history.daemons()
        recorded = fleet.spoken_for(nodes, settings.node)
        if per_feed:
            feeds = [FeedLoads(name, history.tally(since=today.isoformat(), until=stamp,
                                                   feed=name),
                               history.tally(feed=name), history.last_success(stamp, feed=name))
                     for name in settings.feeds.names]
    leftovers = [Leftover(x, None if history is None else
                          history.retry_of_sidecar(x.name, x.content))
                 for x in folders.leftover_sidecars(settings.failed)]
    failed = [f for f in folders.failed_files(settings.failed)
              if feed is None or settings.feeds.name_of(f.original) == feed]
    stale = ({} if history is None else
             superseded.superseded(history, settings.feeds, failed))
    # A shared warehouse's claims may sit under the work root, beside the node's own.
    claims = settings.work.is_dir() or (settings.shared and settings.work_root.is_dir())
    return Overview(daemon, settings.where, version, today.isoformat(), loads_today, loads_total,
                    last, future, recorded, nodes, settings.inbox,
                    folders.waiting(settings.inbox, settings.feeds)
                    if settings.inbox.is_dir() else None,
                    settings.work, folders.in_flight(settings) if claims else None,
                    settings.failed, failed, leftovers, feeds, superseded=stale,
                    failed_exists=settings.failed.is_dir())

