"""Read-only questions to the PostgreSQL warehouse: loads, retries, nodes, the data.

The same answers as `SqliteHistory`, in the same forms: times as the ledger's text
(`YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC), run dates as `YYYY-MM-DD`. The ledger's questions
take a feed (None: every feed's); the data's take the feed's contract (`totals`). A glob
on file names becomes an anchored regular expression; a limit of -1 is none. It never
writes, and the session it is given is read-only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from filedrop_etl.config.contract import Contract
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
from filedrop_etl.daemon.warehouse.postgresql import nodes, schema, totals
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.values import recording


def text_time(column: str) -> str:
    """A `timestamptz` column as the ledger's text."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


_LOAD = ", ".join([
    '"id"', '"file_name"', '"status"', """to_char("run_date", 'YYYY-MM-DD')""", '"rows"',
    '"inserted"', '"updated"', '"unchanged"', '"deleted"', '"error"', '"write_mode"',
    '"sha256"', '"bytes"', text_time('"started_at"'), text_time('"finished_at"'), '"feed"'])
_RETRY = ", ".join(['"id"', '"file_name"', '"failed_as"', '"sha256"', '"reason"',
                    '"requested_by"', text_time('"requested_at"')])


def glob_to_regex(glob: str) -> str:
    """A file-name glob (`*`, `?`, `[...]`, `[!...]`) as an anchored POSIX expression."""
    out, i = ["^"], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        # A `]` first in the set (after any `!` or `^`) is one of its characters, as in
        # SQLite's GLOB: the set's end is looked for after it, or `[]a]` is `[]`, no regex.
        elif c == "[" and (end := glob.find(
                "]", i + 2 + (glob[i + 1:i + 2] in ("!", "^")))) > 0:
            body = glob[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out) + "$"


def _load(row: Sequence[Any]) -> Load:
    return Load(*row)


def _of_feed(feed: str | None) -> tuple[str, tuple[str, ...]]:
    """` AND "feed" = %s` and its value, for a question about one feed's loads."""
    return ('', ()) if feed is None else (' AND "feed" = %s', (feed,))


class PostgresHistory:
    """The read-only history of one PostgreSQL warehouse, on a session it is given."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # The raw ledger, not the analysts' view: the same rows, without the view's
        # indirection in every plan.
        self.books = conn.books

    def close(self) -> None:
        self.conn.close()

    def _rows(self, text: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(stmt(text), params).fetchall()

    def schema_version(self) -> int:
        return schema.check(self.conn)

    def recent_loads(self, where: LoadFilter) -> list[Load]:
        clauses: list[str] = []
        params: list[object] = []
        if where.file is not None:
            glob = any(c in where.file for c in "*?[")
            clauses.append('"file_name" ~ %s' if glob else '"file_name" = %s')
            params.append(glob_to_regex(where.file) if glob else where.file)
        for clause, value in (('"status" = %s', where.status),
                              ('"finished_at" >= %s::timestamptz', where.since),
                              ('"finished_at" < %s::timestamptz', where.until),
                              ('"feed" = %s', where.feed)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        limit = "ALL" if where.limit < 0 else str(int(where.limit))
        return [_load(r) for r in self._rows(
            f"SELECT {_LOAD} FROM {self.books.ledger}"
            + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + f' ORDER BY "id" DESC LIMIT {limit}', params)]

    def attempts(self, names: Sequence[str]) -> list[Load]:
        return [_load(r) for r in self._rows(
            f'SELECT {_LOAD} FROM {self.books.ledger} WHERE "file_name" = ANY(%s) ORDER BY "id"',
            (list(names),))]

    def retries(self, names: Sequence[str]) -> list[Retry]:
        return [Retry(*r) for r in self._rows(
            f'SELECT {_RETRY} FROM {self.books.retries} WHERE "file_name" = ANY(%s) '
            'OR "failed_as" = ANY(%s) ORDER BY "id"', (list(names), list(names)))]

    def daemons(self) -> list[Daemon]:
        rows = self._rows(
            f'SELECT "node", "pid", {text_time(chr(34) + "started_at" + chr(34))}, "inbox", '
            f'"work", "processed", "failed", "created", '
            f'{text_time(chr(34) + "heartbeat_at" + chr(34))}, {nodes.in_hand(self.books)}, '
            f'coalesce("lease_until" > now(), false), {nodes.STATE}, '
            f'{text_time(chr(34) + "lease_until" + chr(34))} FROM {self.books.daemons} AS d '
            'ORDER BY "started_at" DESC')
        return [Daemon(str(node), int(pid), str(started), str(inbox), str(work),
                       str(processed), str(failed), json.loads(created), beat, in_hand,
                       bool(alive), state, until if state == "lost" else None)
                for node, pid, started, inbox, work, processed, failed, created, beat,
                in_hand, alive, state, until in rows]

    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None:
        if sidecar is None:
            return None
        return recording(self._rows(
            f'SELECT {_RETRY}, "sidecar" FROM {self.books.retries} WHERE "failed_as" = %s '
            'ORDER BY "id" DESC', (failed_as,)), sidecar)

    def tally(self, since: str | None = None, until: str | None = None,
              feed: str | None = None) -> Tally:
        bounds = [(f'"finished_at" {op} %s::timestamptz', value)
                  for op, value in ((">=", since), ("<=", until)) if value]
        bounds += [('"feed" = %s', feed)] if feed is not None else []
        where = ("WHERE " + " AND ".join(c for c, _ in bounds)) if bounds else ""
        files = {str(status): (int(n), int(loads)) for status, n, loads in self._rows(
            'SELECT "status", count(*), sum("loads") FROM (SELECT DISTINCT ON ("file_name") '
            '"status", count(*) OVER (PARTITION BY "file_name") AS "loads" '
            f'FROM {self.books.ledger} {where} ORDER BY "file_name", "id" DESC) AS latest '
            'GROUP BY "status"', tuple(v for _, v in bounds))}
        return Tally(files.get("processed", (0, 0))[0], files.get("failed", (0, 0))[0],
                     sum(loads for _, loads in files.values()))

    def last_success(self, now: str, feed: str | None = None) -> Load | None:
        of_feed, params = _of_feed(feed)
        rows = self._rows(f"SELECT {_LOAD} FROM {self.books.ledger} WHERE \"status\" = "
                          f"'processed' AND \"finished_at\" <= %s::timestamptz{of_feed} "
                          'ORDER BY "id" DESC LIMIT 1', (now, *params))
        return _load(rows[0]) if rows else None

    def superseding(self, feed: str, run_date: str, after: str) -> Load | None:
        """The latest processed load of the feed's run date (its rows stand: a load of
        an earlier drop is recorded with an error and merges nothing), if the drop that
        `drops` records for the date was dropped after `after`; without such a row (a
        load before `drops` had feeds), if that load began after `after`."""
        rows = self._rows(
            f"SELECT {_LOAD} FROM {self.books.ledger} WHERE \"status\" = 'processed' "
            'AND "error" IS NULL AND "feed" = %s AND "run_date" = %s::date '
            'AND coalesce((SELECT d."dropped_at" > %s::timestamptz '
            f'FROM {self.books.drops} AS d WHERE d."feed" = %s AND d."run_date" = %s::date), '
            '"started_at" > %s::timestamptz) ORDER BY "id" DESC LIMIT 1',
            (feed, run_date, after, feed, run_date, after))
        return _load(rows[0]) if rows else None

    def loads_in_the_future(self, now: str) -> int:
        [(count,)] = self._rows(f'SELECT count(*) FROM {self.books.ledger} '
                                'WHERE "finished_at" > %s::timestamptz', (now,))
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
        of_feed, params = _of_feed(feed)
        rows = self._rows(
            # date_part, not extract: double precision, where extract's numeric took
            # twice as long (PostgreSQL 14 and later).
            """SELECT floor(date_part('epoch', "finished_at") / %s)::bigint AS "slice", """
            f'"status", count(*), coalesce(sum("rows"), 0), min({_TOOK}), max({_TOOK}), '
            f'sum({_TOOK}), min("file_name") {self._finished}{of_feed} '
            'GROUP BY "slice", "status" ORDER BY "slice", "status"',
            (seconds, since, until, *params))
        return [LoadBin(int(n), str(status), int(loads), int(total), float(low), float(high),
                        float(busy), str(name) if loads == 1 else None)
                for n, status, loads, total, low, high, busy, name in rows]

    @property
    def _finished(self) -> str:
        """The ledger's loads that finished between two times (both bound)."""
        return (f'FROM {self.books.ledger} WHERE "finished_at" >= %s::timestamptz '
                'AND "finished_at" <= %s::timestamptz')

    def median_load(self, since: str, until: str, feed: str | None = None) -> float | None:
        of_feed, params = _of_feed(feed)
        [(median,)] = self._rows(
            f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {_TOOK}) "
            f"{self._finished}{of_feed}", (since, until, *params))
        return None if median is None else float(median)



# A load's duration in seconds (clamped at 0: a clock set back mid-load).
_TOOK = """greatest(0, date_part('epoch', "finished_at" - "started_at"))"""
