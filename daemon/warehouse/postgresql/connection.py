"""The PostgreSQL connection: the one factory and the one transaction context manager.

Connections run in autocommit, and every write is an explicit transaction
(`transaction`), as the SQLite backend's are. Each session names itself
(`application_name`, seen in `pg_stat_activity`), waits at most the busy timeout for a
lock (`lock_timeout`: a lock held longer is `WarehouseBusy`, retried, rather than a
worker blocked behind a long `ALTER` or a forgotten `psql` session), and lets the server
end it if it is left idle inside a transaction (`idle_in_transaction_session_timeout`).
No `statement_timeout`: a large COPY or merge may rightly take minutes. A connection
failure is raised as the driver's error; `faults` translates it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from config.database import PostgresUrl

Connection = psycopg.Connection[tuple[object, ...]]
APPLICATION = "filedrop-etl"
# A session left inside a transaction this long (a worker killed mid-load without the
# socket closing, say) is ended by the server, releasing its locks.
IDLE_IN_TRANSACTION_MS = 10 * 60 * 1000
# How often the server checks, during a long statement, that the daemon is still there
# (PostgreSQL 14 and later).
CLIENT_CHECK_MS = 5000
CHECK_CLIENT_SINCE = 140000


def connect(url: PostgresUrl, busy_timeout_seconds: float, *,
            read_only: bool = False) -> Connection:
    """The one way this project opens a PostgreSQL session."""
    conn = psycopg.connect(url.url, autocommit=True, application_name=APPLICATION,
                           connect_timeout=max(2, round(busy_timeout_seconds)))
    try:
        # Integers the daemon computed, not input: SET takes no bound parameters.
        conn.execute(stmt(f"SET lock_timeout = {max(1, round(busy_timeout_seconds * 1000))}"))
        conn.execute(stmt(f"SET idle_in_transaction_session_timeout = "
                          f"{IDLE_IN_TRANSACTION_MS}"))
        conn.execute("SET TIME ZONE 'UTC'")
        if conn.info.server_version >= CHECK_CLIENT_SINCE:
            # A daemon killed mid-statement: the server notices the closed socket only
            # when it next writes to it, so a long query would run on, holding its locks.
            conn.execute(stmt(f"SET client_connection_check_interval = {CLIENT_CHECK_MS}"))
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """BEGIN ... COMMIT; ROLLBACK and re-raise on any exception."""
    with conn.transaction():
        yield conn


def stmt(text: str) -> bytes:
    """SQL text for psycopg, whose types admit only literal strings: ours is assembled
    from quoted identifiers of the contract, and every value is bound."""
    return text.encode()


def usable(conn: Connection | None) -> bool:
    """Whether a session can still be used (not closed, not broken by a lost server)."""
    return conn is not None and not conn.closed and not conn.broken


class Session:
    """A session opened on first use, and again after the server lost it (a restart,
    `pg_terminate_backend`): the next call connects anew, or raises the driver's error
    for the caller's `faults.translated` to turn into a fault."""

    def __init__(self, url: PostgresUrl, busy_timeout_seconds: float,
                 conn: Connection | None = None) -> None:
        self.url, self.timeout, self._conn = url, busy_timeout_seconds, conn

    @property
    def conn(self) -> Connection:
        if self._conn is None or not usable(self._conn):
            self._conn = connect(self.url, self.timeout)
        return self._conn

    @property
    def open(self) -> Connection | None:
        """The session if it is usable now, without connecting."""
        return self._conn if usable(self._conn) else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
