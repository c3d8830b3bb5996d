"""The faults that cross the warehouse seam: the environment's, so a file waits for a retry.

Each backend translates its driver's errors into these at its own boundary
(`sqlite/faults.py`, `postgresql/faults.py`); the per-file boundary retries a file for
any `WarehouseFault` and never quarantines it for one. Anything else a backend raises
is terminal. `translating` is the one way a backend applies its table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from filedrop_etl.config import EtlError
from filedrop_etl.daemon.errors import DatabaseUnavailable


class WarehouseFault(EtlError):
    """The database can not take the work now (busy, full, gone): wait and retry.

    `driver_error` names the driver's own error class when a backend translated one
    (the log's `error_type` keeps naming it, as it did before the seam)."""

    driver_error: str | None = None


class WarehouseBusy(WarehouseFault):
    """Another writer holds a lock, or a lock wait timed out."""


class WarehouseFull(WarehouseFault):
    """No room: the disk, or the memory the database needed."""


class WarehouseUnavailable(WarehouseFault):
    """The database can not be reached or written (a lost connection, a server shutting
    down, a read-only or missing file)."""


class DatabaseMoved(WarehouseFault):
    """The file at the database's path is no longer the one the daemon holds open (deleted,
    or replaced by another, a restored backup say): what is committed now would land in a
    file nobody reads, or beside a file it does not belong to."""


class ClaimLost(WarehouseFault):
    """Another daemon took this file over after this one's lease ran out: this daemon
    must not commit it, and lets go of it."""


class NodeTaken(EtlError):
    """Another daemon started under this daemon's node name (on another inbox, after this
    one was paused past its lease): the node's claims are that daemon's now, so this one
    must claim nothing more."""


@contextmanager
def translating(driver_error: type[Exception],
                fault_of: Callable[[BaseException], WarehouseFault | None], *,
                otherwise: str | None = None) -> Iterator[None]:
    """Run a block, raising a driver error of the environment as its fault (`fault_of`,
    the backend's table). Any other driver error passes through as it is, or, given
    `otherwise` (a hint: for the commands, which name every failure), becomes
    `DatabaseUnavailable` with the driver's first line."""
    try:
        yield
    except driver_error as exc:
        fault = fault_of(exc)
        if fault is not None:
            raise fault from exc
        if otherwise is None:
            raise
        words = str(exc).strip().splitlines()
        raise DatabaseUnavailable(words[0] if words else type(exc).__name__,
                                  hint=otherwise) from exc
