"""Failed files a later drop has made stale: superseded, as `status`, the page, `retry`
and `dismiss` see them.

A file in failed/ is superseded when its feed's run date has loaded since from a later
drop: the load that stands for that date came from a drop later than the failed attempt
(`History.superseding` says what "later" is on each backend). It needs no one's
attention any more: `status` does not exit 1 for it, a retry would put its older bytes
over the good load (`retry` asks for `--force`), and `dismiss` clears it with a record.
Its feed and run date are its sidecar's; for a file that failed on its name, those its
name promises, or the name it most likely meant promises (`routing.likely_name`: a
producer that re-sent `Transactions_D.parquet` as `transactions_D.parquet`). A file
without a sidecar's time of failure is never superseded: nothing says which came first.
It only reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon import clock, routing
from filedrop_etl.daemon.errors import FileNameError
from filedrop_etl.daemon.ops.commands.table import when
from filedrop_etl.daemon.ops.folders import FailedFile
from filedrop_etl.daemon.warehouse import api


class Asks(Protocol):
    """What is asked of the warehouse: a `History`, or the `RetryLog` of a command
    that writes."""

    def superseding(self, feed: str, run_date: str, after: str) -> api.Load | None: ...


def day_of(failed: FailedFile, feeds: Feeds) -> tuple[str, str] | None:
    """The feed and run date (ISO) `failed` was for, or None where neither its sidecar
    nor its name (nor the name it most likely meant) says."""
    data = failed.sidecar or {}
    feed, run_date = data.get("feed"), data.get("run_date")
    if isinstance(feed, str) and feed and isinstance(run_date, str) and run_date:
        return feed, run_date
    for name in (failed.original, routing.likely_name(failed.original, feeds)):
        contract = None if name is None else feeds.for_file(name)
        if contract is not None and name is not None:
            try:
                return contract.name, routing.run_date_from_name(name, contract)
            except FileNameError:
                continue
    return None


def _failed_at(failed: FailedFile) -> str | None:
    """When the attempt that failed it began, as the ledger writes time (a sidecar
    written by hand may give seconds without microseconds, or another zone)."""
    if failed.attempted_at is None:
        return None
    try:
        moment = datetime.fromisoformat(failed.attempted_at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # no zone: the daemon never writes one so
    return clock.stamp(moment.astimezone(UTC))


def superseded(history: Asks, feeds: Feeds,
               failed: Iterable[FailedFile]) -> dict[str, api.Load]:
    """Of the `failed` files, those superseded, by their names in failed/: each with the
    load that stands for its feed's run date."""
    found = {}
    for f in failed:
        day, at = day_of(f, feeds), _failed_at(f)
        if day is None or at is None:
            continue
        load = history.superseding(*day, at)
        if load is not None:
            found[f.name] = load
    return found


def described(load: api.Load) -> str:
    """The load that superseded a failed file, in words: `load 12 (transactions_D.parquet,
    2026-03-05 10:00:01)`."""
    return f"load {load.id} ({load.file_name}, {when(load.finished_at)})"
