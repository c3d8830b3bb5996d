"""Read-only questions to the database: the loads, the retries, and what the data holds.

Owns the SELECTs of the operator's commands and of the status page, each returning
frozen dataclasses that render as a table or as JSON alike: recent loads with filters,
every attempt at one file, its retries, counts of files and loads today and in total,
the last success, per-day and per-customer totals. It takes a connection
(`connection.connect_readonly` in the commands) and never writes. A version-1 database has no
`retries` table: it reads as no retries, so the commands work before the daemon has
migrated it.
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
    CustomerTotal,
    Daemon,
    DayRows,
    DayTotal,
    Load,
    LoadBin,
    LoadFilter,
    Retry,
    Tally,
)
from filedrop_etl.daemon.warehouse.sql import (
    DAEMONS_TABLE,
    DAYS_SUFFIX,
    RETRIES_TABLE,
    Tables,
    date_range,
    q,
)
from filedrop_etl.daemon.warehouse.sqlite import schema
from filedrop_etl.daemon.warehouse.values import recording


def _columns(cls: type[Any]) -> str:
    return ", ".join(q(f.name) for f in fields(cls) if f.name not in _NOT_STORED)


# A `Daemon`'s fields that only a shared warehouse records.
_NOT_STORED = frozenset({"heartbeat_at", "file_in_hand", "alive"})


def check_schema(conn: sqlite3.Connection, contract: Contract) -> int:
    """The database's schema version; `SchemaMismatch` unless the daemon could use it."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > schema.SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database has schema version {version}; this program knows "
            f"{schema.SCHEMA_VERSION}", hint="use the newer filedrop-etl that wrote it")
    if not schema.has_table(conn, contract.ledger_table):
        raise SchemaMismatch("the database has no load_history table",
                             hint="point --db at the daemon's database")
    return version


class SqliteHistory:
    """The read-only history of one SQLite database, on a connection it is given."""

    def __init__(self, conn: sqlite3.Connection, contract: Contract) -> None:
        self.conn, self.t = conn, Tables(contract)

    def close(self) -> None:
        self.conn.close()

    def schema_version(self) -> int:
        return check_schema(self.conn, self.t.contract)

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
        sql = (f"SELECT {_columns(Load)} FROM {self.t.ledger}"
               + (" WHERE " + " AND ".join(clauses) if clauses else "")
               + ' ORDER BY "id" DESC LIMIT ?')
        return [Load(*row) for row in self.conn.execute(sql, (*params, where.limit))]


    def attempts(self, names: Sequence[str]) -> list[Load]:
        """Every attempt at files of these names, oldest first."""
        marks = ", ".join("?" * len(names))
        return [Load(*row) for row in self.conn.execute(
            f'SELECT {_columns(Load)} FROM {self.t.ledger} WHERE "file_name" IN ({marks}) '
            'ORDER BY "id"', tuple(names))]


    def retries(self, names: Sequence[str]) -> list[Retry]:
        """Every retry of files of these names (as sent back or as failed), oldest first."""
        if not schema.has_table(self.conn, RETRIES_TABLE):
            return []
        marks = ", ".join("?" * len(names))
        return [Retry(*row) for row in self.conn.execute(
            f'SELECT {_columns(Retry)} FROM {self.t.retries} WHERE "file_name" IN ({marks}) '
            f'OR "failed_as" IN ({marks}) ORDER BY "id"', (*names, *names))]


    def daemons(self) -> list[Daemon]:
        """Every daemon that started on this database, the latest start first; none before
        version 3 (no daemon of it has started there yet)."""
        if not schema.has_table(self.conn, DAEMONS_TABLE):
            return []
        rows = self.conn.execute(f'SELECT {_columns(Daemon)} FROM {self.t.daemons} '
                            'ORDER BY "started_at" DESC').fetchall()
        return [Daemon(str(node), int(pid), str(started), str(inbox), str(work), str(processed),
                       str(failed), json.loads(created))
                for node, pid, started, inbox, work, processed, failed, created in rows]


    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None:
        """The retry of the file failed/ held as `failed_as` that recorded this very sidecar:
        the retry that left it behind (`daemon.ops.retries`), or None if none did."""
        if sidecar is None or not schema.has_table(self.conn, RETRIES_TABLE):
            return None
        return recording(self.conn.execute(
            f'SELECT {_columns(Retry)}, "sidecar" FROM {self.t.retries} '
            'WHERE "failed_as" = ? ORDER BY "id" DESC', (failed_as,)), sidecar)


    def tally(self, since: str | None = None, until: str | None = None) -> Tally:
        """Files processed and failed, and their loads, in all or since `since` and up to
        `until` (each optional, by the time the attempts finished: `until` keeps out a load
        recorded later than now, by a clock that ran ahead). A file is a name as the ledger
        records it, the name dropped."""
        # With one max() in the SELECT, SQLite takes the bare "status" from the row holding
        # the max: each file's latest attempt in the period.
        upper, bound = ('AND "finished_at" <= ? ', (until,)) if until else ("", ())
        files = {status: (int(n), int(loads)) for status, n, loads in self.conn.execute(
            'SELECT "status", COUNT(*), SUM("loads") FROM (SELECT "status", MAX("id"), '
            f'COUNT(*) AS "loads" FROM {self.t.ledger} WHERE "finished_at" >= ? {upper}'
            'GROUP BY "file_name") GROUP BY "status"', (since or "", *bound))}
        return Tally(files.get("processed", (0, 0))[0], files.get("failed", (0, 0))[0],
                     sum(loads for _, loads in files.values()))


    def last_success(self, now: str) -> Load | None:
        """The latest processed load finished by `now` (ISO-8601 UTC, as the ledger writes).

        A load recorded later than now was timed by a clock that ran ahead and has since
        been corrected: taken as the last success, it would silence the no-success alert
        until that future time came. The status page, `status` and the metric all use this.
        """
        row = self.conn.execute(f"SELECT {_columns(Load)} FROM {self.t.ledger} "
                           """WHERE "status" = 'processed' AND "finished_at" <= ? """
                           'ORDER BY "id" DESC LIMIT 1', (now,)).fetchone()
        return None if row is None else Load(*row)


    def loads_in_the_future(self, now: str) -> int:
        """Loads whose recorded finish is later than `now`: a clock that ran ahead."""
        count, = self.conn.execute(f'SELECT COUNT(*) FROM {self.t.ledger} WHERE "finished_at" > ?',
                              (now,)).fetchone()
        return int(count)


    def _date_range(self, since: str | None, until: str | None) -> tuple[str, list[str]]:
        """The WHERE clause of run dates `since` to `until` (each optional), with a key range
        beside each bound where keys carry their date: the fact has no date index then
        (version 4), and its key's B-tree serves the range."""
        where, params = date_range(self.t.date, since, until, "?")
        contract, key = self.t.contract, self.t.key
        if not contract.keys_carry_their_date:
            return where, params
        if since is not None:
            where += f" AND {key} >= ?"
            params.append(contract.key_bounds(since, since)[0])
        if until is not None:
            where += f" AND {key} < ?"
            params.append(contract.key_bounds(until, until)[1])
        return where, params

    def day_totals(self, since: str | None = None,
                   until: str | None = None) -> list[DayTotal]:
        """Per run date of the fact table: rows, distinct customers, sum of amounts."""
        where, params = self._date_range(since, until)
        date = self.t.date
        return [DayTotal(str(d), int(n), int(c), float(a)) for d, n, c, a in self.conn.execute(
            f'SELECT {date}, COUNT(*), COUNT(DISTINCT "customer_id"), TOTAL("amount") '
            f"FROM {self.t.fact} {where} GROUP BY {date} ORDER BY {date}", params)]


    def customer_totals(self, since: str | None = None,
                        until: str | None = None) -> list[CustomerTotal]:
        """The prototype's report: per customer, the sum of amounts (largest first), and
        the number of transactions."""
        where, params = self._date_range(since, until)
        return [CustomerTotal(int(c), int(n), float(a)) for c, n, a in self.conn.execute(
            f'SELECT "customer_id", COUNT(*), TOTAL("amount") AS "total" FROM {self.t.fact} '
            f'{where} GROUP BY "customer_id" ORDER BY "total" DESC, "customer_id"', params)]


    def has_rows(self) -> bool:
        """Whether the fact table holds any row at all (its first row, not a count)."""
        return bool(self.conn.execute(f"SELECT EXISTS (SELECT 1 FROM {self.t.fact})").fetchone()[0])


    def rows_per_day(self, days: int, latest: str) -> list[DayRows]:
        """Fact rows per run date over the `days` calendar days up to the newest run date not
        after `latest` (ISO; today, give or take a time zone), oldest first; up to the newest
        of all when every run date is later.

        One far-future run date (a valid `9999-12-31` file) must not leave only itself in
        the window. Read from the rows-per-day table each load keeps (version 4): the
        status page asks on every refresh, and the fact may hold years of rows. A database
        not yet migrated is counted on its run-date index, from its newest end.
        """
        kept = schema.has_table(self.conn, self.t.contract.fact_table + DAYS_SUFFIX)
        table, date = (self.t.days if kept else self.t.fact), self.t.date
        # The anchor on its own first: joined into the count, it made SQLite group the rows in
        # a temporary B-tree instead of along the index (1.1 s instead of 0.2 on 3M rows).
        before, newest = self.conn.execute(
            f"SELECT (SELECT MAX({date}) FROM {table} WHERE {date} <= ?), "
            f"(SELECT MAX({date}) FROM {table})", (latest,)).fetchone()
        last = before or newest
        if last is None:
            return []
        # An upper bound only when there are later days: checked on every row, it costs.
        upper, bound = ("", ()) if last == newest else (f" AND {date} <= ?", (last,))
        rows = '"rows"' if kept else "COUNT(*)"
        group = "" if kept else f" GROUP BY {date}"
        return [DayRows(str(d), int(n)) for d, n in self.conn.execute(
            f"SELECT {date}, {rows} FROM {table} WHERE {date} > date(?, ?){upper}"
            f"{group} ORDER BY {date}", (last, f"-{days} days", *bound))]

    def load_bins(self, since: str, until: str, seconds: int) -> list[LoadBin]:
        """The loads finished from `since` to `until`, by slice of `seconds` and status."""
        rows = self.conn.execute(
            # strftime('%s') numbers the slices in whole seconds, exactly at their edges.
            """SELECT CAST(strftime('%s', "finished_at") AS INTEGER) / ? AS "slice", """
            '"status", COUNT(*), TOTAL("rows"), MIN("took"), MAX("took"), TOTAL("took"), '
            'MIN("file_name") FROM (SELECT "finished_at", "status", "rows", "file_name", '
            f'{_TOOK} AS "took" {_FINISHED.format(self.t.ledger)}) '
            'GROUP BY "slice", "status" ORDER BY "slice", "status"', (seconds, since, until))
        return [LoadBin(int(n), str(status), int(loads), int(total), float(low), float(high),
                        float(busy), str(name) if loads == 1 else None)
                for n, status, loads, total, low, high, busy, name in rows]

    def median_load(self, since: str, until: str) -> float | None:
        """The median load duration in seconds, from `since` to `until`; None if none."""
        where = _FINISHED.format(self.t.ledger)
        count = int(self.conn.execute(f"SELECT COUNT(*) {where}", (since, until)).fetchone()[0])
        if not count:
            return None
        # SQLite has no percentile: the middle one (or two) of the sorted durations.
        middle = [float(took) for took, in self.conn.execute(
            f'SELECT {_TOOK} AS "took" {where} ORDER BY "took" LIMIT ? OFFSET ?',
            (since, until, 2 - count % 2, (count - 1) // 2))]
        return sum(middle) / len(middle)


# A load's duration in seconds, from the ledger's text (clamped at 0: a clock set back).
_TOOK = 'max(0.0, (julianday("finished_at") - julianday("started_at")) * 86400.0)'
_FINISHED = 'FROM {} WHERE "finished_at" >= ? AND "finished_at" <= ?'
