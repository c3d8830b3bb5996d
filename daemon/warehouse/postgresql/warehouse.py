"""The PostgreSQL backend's warehouse: the worker's role of the seam on a server.

Opened for every feed of the settings (their tables migrated by `doors`). `staged` opens
the file's one transaction on the worker's session and streams the rows into the feed's
staging table (`staging`); `commit` checks that this daemon still holds the file's claim
(the fence, on the database's clock, extending the lease for the archive that follows),
takes the advisory lock of the feed's run date, writes the ledger row (with its feed and
this daemon's node),
merges into the feed's fact table and commits. Every call runs
inside `faults.translated`; a session the server lost is opened again on the next call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon import clock, crashpoints
from filedrop_etl.daemon.warehouse.api import (
    ClaimLost,
    Claims,
    FileIdentity,
    Load,
    LoadRecord,
    MergeCounts,
    MergePlan,
    Recorded,
    Ticket,
)
from filedrop_etl.daemon.warehouse.postgresql import ledger, merge, staging
from filedrop_etl.daemon.warehouse.postgresql.claims import PostgresClaims
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, Session, stmt, usable
from filedrop_etl.daemon.warehouse.postgresql.faults import translated
from filedrop_etl.daemon.warehouse.postgresql.history import PostgresHistory
from filedrop_etl.daemon.warehouse.postgresql.mark import WarehouseMark
from filedrop_etl.daemon.warehouse.postgresql.schema import LOCK_SPACE
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl
from filedrop_etl.daemon.warehouse.sql import Tables

# PostgreSQL stores at most 1 GB in one field.
VALUE_LIMIT = (1 << 30) - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PostgresStaged:
    """One file's rows in the session's staging table, its transaction open; `tables`,
    those of the contract it was staged by."""

    def __init__(self, warehouse: PostgresWarehouse, tables: Tables, rows: int) -> None:
        self.warehouse, self.tables, self.rows = warehouse, tables, rows
        self.committed = False

    def surplus_rows(self, columns: tuple[str, ...], limit: int) -> tuple[int, list[str]]:
        with translated():
            return merge.surplus_rows(self.warehouse.conn, self.tables.contract, columns,
                                      limit)

    def commit(self, load: LoadRecord, plan: MergePlan) -> MergeCounts:
        conn, tables = self.warehouse.conn, self.tables
        with translated():
            self.warehouse.check_held(plan.ticket)
            if load.run_date is not None:
                # One load of a feed's date at a time, across every daemon; others run
                # alongside. Two (feed, date)s whose hashes meet only wait for each other.
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                             (LOCK_SPACE, f"{load.feed}/{load.run_date}"))
            # The fact table's statistics lag behind a burst of loads (autovacuum analyzes
            # it later): a planner that thinks it nearly empty picks nested loops, which
            # over a staging table without an index grow with the product of the sizes.
            conn.execute("SET LOCAL enable_nestloop = off")
            load_id = ledger.record_load(conn, load, status="processed",
                                         finished_at=load.started_at,
                                         node=self.warehouse.node)
            if self.warehouse.latest_drop(load.feed, load.run_date, plan.ticket):
                counts = merge.merge(conn, tables, plan, rows=self.rows,
                                     loaded_at=clock.utc_now(), load_id=load_id)
            else:
                counts = MergeCounts(self.rows, 0, 0, self.rows, 0, superseded=True)
                conn.execute(stmt(f'UPDATE {conn.books.ledger} SET "error" = %s '
                                  'WHERE "id" = %s'),
                             ("superseded: a later drop of this run date was loaded first; "
                              "its rows stand", load_id))
            crashpoints.reached("during_merge")
            ledger.update_load_counts(conn, load_id, counts, finished_at=clock.utc_now())
            conn.execute("COMMIT")
        self.committed = True
        return counts


class PostgresWarehouse:
    """The worker's warehouse: its own session, opened again if the server drops it."""

    def __init__(self, url: PostgresUrl, feeds: Sequence[Contract],
                 busy_timeout_seconds: float, claims: PostgresClaims, conn: Connection,
                 mark: WarehouseMark | None = None) -> None:
        self.url, self.feeds, self.timeout = url, tuple(feeds), busy_timeout_seconds
        self.value_limit = VALUE_LIMIT
        self.where = str(url)
        self._claims = claims
        self.claims: Claims = claims
        # The ledger's `node` of each attempt this daemon makes.
        self.node = claims.node
        # A server's database has no path to be moved from: its faults are the calls' own.
        self.file_identity: FileIdentity | None = None
        self._session = Session(url, busy_timeout_seconds, conn)
        # Held while the daemon runs: the inbox's daemons all load into this warehouse.
        self._mark = mark

    @property
    def conn(self) -> Connection:
        """The session, opened again after a lost one (a fault if that fails too)."""
        with translated():
            return self._session.conn

    def check_held(self, ticket: Ticket | None) -> None:
        """`ClaimLost` unless this daemon still holds `ticket` (inside the transaction)."""
        if ticket is not None and not self._claims.renew_in(self.conn, ticket):
            raise ClaimLost(
                f"this daemon's claim on the file lapsed (claim {ticket.id}, fence "
                f"{ticket.fence}): another daemon may have taken it over",
                hint="nothing was committed; the file is claimed again if it is still "
                "here, or loaded by the daemon that took it")

    def latest_drop(self, feed: str, run_date: str | None, ticket: Ticket | None) -> bool:
        """Under the feed's run-date lock: whether this file is the latest drop of the
        feed's date so far (and record it so); False if a later drop of it was committed
        first."""
        if run_date is None or ticket is None:
            return True
        conn = self.conn
        # Compared to the nanosecond (`shape._drops`); a tie goes to the later commit.
        micros, nanos = divmod(ticket.dropped_ns, 1000)
        row = conn.execute(stmt(
            f'INSERT INTO {conn.books.drops} AS d ("feed", "run_date", "dropped_at", '
            '"dropped_nanos") VALUES (%s, %s::date, %s, %s) ON CONFLICT ("feed", "run_date") '
            'DO UPDATE SET "dropped_at" = EXCLUDED."dropped_at", '
            '"dropped_nanos" = EXCLUDED."dropped_nanos" WHERE (d."dropped_at", '
            'd."dropped_nanos") <= (EXCLUDED."dropped_at", EXCLUDED."dropped_nanos") '
            'RETURNING 1'),
            (feed, run_date, EPOCH + timedelta(microseconds=micros), nanos)).fetchone()
        return row is not None

    def recorded(self, claim: str) -> Recorded | None:
        with translated():
            return ledger.recorded_outcome(self.conn, claim)

    @contextmanager
    def staged(self, contract: Contract,
               batches: Iterable[pa.RecordBatch]) -> Iterator[PostgresStaged]:
        conn = self.conn
        with translated():
            conn.execute("BEGIN")
        done: PostgresStaged | None = None
        try:
            with translated():
                staging.ensure_table(conn, contract)
                rows = staging.copy_in(conn, contract, batches)
            done = PostgresStaged(self, Tables(contract), rows)
            yield done
        finally:
            if (done is None or not done.committed) and usable(conn):
                with translated():
                    conn.execute("ROLLBACK")

    def record_failure(self, load: LoadRecord, *, rows: int | None, error: str,
                       ticket: Ticket | None = None) -> None:
        conn = self.conn
        with translated(), conn.transaction():
            self.check_held(ticket)
            recorded = ledger.recorded_outcome(conn, load.claim) if load.claim else None
            if recorded is None or recorded.status != "failed":
                ledger.record_load(conn, load, status="failed", node=self.node,
                                   finished_at=clock.utc_now(), rows=rows, error=error)

    def last_success(self, now: str, feed: str | None = None) -> Load | None:
        with translated():
            return PostgresHistory(self.conn).last_success(now, feed)

    def answers_again(self) -> None:
        self._session.suspect()

    def close(self) -> None:
        self._claims.close()
        self._session.close()
        if self._mark is not None:
            self._mark.release()


