"""How long the daemon waits on a silent PostgreSQL server, and how it tells a statement
that takes long from a server that is gone.

libpq waits on a socket for as long as it stays open. TCP's keepalives and user timeout
(`connection.connect` sets them) end a socket whose packets go unanswered: a lost
network, a host gone. They can not end one whose far end's kernel keeps answering while
nothing above it does: a server frozen (stopped, on a hung disk, its VM paused), or a
proxy that accepts and forwards nothing. So a round trip on a `PatientConnection` connection waits
`patience` seconds, then the server is asked on a second connection what the session is
doing. At work on the statement (a merge of millions of rows, a lock wait): the wait goes
on, asked again every `patience` seconds. No answer to the second connection either, or
no such session on the server, or the session idle twice running while the daemon waits
for its answer (the statement or its answer lost on the way): the session is closed and
the wait ends in `Silent`, an `OperationalError`, which `faults` makes
`WarehouseUnavailable`. A second connection refused or turned away is no proof either way:
the wait goes on (and TCP's own timeouts still apply).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import errors
from psycopg.abc import RV, PQGen

# psycopg's own interval between checks for a Ctrl-C while it waits.
_INTERVAL = 0.1
# One round trip: the session's state, and whether it waits on its client (us).
_ASK = b"SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s"
_WORKING = ("active", "fastpath function call")


class Verdict(enum.Enum):
    """What the second connection found the session doing."""

    WORKING = "working"  # running a statement, not waiting on the daemon
    IDLE = "idle"  # between statements (or waiting on the daemon) while it waits on it
    GONE = "gone"  # no such session, or no answer on a second connection either
    UNKNOWN = "unknown"  # the second connection was refused or turned away


class Silent(psycopg.OperationalError):
    """The server did not answer, and a second connection found it gone or idle."""


class PatientConnection(psycopg.Connection[tuple[Any, ...]]):
    """A connection whose every round trip waits on a silent server only as long as the
    server is still at work on it (see the module's docstring).

    `patience` None waits as psycopg does, without end; `ask` None (the second
    connection's own) gives up after one `patience` without an answer."""

    patience: float | None = None
    ask: Callable[[int], Verdict] | None = None

    def wait(self, gen: PQGen[RV], interval: float = _INTERVAL,
             timeout: float | None = None) -> RV:
        if timeout is not None or self.patience is None:
            return super().wait(gen, interval, timeout)
        pid, doubts = self.info.backend_pid, 0
        while True:
            try:
                # A timeout leaves `gen` where it was: psycopg's generators wait again
                # when resumed without a ready socket.
                return super().wait(gen, interval, self.patience)
            except errors._WaitTimeout:
                verdict = self.ask(pid) if self.ask is not None else Verdict.GONE
            if verdict is Verdict.IDLE:
                # Once may be a race with the answer on its way: it had another wait.
                doubts += 1
            elif verdict is not Verdict.GONE:
                doubts = 0
            if verdict is Verdict.GONE or doubts > 1:
                self.close()
                raise Silent(f"the server did not answer for {self.patience:g} s and was "
                             f"found {verdict.value} on a second connection: the session "
                             "was given up (network_timeout_seconds)")


def verdict(probe: Callable[[], PatientConnection], pid: int) -> Verdict:
    """What session `pid` is doing, asked on a connection `probe` opens (and closes)."""
    try:
        with probe() as conn:
            row = conn.execute(_ASK, (pid,)).fetchone()
    except (errors.ConnectionTimeout, Silent):
        return Verdict.GONE
    except psycopg.Error:
        return Verdict.UNKNOWN
    if row is None:
        return Verdict.GONE
    state, waits_on = row
    if state is None:
        return Verdict.UNKNOWN  # another role's session: its state is not shown
    return Verdict.WORKING if state in _WORKING and waits_on != "Client" else Verdict.IDLE
