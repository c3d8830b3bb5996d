"""PostgreSQL's errors, translated at the backend's boundary into the seam's faults.

One table, by SQLSTATE class and condition: a lock that could not be had in time, a
deadlock or a serialisation failure is `WarehouseBusy`; no disk (53100), memory
(53200) or other resources (class 53) is `WarehouseFull`; a server out of reach, shut
down, restarting or terminating the session (class 08, 57P01-57P03, a closed
connection) is `WarehouseUnavailable`. Each keeps the server's words as its message and
the driver's error as its cause; anything else passes through (terminal). A connection
refused for good (a login or a right refused, no such database, no such host) is
terminal where the daemon starts or a command runs; once the daemon runs, every failure
to connect again is `WarehouseUnavailable` (`reconnect_fault`): access may come back.
libpq never puts a password in its messages, and this module adds none.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import psycopg
from psycopg import errors

from filedrop_etl.daemon.warehouse.api import (
    WarehouseBusy,
    WarehouseFault,
    WarehouseFull,
    WarehouseUnavailable,
)
from filedrop_etl.daemon.warehouse.faults import translating

# Most specific first: most of these are `OperationalError`s too.
_FAULTS: tuple[tuple[tuple[type[Exception], ...], type[WarehouseFault]], ...] = (
    ((errors.LockNotAvailable, errors.DeadlockDetected, errors.SerializationFailure,
      errors.QueryCanceled), WarehouseBusy),
    ((errors.InsufficientResources, errors.DiskFull, errors.OutOfMemory,
      errors.TooManyConnections), WarehouseFull),
    ((errors.AdminShutdown, errors.CrashShutdown, errors.CannotConnectNow,
      errors.ReadOnlySqlTransaction, errors.ConnectionException, psycopg.InterfaceError),
     WarehouseUnavailable),
)
HINTS: dict[type[WarehouseFault], str] = {
    WarehouseBusy: "another session holds a lock the load needs (a long query, a "
    "migration, a psql session left in a transaction?); it is retried",
    WarehouseFull: "the server is out of disk, memory or connections; free them",
    WarehouseUnavailable: "the server is out of reach or restarting; check that it runs "
    "and that this host may connect",
}


# A refused connection carries no SQLSTATE in libpq; these words (the server's, in its
# default English, and the resolver's) say it was refused for good, not for now: waiting
# would not help. A host name the resolver says does not exist is taken for a typo in the
# URL (psycopg resolves it itself: "failed to resolve host 'x': [Errno -2] Name or
# service not known"; libpq's own words: "could not translate host name"); a name server
# that does not answer ("Temporary failure in name resolution") is waited for.
_REFUSED_FOR_GOOD = ("does not exist", "authentication failed", "no pg_hba.conf entry",
                     "password authentication", "permission denied for database",
                     "invalid port number", "Name or service not known",
                     "No address associated with hostname",
                     "nodename nor servname provided")
# Once the daemon runs, a refusal is waited out (see the module's docstring).
REFUSED_HINT = ("the server refused this daemon's connection (a revoked right, a changed "
                "password or pg_hba.conf, a renamed database?); the daemon retries until "
                "access is restored")
# A statement cancelled by the operator's statement_timeout_seconds is `WarehouseBusy`.
_STATEMENT_TIMEOUT = "statement timeout"
_STATEMENT_TIMEOUT_HINT = ("a statement ran longer than statement_timeout_seconds; the file "
                           "is retried: raise the setting if loads rightly take that long")


def fault_of(exc: BaseException) -> WarehouseFault | None:
    """The seam's fault for a PostgreSQL error of the environment; None for any other
    (a missing database or a refused login is terminal: the caller names it)."""
    if not isinstance(exc, psycopg.Error):
        return None
    if exc.sqlstate is None and any(w in str(exc) for w in _REFUSED_FOR_GOOD):
        return None
    for kinds, fault in _FAULTS:
        # libpq's own failures (refused, reset, closed) carry no SQLSTATE at all.
        lost = isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None
        if isinstance(exc, kinds) or (lost and fault is WarehouseUnavailable):
            hint = (_STATEMENT_TIMEOUT_HINT if _STATEMENT_TIMEOUT in str(exc)
                    else HINTS[fault])
            made = fault(_words(exc), hint=hint)
            made.driver_error = type(exc).__name__
            return made
    return None


def reconnect_fault(exc: psycopg.Error) -> WarehouseFault:
    """The fault for a failure to connect again once the daemon runs: the table's, or,
    for a connection refused for good, `WarehouseUnavailable` with `REFUSED_HINT`."""
    fault = fault_of(exc)
    if fault is None:
        fault = WarehouseUnavailable(_words(exc), hint=REFUSED_HINT)
        fault.driver_error = type(exc).__name__
    return fault


def _words(exc: psycopg.Error) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def translated(otherwise: str | None = None) -> AbstractContextManager[None]:
    """Run a block with this backend's table applied (see `warehouse.faults.translating`)."""
    return translating(psycopg.Error, fault_of, otherwise=otherwise)
