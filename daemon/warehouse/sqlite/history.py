"""Read-only questions to the database: the loads, the retries, and what the data holds.

Owns the SELECTs of the operator's commands and of the status page on the ledger, each
returning frozen dataclasses that render as a table or as JSON alike: recent loads with
filters, every attempt at one file, its retries, counts of files and loads today and in
total, the last success, each of every feed or of one; what a feed's table holds is
`totals`'s to read. It takes a connection (`connection.connect_readonly` in the
commands) and never writes. An older database reads as it is, before the daemon has
migrated it: a version-1 one has no `retries` table (no retries), and a ledger before
version 5 has no `feed` (every load the built-in feed's).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.errors import SchemaMismatch
from filedrop_etl.daemon.warehouse.api import (
    Daemon,
    DayRows,
    DayTotal,
    GroupTotal,
    Load,
    LoadBin,
    LoadFilter,
    Retry,
    Tally,
)
from filedrop_etl.daemon.warehouse.sql import (
    DAEMONS_TABLE,
    EARLIEST_FEED,
    LEDGER_TABLE,
    RETRIES_TABLE,
    q,
)
from filedrop_etl.daemon.warehouse.sqlite import schema, totals
from filedrop_etl.daemon.warehouse.sqlite.tables import has_table
from filedrop_etl.daemon.warehouse.values import recording

LEDGER = q(LEDGER_TABLE)


def _columns(cls: type[Any]) -> str:
    return ", ".join(q(f.name) for f in fields(cls) if f.name not in _NOT_STORED)


# A `Daemon`'s fields that only a shared warehouse records.
_NOT_STORED = frozenset({"heartbeat_at", "file_in_hand", "alive", "state", "lost_since"})


def check_schema(conn: sqlite3.Connection) -> int:
    """The database's schema version; `SchemaMismatch` unless the daemon could use it."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > schema.SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database has schema version {version}; this program knows "
            f"{schema.SCHEMA_VERSION}", hint="use the newer filedrop-etl that wrote it")
    if not has_table(conn, LEDGER_TABLE):
        raise SchemaMismatch("the database has no load_history table",
                             hint="point --db at the daemon's database")
    return version


class SqliteHistory:
    """The read-only history of one SQLite database, on a connection it is given."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._has_feed: bool | None = None

    def close(self) -> None:
        self.conn.close()

    def schema_version(self) -> int:
        return check_schema(self.conn)

    @property
    def has_feed(self) -> bool:
        """Whether the ledger records each load's feed (version 5 on)."""
        if self._has_feed is None:
            self._has_feed = any(row[1] == "feed" for row in self.conn.execute(
                f"PRAGMA table_info({LEDGER})"))
        return self._has_feed

    @property
    def _loads(self) -> str:
        """The ledger's columns a `Load` holds, in its order."""
        if self.has_feed:
            return _columns(Load)
        return _columns(Load).replace('"feed"', f"'{EARLIEST_FEED}' AS \"feed\"")

    def _of_feed(self, feed: str | None) -> tuple[str, tuple[str, ...]]:
        """The condition (and its values) of `feed`'s loads: "true" for every feed's."""
        if feed is None:
            return "true", ()
        if self.has_feed:
            return '"feed" = ?', (feed,)
        return ("true" if feed == EARLIEST_FEED else "false"), ()

    def recent_loads(self, where: LoadFilter) -> list[Load]:
        """The latest attempts matching `where`, newest first."""
        clauses: list[str] = []
        params: list[object] = []
        if where.file is not None:
            glob = any(c in where.file for c in "*?[")
            clauses.append('"file_name" GLOB ?' if glob else '"file_name" = ?')
            params.append(where.file)
        for clause, value in (('"status" = ?', where.status), ('"finished_at" >= ?', where.since),
                              ('"finished_at" < ?', where.until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if where.feed is not None:
            clause, values = self._of_feed(where.feed)
            clauses.append(clause)
            params.extend(values)
        sql = (f"SELECT {self._loads} FROM {LEDGER}"
               + (" WHERE " + " AND ".join(clauses) if clauses else "")
               + ' ORDER BY "id" DESC LIMIT ?')
        return [Load(*row) for row in self.conn.execute(sql, (*params, where.limit))]


    def attempts(self, names: Sequence[str]) -> list[Load]:
        """Every attempt at files of these names, oldest first."""
        marks = ", ".join("?" * len(names))
        return [Load(*row) for row in self.conn.execute(
            f'SELECT {self._loads} FROM {LEDGER} WHERE "file_name" IN ({marks}) '
            'ORDER BY "id"', tuple(names))]


    def retries(self, names: Sequence[str]) -> list[Retry]:
        """Every retry of files of these names (as sent back or as failed), oldest first."""
        if not has_table(self.conn, RETRIES_TABLE):
            return []
        marks = ", ".join("?" * len(names))
        return [Retry(*row) for row in self.conn.execute(
            f'SELECT {_columns(Retry)} FROM {q(RETRIES_TABLE)} WHERE "file_name" IN ({marks}) '
            f'OR "failed_as" IN ({marks}) ORDER BY "id"', (*names, *names))]


    def daemons(self) -> list[Daemon]:
        """Every daemon that started on this database, the latest start first; none before
        version 3 (no daemon of it has started there yet)."""
        if not has_table(self.conn, DAEMONS_TABLE):
            return []
        rows = self.conn.execute(f'SELECT {_columns(Daemon)} FROM {q(DAEMONS_TABLE)} '
                            'ORDER BY "started_at" DESC').fetchall()
        return [Daemon(str(node), int(pid), str(started), str(inbox), str(work), str(processed),
                       str(failed), json.loads(created))
                for node, pid, started, inbox, work, processed, failed, created in rows]


    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None:
        """The retry of the file failed/ held as `failed_as` that recorded this very sidecar:
        the retry that left it behind (`daemon.ops.retries`), or None if none did."""
        if sidecar is None or not has_table(self.conn, RETRIES_TABLE):
            return None
        return recording(self.conn.execute(
            f'SELECT {_columns(Retry)}, "sidecar" FROM {q(RETRIES_TABLE)} '
            'WHERE "failed_as" = ? ORDER BY "id" DESC', (failed_as,)), sidecar)


    def superseding(self, feed: str, run_date: str, after: str) -> Load | None:
        """The latest processed load of the feed's run date, if it began after `after`:
        one daemon takes a run date's drops in their order, so it was a later drop."""
        of_feed, params = self._of_feed(feed)
        row = self.conn.execute(
            f"SELECT {self._loads} FROM {LEDGER} WHERE \"status\" = 'processed' "
            f'AND "error" IS NULL AND "run_date" = ? AND {of_feed} '
            'ORDER BY "id" DESC LIMIT 1', (run_date, *params)).fetchone()
        load = None if row is None else Load(*row)
        return load if load is not None and load.started_at > after else None

    def tally(self, since: str | None = None, until: str | None = None,
              feed: str | None = None) -> Tally:
        """Files processed and failed, and their loads, in all or since `since` and up to
        `until` (each optional, by the time the attempts finished: `until` keeps out a load
        recorded later than now, by a clock that ran ahead). A file is a name as the ledger
        records it, the name dropped."""
        # With one max() in the SELECT, SQLite takes the bare "status" from the row holding
        # the max: each file's latest attempt in the period.
        upper, bound = ('AND "finished_at" <= ? ', (until,)) if until else ("", ())
        of_feed, feeds = self._of_feed(feed)
        files = {status: (int(n), int(loads)) for status, n, loads in self.conn.execute(
            'SELECT "status", COUNT(*), SUM("loads") FROM (SELECT "status", MAX("id"), '
            f'COUNT(*) AS "loads" FROM {LEDGER} WHERE "finished_at" >= ? {upper}'
            f'AND {of_feed} GROUP BY "file_name") GROUP BY "status"',
            (since or "", *bound, *feeds))}
        return Tally(files.get("processed", (0, 0))[0], files.get("failed", (0, 0))[0],
                     sum(loads for _, loads in files.values()))


    def last_success(self, now: str, feed: str | None = None) -> Load | None:
        """The latest processed load finished by `now` (ISO-8601 UTC, as the ledger writes).

        A load recorded later than now was timed by a clock that ran ahead and has since
        been corrected: taken as the last success, it would silence the no-success alert
        until that future time came. The status page, `status` and the metric all use this.
        """
        of_feed, feeds = self._of_feed(feed)
        row = self.conn.execute(f"SELECT {self._loads} FROM {LEDGER} "
                                """WHERE "status" = 'processed' AND "finished_at" <= ? """
                                f'AND {of_feed} ORDER BY "id" DESC LIMIT 1',
                                (now, *feeds)).fetchone()
        return None if row is None else Load(*row)


    def loads_in_the_future(self, now: str) -> int:
        """Loads whose recorded finish is later than `now`: a clock that ran ahead."""
        count, = self.conn.execute(f'SELECT COUNT(*) FROM {LEDGER} WHERE "finished_at" > ?',
                                   (now,)).fetchone()
        return int(count)


    def day_totals(self, contract: Contract, since: str | None = None,
                   until: str | None = None) -> list[DayTotal]:
        return totals.day_totals(self.conn, contract, since, until)

    def group_totals(self, contract: Contract, since: str | None = None,
                     until: str | None = None) -> list[GroupTotal]:
        return totals.group_totals(self.conn, contract, since, until)

    def has_rows(self, contract: Contract) -> bool:
        return totals.has_rows(self.conn, contract)

    def rows_per_day(self, contract: Contract, days: int, latest: str) -> list[DayRows]:
        return totals.rows_per_day(self.conn, contract, days, latest)

    def load_bins(self, since: str, until: str, seconds: int,
                  feed: str | None = None) -> list[LoadBin]:
        """The loads finished from `since` to `until`, by slice of `seconds` and status."""
        of_feed, feeds = self._of_feed(feed)
        rows = self.conn.execute(
            # strftime('%s') numbers the slices in whole seconds, exactly at their edges.
            """SELECT CAST(strftime('%s', "finished_at") AS INTEGER) / ? AS "slice", """
            '"status", COUNT(*), TOTAL("rows"), MIN("took"), MAX("took"), TOTAL("took"), '
            'MIN("file_name") FROM (SELECT "finished_at", "status", "rows", "file_name", '
            f'{_TOOK} AS "took" {_FINISHED} AND {of_feed}) '
            'GROUP BY "slice", "status" ORDER BY "slice", "status"',
            (seconds, since, until, *feeds))
        return [LoadBin(int(n), str(status), int(loads), int(total), float(low), float(high),
                        float(busy), str(name) if loads == 1 else None)
                for n, status, loads, total, low, high, busy, name in rows]

    def median_load(self, since: str, until: str, feed: str | None = None) -> float | None:
        """The median load duration in seconds, from `since` to `until`; None if none."""
        of_feed, feeds = self._of_feed(feed)
        where = f"{_FINISHED} AND {of_feed}"
        count = int(self.conn.execute(f"SELECT COUNT(*) {where}",
                                      (since, until, *feeds)).fetchone()[0])
        if not count:
            return None
        # SQLite has no percentile: the middle one (or two) of the sorted durations.
        middle = [float(took) for took, in self.conn.execute(
            f'SELECT {_TOOK} AS "took" {where} ORDER BY "took" LIMIT ? OFFSET ?',
            (since, until, *feeds, 2 - count % 2, (count - 1) // 2))]
        return sum(middle) / len(middle)


# A load's duration in seconds, from the ledger's text (clamped at 0: a clock set back).
_TOOK = 'max(0.0, (julianday("finished_at") - julianday("started_at")) * 86400.0)'
_FINISHED = f'FROM {LEDGER} WHERE "finished_at" >= ? AND "finished_at" <= ?'
