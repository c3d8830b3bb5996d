"""The PostgreSQL backend: one warehouse on a server, shared by several daemons.

`open_warehouse` connects (a server out of reach is `WarehouseUnavailable`, which the
daemon waits out), migrates when the schema is behind (`schema`: on a current one it
reads the catalogs and takes no lock), checks that its role may load (`roles`), records
this start (one daemon per node) and takes back the claims a killed run of this node
left; `reading` and `writing` give the commands and the page the history and the retry
log (`writing` never migrates), and `migrating` is the `migrate` command's, translating
every driver error raised in their block into the seam's terms, so that nothing outside
this package sees psycopg.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from config import Settings
from config.contract import Contract
from config.database import PostgresUrl
from daemon.warehouse.api import Folders, Migration
from daemon.warehouse.postgresql import nodes, roles, schema
from daemon.warehouse.postgresql.claims import PostgresClaims
from daemon.warehouse.postgresql.connection import connect
from daemon.warehouse.postgresql.faults import translated
from daemon.warehouse.postgresql.history import PostgresHistory
from daemon.warehouse.postgresql.retry_log import PostgresRetryLog
from daemon.warehouse.postgresql.warehouse import PostgresWarehouse

__all__ = ["PostgresWarehouse", "migrating", "open_warehouse", "reading", "writing"]


def open_warehouse(url: PostgresUrl, contract: Contract, *, settings: Settings,
                   folders: Folders) -> PostgresWarehouse:
    """Connect, migrate, record this start; a `WarehouseFault` to wait out, or
    `SchemaMismatch`, `AlreadyRunning` or `DatabaseUnavailable` to stop on."""
    claims = PostgresClaims(url, settings.busy_timeout_seconds, node=settings.node,
                            work=Path(folders.work), lease_seconds=settings.lease_seconds)
    try:
        with translated(_TERMINAL_HINT):
            conn = connect(url, settings.busy_timeout_seconds)
            try:
                schema.migrate(conn, contract)
                roles.check(conn, contract)
                nodes.record_start(conn, settings.node, folders, owner=claims.owner,
                                   lease_seconds=settings.lease_seconds)
                claims.take_back()
            except BaseException:
                conn.close()
                raise
    except BaseException:
        claims.close()
        raise
    return PostgresWarehouse(url, contract, settings.busy_timeout_seconds, claims, conn)


# Terminal for the start and the commands: a database that does not exist, a login
# refused, a URL libpq can not use.
_TERMINAL_HINT = ("check the database URL, the user's rights on it, and that the database "
                  "exists")


@contextmanager
def reading(url: PostgresUrl, contract: Contract,
            busy_timeout_seconds: float) -> Iterator[PostgresHistory]:
    """The read-only history of the warehouse, its schema checked."""
    with translated(_TERMINAL_HINT):
        conn = connect(url, busy_timeout_seconds, read_only=True)
        with conn:
            history = PostgresHistory(conn, contract)
            history.schema_version()
            yield history


@contextmanager
def writing(url: PostgresUrl, contract: Contract,
            busy_timeout_seconds: float) -> Iterator[PostgresRetryLog]:
    """The retry log of the existing warehouse, whose schema must be current: `retry`
    never migrates (DDL would wait on running loads, and hold them up while it waits)."""
    with translated(_TERMINAL_HINT):
        conn = connect(url, busy_timeout_seconds)
        with conn:
            schema.require_current(conn, contract)
            yield PostgresRetryLog(conn, contract)


def migrating(url: PostgresUrl, contract: Contract, busy_timeout_seconds: float,
              grant: str | None = None) -> Migration:
    """Create or migrate the schema (the `migrate` command, as the tables' owner), and
    grant `grant` what a runtime role needs."""
    with translated(_TERMINAL_HINT), connect(url, busy_timeout_seconds) as conn:
        found = schema.migrate(conn, contract)
        notes = roles.grant(conn, contract, grant) if grant is not None else []
    return Migration(found, schema.SCHEMA_VERSION, grant, tuple(notes))
