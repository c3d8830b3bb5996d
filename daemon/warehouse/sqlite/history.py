"""Read-only questions to the database: the loads, the retries, and what the data holds.

Owns the SELECTs of the operator's commands and of the status page, each returning
frozen dataclasses that render as a table or as JSON alike: recent loads with filters,
every attempt at one file, its retries, counts of files and loads today and in total,
the last success, a feed's totals per day and per group. It takes a connection
(`connection.connect_readonly` in the commands) and never writes. A version-1 database has no
`retries` table: it reads as no retries, so the commands work before the daemon has
migrated it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
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
    DAYS_SUFFIX,
    RETRIES_TABLE,
    Tables,
    date_range,
    q,
)
from filedrop_etl.daemon.warehouse.sqlite import schema
from filedrop_etl.daemon.warehouse.values import Figures, recording


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
        self._feed: str | None = None

    @property
    def feed(self) -> str:
        """The ledger's feed of a row: its `feed` column, or, in a ledger that predates
        feeds, the built-in feed's name (what the migration gives every row). STOPGAP
        (issue 23, ops): the SQLite helper's migration replaces this."""
        if self._feed is None:
            names = {row[1] for row in self.conn.execute(
                f"PRAGMA table_info({self.t.ledger})")}
            self._feed = q("feed") if "feed" in names else "'transactions'"
        return self._feed

    @property
    def _load(self) -> str:
        return ", ".join([*(q(f.name) for f in fields(Load) if f.name != "feed"), self.feed])

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
                              ('"finished_at" < ?', where.until), (f"{self.feed} = ?", where.feed)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        sql = (f"SELECT {self._load} FROM {self.t.ledger}"
               + (" WHERE " + " AND ".join(clauses) if clauses else "")
               + ' ORDER BY "id" DESC LIMIT ?')
        return [Load(*row) for row in self.conn.execute(sql, (*params, where.limit))]


    def attempts(self, names: Sequence[str]) -> list[Load]:
        """Every attempt at files of these names, oldest first."""
        marks = ", ".join("?" * len(names))
        return [Load(*row) for row in self.conn.execute(
            f'SELECT {self._load} FROM {self.t.ledger} WHERE "file_name" IN ({marks}) '
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


    def tally(self, since: str | None = None, until: str | None = None,
              feed: str | None = None) -> Tally:
        """Files processed and failed, and their loads, in all or since `since` and up to
        `until` (each optional, by the time the attempts finished: `until` keeps out a load
        recorded later than now, by a clock that ran ahead). A file is a name as the ledger
        records it, the name dropped."""
        # With one max() in the SELECT, SQLite takes the bare "status" from the row holding
        # the max: each file's latest attempt in the period.
        upper, bound = ('AND "finished_at" <= ? ', (until,)) if until else ("", ())
        if feed is not None:
            upper, bound = upper + f"AND {self.feed} = ? ", (*bound, feed)
        files = {status: (int(n), int(loads)) for status, n, loads in self.conn.execute(
            'SELECT "status", COUNT(*), SUM("loads") FROM (SELECT "status", MAX("id"), '
            f'COUNT(*) AS "loads" FROM {self.t.ledger} WHERE "finished_at" >= ? {upper}'
            'GROUP BY "file_name") GROUP BY "status"', (since or "", *bound))}
        return Tally(files.get("processed", (0, 0))[0], files.get("failed", (0, 0))[0],
                     sum(loads for _, loads in files.values()))


    def last_success(self, now: str, feed: str | None = None) -> Load | None:
        """The latest processed load finished by `now` (ISO-8601 UTC, as the ledger writes).

        A load recorded later than now was timed by a clock that ran ahead and has since
        been corrected: taken as the last success, it would silence the no-success alert
        until that future time came. The status page, `status` and the metric all use this.
        """
        of_feed, bound = (f"AND {self.feed} = ? ", (feed,)) if feed is not None else ("", ())
        row = self.conn.execute(f"SELECT {self._load} FROM {self.t.ledger} "
                                """WHERE "status" = 'processed' AND "finished_at" <= ? """
                                f'{of_feed}ORDER BY "id" DESC LIMIT 1', (now, *bound)).fetchone()
        return None if row is None else Load(*row)


    def loads_in_the_future(self, now: str) -> int:
        """Loads whose recorded finish is later than `now`: a clock that ran ahead."""
        count, = self.conn.execute(f'SELECT COUNT(*) FROM {self.t.ledger} WHERE "finished_at" > ?',
                              (now,)).fetchone()
        return int(count)


    def _date_range(self, contract: Contract, since: str | None,
                    until: str | None) -> tuple[str, list[str]]:
        """The WHERE clause of run dates `since` to `until` (each optional), with a key range
        beside each bound where keys carry their date: the fact has no date index then
        (version 4), and its key's B-tree serves the range."""
        t = Tables(contract)
        where, params = date_range(t.date, since, until, "?")
        if not contract.keys_carry_their_date:
            return where, params
        key = q(contract.key[0])
        if since is not None:
            where += f" AND {key} >= ?"
            params.append(contract.key_bounds(since, since)[0])
        if until is not None:
            where += f" AND {key} < ?"
            params.append(contract.key_bounds(until, until)[1])
        return where, params

    def day_totals(self, contract: Contract, since: str | None = None,
                   until: str | None = None) -> list[DayTotal]:
        """Per run date of the fact table: rows and the feed's figures."""
        if contract.date_column is None or not self.has_rows(contract):
            return []
        where, params = self._date_range(contract, since, until)
        date, (select, read) = Tables(contract).date, _figures(contract)
        return [DayTotal(str(d), int(n), read(rest)) for d, n, *rest in self.conn.execute(
            f"SELECT {date}, COUNT(*){select} FROM {q(contract.fact_table)} {where} "
            f"GROUP BY {date} ORDER BY {date}", params)]

    def group_totals(self, contract: Contract, since: str | None = None,
                     until: str | None = None) -> list[GroupTotal]:
        """Per value of the feed's `group_by` column, the largest (first sum) first."""
        group = contract.totals.group_by
        if group is None or not self.has_rows(contract):
            return []
        where, params = (self._date_range(contract, since, until)
                         if contract.date_column is not None else ("", []))
        select, read = _figures(contract, without=group)
        order = ('"first" DESC, ' if contract.totals.sums else 'COUNT(*) DESC, ') + q(group)
        first = f', {_sum(contract, contract.totals.sums[0][1])} AS "first"' \
            if contract.totals.sums else ""
        return [GroupTotal(g, int(n), read(rest[:len(rest) - bool(first)]))
                for g, n, *rest in self.conn.execute(
                    f"SELECT {q(group)}, COUNT(*){select}{first} FROM {q(contract.fact_table)} "
                    f"{where} GROUP BY {q(group)} ORDER BY {order}", params)]

    def has_rows(self, contract: Contract) -> bool:
        """Whether the fact table holds any row at all (its first row, not a count)."""
        if not schema.has_table(self.conn, contract.fact_table):
            return False
        return bool(self.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM {q(contract.fact_table)})").fetchone()[0])

    def rows_per_day(self, contract: Contract, days: int, latest: str) -> list[DayRows]:
        """Fact rows per run date over the `days` calendar days up to the newest run date not
        after `latest` (ISO; today, give or take a time zone), oldest first; up to the newest
        of all when every run date is later.

        One far-future run date (a valid `9999-12-31` file) must not leave only itself in
        the window. Read from the rows-per-day table each load keeps (version 4): the
        status page asks on every refresh, and the fact may hold years of rows. A database
        not yet migrated is counted on its run-date index, from its newest end.
        """
        if contract.date_column is None or not schema.has_table(self.conn, contract.fact_table):
            return []
        t = Tables(contract)
        kept = schema.has_table(self.conn, contract.fact_table + DAYS_SUFFIX)
        table, date = (t.days if kept else t.fact), t.date
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

    def load_bins(self, since: str, until: str, seconds: int,
                  feed: str | None = None) -> list[LoadBin]:
        """The loads finished from `since` to `until`, by slice of `seconds` and status."""
        of_feed, bound = (f" AND {self.feed} = ?", (feed,)) if feed is not None else ("", ())
        rows = self.conn.execute(
            # strftime('%s') numbers the slices in whole seconds, exactly at their edges.
            """SELECT CAST(strftime('%s', "finished_at") AS INTEGER) / ? AS "slice", """
            '"status", COUNT(*), TOTAL("rows"), MIN("took"), MAX("took"), TOTAL("took"), '
            'MIN("file_name") FROM (SELECT "finished_at", "status", "rows", "file_name", '
            f'{_TOOK} AS "took" {_FINISHED.format(self.t.ledger)}{of_feed}) '
            'GROUP BY "slice", "status" ORDER BY "slice", "status"',
            (seconds, since, until, *bound))
        return [LoadBin(int(n), str(status), int(loads), int(total), float(low), float(high),
                        float(busy), str(name) if loads == 1 else None)
                for n, status, loads, total, low, high, busy, name in rows]

    def median_load(self, since: str, until: str, feed: str | None = None) -> float | None:
        """The median load duration in seconds, from `since` to `until`; None if none."""
        of_feed, bound = (f" AND {self.feed} = ?", (feed,)) if feed is not None else ("", ())
        where = _FINISHED.format(self.t.ledger) + of_feed
        count = int(self.conn.execute(f"SELECT COUNT(*) {where}",
                                      (since, until, *bound)).fetchone()[0])
        if not count:
            return None
        # SQLite has no percentile: the middle one (or two) of the sorted durations.
        middle = [float(took) for took, in self.conn.execute(
            f'SELECT {_TOOK} AS "took" {where} ORDER BY "took" LIMIT ? OFFSET ?',
            (since, until, *bound, 2 - count % 2, (count - 1) // 2))]
        return sum(middle) / len(middle)


# A load's duration in seconds, from the ledger's text (clamped at 0: a clock set back).
_TOOK = 'max(0.0, (julianday("finished_at") - julianday("started_at")) * 86400.0)'
_FINISHED = 'FROM {} WHERE "finished_at" >= ? AND "finished_at" <= ?'


def _sum(contract: Contract, column: str) -> str:
    """The SQL sum of `column`: TOTAL (0.0 for no rows) for floats, as ever; SUM for
    integers and decimals (STOPGAP for decimals: summed as REAL, shown at their scale)."""
    kind = contract.column(column).kind
    return f"TOTAL({q(column)})" if kind == "float" else f"COALESCE(SUM({q(column)}), 0)"


def _figures(contract: Contract, without: str | None = None
             ) -> tuple[str, Callable[[Sequence[Any]], Figures]]:
    """The SELECT's tail of `contract.totals`' figures (distinct counts, then sums; a
    distinct count of the `without` column left out), and how to read them back."""
    totals = contract.totals
    distinct = [(label, c) for label, c in totals.distinct if c != without]
    parts = [f"COUNT(DISTINCT {q(c)})" for _, c in distinct]
    parts += [_sum(contract, c) for _, c in totals.sums]
    columns = [contract.column(c) for _, c in totals.sums]

    def read(values: Sequence[Any]) -> Figures:
        counts = [(label, int(v)) for (label, _), v in zip(distinct, values, strict=False)]
        sums: list[tuple[str, float | int | str | None]] = []
        for (label, _), column, v in zip(totals.sums, columns, values[len(distinct):],
                                         strict=True):
            if column.kind == "decimal":
                sums.append((label, f"{float(v):.{column.scale or 0}f}"))
            elif column.kind == "integer":
                sums.append((label, int(v)))
            else:
                sums.append((label, float(v)))
        return (*counts, *sums)

    return "".join(", " + p for p in parts), read
