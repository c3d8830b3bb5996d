"""The running daemon's count of its failed files: those waiting for a retry, and those
superseded, for the metrics (`etl_failed_files`, `etl_superseded_files`).

A file in failed/ whose run date has loaded since from a later drop is superseded
(`daemon.ops.superseded`, as `status` and the status page decide it): it waits for no
one, so it is not counted as waiting, and the `EtlFailedFilesWaiting` alert does not
fire for it while `status` exits 0. Listing failed/ is cheap and done at each reading,
as before; which files are superseded is the warehouse's answer, asked again only when
failed/ holds other files than at the last answer, when the worker has processed a file
since (its load may supersede one), or once `rescan_seconds` have passed (another
daemon's load, on a shared warehouse) — never with failed/ empty. Until the warehouse
first answers (or while it cannot), no file counts as superseded: the alert errs on the
side of firing. The read session (`warehouse.kept_reading`) is opened at the first
question and closed by `close`. Safe from any thread: one question at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from filedrop_etl.config import Settings
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.errors import DatabaseUnavailable, SchemaMismatch
from filedrop_etl.daemon.ops import folders, superseded
from filedrop_etl.daemon.warehouse.api import KeptHistory, WarehouseFault


class FailedFigures:
    """How many failed files wait for a retry and how many are superseded (`counts`)."""

    def __init__(self, settings: Settings, processed: Callable[[], int]) -> None:
        """`processed`: how many files the worker has processed so far."""
        self.settings, self._processed = settings, processed
        self._lock = threading.Lock()
        self._history: KeptHistory | None = None
        # What the last answer was asked for: failed/'s names, the processed count and
        # when (monotonic); and the names it found superseded.
        self._asked: tuple[frozenset[str], int] | None = None
        self._asked_at = 0.0
        self._superseded: frozenset[str] = frozenset()

    def counts(self) -> tuple[int, int]:
        """(waiting for a retry, superseded), as failed/ holds them now."""
        names = folders.failed_names(self.settings.failed)
        with self._lock:
            if names:
                key = (names, self._processed())
                due = time.monotonic() - self._asked_at >= self.settings.rescan_seconds
                if key != self._asked or due:
                    self._ask(key)
            stale = len(names & self._superseded)
        return len(names) - stale, stale

    def _ask(self, key: tuple[frozenset[str], int]) -> None:
        """Ask the warehouse which failed files are superseded (under the lock)."""
        self._asked, self._asked_at = key, time.monotonic()
        failed = folders.failed_files(self.settings.failed)
        try:
            if self._history is None:
                self._history = warehouse.kept_reading(self.settings)
            with self._history.reading() as history:
                found: Mapping[str, object] = superseded.superseded(
                    history, self.settings.feeds, failed)
        except (WarehouseFault, DatabaseUnavailable, SchemaMismatch):
            return  # busy or out of reach: the last answer stands until the next one
        # By the names the listing gives (undecodable bytes and all), not as shown.
        self._superseded = frozenset(f.path.name for f in failed if f.name in found)

    def close(self) -> None:
        with self._lock:
            if self._history is not None:
                self._history.close()
                self._history = None
