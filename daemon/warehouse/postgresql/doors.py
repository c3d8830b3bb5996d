"""The PostgreSQL backend's doors, imported (with psycopg) by `BACKEND` when one is
first opened.

`open_warehouse` connects (a server out of reach is `WarehouseUnavailable`, which the
daemon waits out), marks the inbox's work root with this warehouse (a daemon of another
warehouse on the same inbox is refused), migrates when the schema is behind (`schema`:
on a current one it reads the catalogs and takes no lock), checks that its role may load
(`roles`), records this start (one daemon per node) and takes back the claims a killed
run of this node left; `reading` and `writing` give the commands and the page (on one
kept session, `KeptReading`) the history and the retry log (`writing` never migrates),
and `migrating` is the `migrate` command's, translating every driver error raised in
their block into the seam's terms, so that nothing outside this package sees psycopg.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.warehouse.api import Folders, Migration
from filedrop_etl.daemon.warehouse.postgresql import nodes, roles, schema
from filedrop_etl.daemon.warehouse.postgresql.claims import PostgresClaims
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, connect, usable
from filedrop_etl.daemon.warehouse.postgresql.faults import translated
from filedrop_etl.daemon.warehouse.postgresql.history import PostgresHistory
from filedrop_etl.daemon.warehouse.postgresql.mark import WarehouseMark
from filedrop_etl.daemon.warehouse.postgresql.retry_log import PostgresRetryLog
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl
from filedrop_etl.daemon.warehouse.postgresql.warehouse import PostgresWarehouse

__all__ = ["KeptReading", "PostgresWarehouse", "migrating", "open_warehouse", "reading",
           "writing"]


def open_warehouse(url: PostgresUrl, feeds: Sequence[Contract], *, settings: Settings,
                   folders: Folders) -> PostgresWarehouse:
    """Connect, migrate, record this start; a `WarehouseFault` to wait out, or
    `SchemaMismatch`, `AlreadyRunning` or `DatabaseUnavailable` to stop on."""
    claims = PostgresClaims(url, settings.busy_timeout_seconds, node=settings.node,
                            work=Path(folders.work), lease_seconds=settings.lease_seconds)
    mark: WarehouseMark | None = None
    try:
        with translated(_TERMINAL_HINT):
            conn = connect(url, settings.busy_timeout_seconds)
            try:
                mark = WarehouseMark(settings.work_root, nodes.identity(conn),
                                     url.redacted)
                mark.acquire()
                schema.migrate(conn, feeds)
                roles.check(conn, feeds)
                nodes.record_start(conn, settings.node, folders, owner=claims.owner,
                                   lease_seconds=settings.lease_seconds)
                claims.take_back()
            except BaseException:
                conn.close()
                raise
    except BaseException:
        claims.close()
        if mark is not None:
            mark.release()
        raise
    return PostgresWarehouse(url, feeds, settings.busy_timeout_seconds, claims, conn, mark)


# Terminal for the start and the commands: a database that does not exist, a login
# refused, a URL libpq can not use.
_TERMINAL_HINT = ("check the database URL, the user's rights on it, and that the database "
                  "exists")


@contextmanager
def reading(url: PostgresUrl, busy_timeout_seconds: float) -> Iterator[PostgresHistory]:
    """The read-only history of the warehouse, its schema checked."""
    with translated(_TERMINAL_HINT):
        conn = connect(url, busy_timeout_seconds, read_only=True)
        with conn:
            history = PostgresHistory(conn)
            history.schema_version()
            yield history


class KeptReading:
    """The history on one read-only session kept across uses: the status page's, so that
    its viewers cost one session of the server's `max_connections`, not one each.

    Opened at the first use, and again once the server has lost it (a restart,
    `pg_terminate_backend`, `idle_session_timeout`): a session found broken by the
    schema check that begins each use is replaced there and then, so that the page after
    an outage is not one refresh late. In autocommit, so between uses it holds no
    transaction and no lock. One use at a time.
    """

    def __init__(self, url: PostgresUrl, busy_timeout_seconds: float) -> None:
        self.url, self.timeout = url, busy_timeout_seconds
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def reading(self) -> Iterator[PostgresHistory]:
        with self._lock, translated(_TERMINAL_HINT):
            yield self._checked()

    def _checked(self) -> PostgresHistory:
        if self._conn is not None:
            history = PostgresHistory(self._conn)
            try:
                history.schema_version()
                return history
            except psycopg.Error:
                if usable(self._conn):
                    raise  # the session is fine: the error is the database's
            self._conn.close()
        self._conn = connect(self.url, self.timeout, read_only=True)
        history = PostgresHistory(self._conn)
        history.schema_version()
        return history

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


@contextmanager
def writing(url: PostgresUrl, feeds: Sequence[Contract],
            busy_timeout_seconds: float) -> Iterator[PostgresRetryLog]:
    """The retry log of the existing warehouse, whose schema must be current: `retry`
    never migrates (DDL would wait on running loads, and hold them up while it waits)."""
    with translated(_TERMINAL_HINT):
        conn = connect(url, busy_timeout_seconds)
        with conn:
            schema.require_current(conn, feeds)
            yield PostgresRetryLog(conn)


def migrating(url: PostgresUrl, feeds: Sequence[Contract], busy_timeout_seconds: float,
              grant: str | None = None, reader: str | None = None) -> Migration:
    """Create or migrate the schema (the `migrate` command, as the tables' owner), grant
    `grant` what a runtime role needs, and `reader` what an analyst's does."""
    with translated(_TERMINAL_HINT), connect(url, busy_timeout_seconds) as conn:
        found = schema.migrate(conn, feeds)
        notes = roles.grant(conn, feeds, grant) if grant is not None else []
        if reader is not None:
            roles.grant_reader(conn, feeds, reader)
    return Migration(found, schema.SCHEMA_VERSION, grant, tuple(notes), reader)
