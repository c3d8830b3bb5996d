"""The PostgreSQL connection: the one factory, the one transaction context manager, and
the session that outlives a lost connection.

Each connection knows where the daemon's own tables are (`Connection.books`: the
bookkeeping schema, resolved once as it connects, from the setting or beside the fact
tables' schema), so every statement names them schema-qualified from there.

Connections run in autocommit, and every write is an explicit transaction
(`transaction`), as the SQLite backend's are. Each session names itself
(`application_name`, seen in `pg_stat_activity`), waits at most the busy timeout for a
lock (`lock_timeout`: a lock held longer is `WarehouseBusy`, retried, rather than a
worker blocked behind a long `ALTER` or a forgotten `psql` session), lets the server end
it if it is left idle inside a transaction (`idle_in_transaction_session_timeout`), and
runs a statement at most `statement_timeout_seconds` when the operator sets one (none by
default: a large COPY or merge may rightly take minutes). Every connection keeps TCP
keepalives and a user timeout, and waits on a silent server as `liveness` says, both
from `network_timeout_seconds`: a lost network or a frozen server ends the wait within
about that long. `connect` raises a failure as the driver's error (at start, and for
the commands, a refused login is final); a `Session`, once it has connected, raises any
failure to connect again as a fault to wait out, refusals included: the daemon runs, so
what changed is the environment's, and it may change back.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from filedrop_etl.daemon.warehouse.postgresql import books, liveness
from filedrop_etl.daemon.warehouse.postgresql.faults import reconnect_fault
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl

APPLICATION = "filedrop-etl"
# The second connection `liveness` opens to ask after a silent session.
ASKING = "filedrop-etl (liveness check)"
# A session left inside a transaction this long (a worker killed mid-load without the
# socket closing, say) is ended by the server, releasing its locks.
IDLE_IN_TRANSACTION_MS = 10 * 60 * 1000
# How often the server checks, during a long statement, that the daemon is still there
# (PostgreSQL 14 and later).
CLIENT_CHECK_MS = 5000
CHECK_CLIENT_SINCE = 140000
# Keepalive probes sent, after a third of the network timeout without traffic, before
# the kernel gives the connection up.
KEEPALIVE_PROBES = 3


class Connection(liveness.PatientConnection):
    """A session of the daemon's: it knows where the daemon's own tables are (`books`,
    resolved as it connects), as it knows its search_path."""

    books: books.Books


def conninfo(url: PostgresUrl, connect_seconds: float) -> str:
    """`url` with libpq's TCP parameters for its network timeout: an idle connection
    whose server is gone is ended by the kernel within about that long (keepalives), as
    is one whose sent data goes unacknowledged (`tcp_user_timeout`); the connect waits at
    most `connect_seconds`. Each the URL sets itself is the URL's (libpq counts in whole
    seconds, and at least 2 for the connect)."""
    network = url.network_timeout_seconds
    idle = max(1, round(network / 3))
    ours = {"keepalives": 1, "keepalives_idle": idle,
            "keepalives_interval": max(1, round((network - idle) / KEEPALIVE_PROBES)),
            "keepalives_count": KEEPALIVE_PROBES, "tcp_user_timeout": round(network * 1000),
            "connect_timeout": max(2, round(connect_seconds))}
    given = conninfo_to_dict(url.url)
    return make_conninfo(url.url, **{k: v for k, v in ours.items() if k not in given})


def connect(url: PostgresUrl, busy_timeout_seconds: float, *,
            read_only: bool = False) -> Connection:
    """The one way this project opens a PostgreSQL session."""
    conn = Connection.connect(
        conninfo(url, min(busy_timeout_seconds, url.network_timeout_seconds)),
        autocommit=True, application_name=APPLICATION)
    conn.patience = url.network_timeout_seconds / 2
    conn.ask = partial(liveness.verdict, partial(_asking, url))
    try:
        # Integers the daemon computed, not input: SET takes no bound parameters.
        conn.execute(stmt(f"SET lock_timeout = {max(1, round(busy_timeout_seconds * 1000))}"))
        conn.execute(stmt(f"SET idle_in_transaction_session_timeout = "
                          f"{IDLE_IN_TRANSACTION_MS}"))
        if url.statement_timeout_seconds is not None:
            conn.execute(stmt("SET statement_timeout = "
                              f"{max(1, round(url.statement_timeout_seconds * 1000))}"))
        conn.execute("SET TIME ZONE 'UTC'")
        if conn.info.server_version >= CHECK_CLIENT_SINCE:
            # A daemon killed mid-statement: the server notices the closed socket only
            # when it next writes to it, so a long query would run on, holding its locks.
            conn.execute(stmt(f"SET client_connection_check_interval = {CLIENT_CHECK_MS}"))
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
        row = conn.execute("SELECT current_schema()").fetchone()
        conn.books = books.resolve(url.bookkeeping_schema,
                                   None if row is None or row[0] is None else str(row[0]))
    except BaseException:
        conn.close()
        raise
    return conn


def _asking(url: PostgresUrl) -> liveness.PatientConnection:
    """The second connection that asks after a silent session: it waits half the
    network timeout to connect and as long for its answer, and asks no one in turn."""
    patience = url.network_timeout_seconds / 2
    conn = liveness.PatientConnection.connect(conninfo(url, patience), autocommit=True,
                                    application_name=ASKING)
    conn.patience = patience
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


def _spoke_unasked(conn: Connection) -> bool:
    """Whether the server sent something, or the socket closed, while the session sat
    between statements: the server ending it (a restart, `pg_terminate_backend`), or the
    kernel giving it up (keepalives). A poll of the socket, no round trip."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _answers(conn: Connection) -> bool:
    """Whether the session still answers: one round trip."""
    try:
        conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


class Session:
    """A session opened on first use, and again after the server lost it (a restart,
    `pg_terminate_backend`, a cut or a black-holed network): a session found dead between
    statements is opened anew before it is used, so that the first statement after an
    outage does not fail on it. Once it has connected, a failure to connect again is a
    `WarehouseFault` (see the module's docstring); before, the driver's error, for the
    start's or the command's `faults.translated` to name. Safe to share between threads
    (the claims' session is the heartbeat's and the worker's)."""

    def __init__(self, url: PostgresUrl, busy_timeout_seconds: float,
                 conn: Connection | None = None) -> None:
        self.url, self.timeout, self._conn = url, busy_timeout_seconds, conn
        self._connected = conn is not None
        self._suspect = False
        self._lock = threading.Lock()

    @property
    def conn(self) -> Connection:
        with self._lock:
            if self._conn is not None and usable(self._conn) and self._stale(self._conn):
                self._conn.close()
            if self._conn is None or not usable(self._conn):
                self._conn = self._connect()
            return self._conn

    @property
    def open(self) -> Connection | None:
        """The session if it is usable now, without connecting."""
        return self._conn if usable(self._conn) else None

    def suspect(self) -> None:
        """Say that the server was out of reach since this session was last used (the
        heartbeat failed, say): its next use checks it first with one round trip, and
        opens a new session if it does not answer. Any thread may call it."""
        self._suspect = True

    def _stale(self, conn: Connection) -> bool:
        # Under the connection's own lock, which each statement holds throughout: the
        # answer to another thread's statement (the heartbeat's) is not the server
        # speaking unasked. Never between the statements of a transaction (or during
        # one): swapping the session there would run the rest of it outside.
        with conn.lock:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                return False
            if _spoke_unasked(conn):
                return True
        if self._suspect:
            self._suspect = False
            return not _answers(conn)
        return False

    def _connect(self) -> Connection:
        try:
            conn = connect(self.url, self.timeout)
        except psycopg.Error as exc:
            if not self._connected:
                raise
            raise reconnect_fault(exc) from exc
        self._connected = True
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
