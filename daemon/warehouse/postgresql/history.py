"""Read-only questions to the PostgreSQL warehouse: loads, retries, nodes, the data.

The same answers as `SqliteHistory`, in the same forms: times as the ledger's text
(`YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC), run dates as `YYYY-MM-DD`, amounts summed as
`double precision`. A glob on file names becomes an anchored regular expression; a
limit of -1 is none. It never writes, and the session it is given is read-only.
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
from filedrop_etl.daemon.warehouse.postgresql import schema
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.sql import Tables, date_range
from filedrop_etl.daemon.warehouse.values import recording


def text_time(column: str) -> str:
    """A `timestamptz` column as the ledger's text."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


_LOAD = ", ".join([
    '"id"', '"file_name"', '"status"', """to_char("run_date", 'YYYY-MM-DD')""", '"rows"',
    '"inserted"', '"updated"', '"unchanged"', '"deleted"', '"error"', '"write_mode"',
    '"sha256"', '"bytes"', text_time('"started_at"'), text_time('"finished_at"'),
    # TODO(postgresql helper): the ledger's "feed" column.
    "'transactions'"])
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


class PostgresHistory:
    """The read-only history of one PostgreSQL warehouse, on a session it is given."""

    def __init__(self, conn: Connection, contract: Contract) -> None:
        self.conn, self.t = conn, Tables(contract)

    def close(self) -> None:
        self.conn.close()

    def _rows(self, text: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(stmt(text), params).fetchall()

    def schema_version(self) -> int:
        return schema.check(self.conn, self.t.contract)

    def recent_loads(self, where: LoadFilter) -> list[Load]:
        clauses: list[str] = []
        params: list[object] = []
        if where.file is not None:
            glob = any(c in where.file for c in "*?[")
            clauses.append('"file_name" ~ %s' if glob else '"file_name" = %s')
            params.append(glob_to_regex(where.file) if glob else where.file)
        for clause, value in (('"status" = %s', where.status),
                              ('"finished_at" >= %s::timestamptz', where.since),
                              ('"finished_at" < %s::timestamptz', where.until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        limit = "ALL" if where.limit < 0 else str(int(where.limit))
        return [_load(r) for r in self._rows(
            f"SELECT {_LOAD} FROM {self.t.ledger}"
            + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + f' ORDER BY "id" DESC LIMIT {limit}', params)]

    def attempts(self, names: Sequence[str]) -> list[Load]:
        return [_load(r) for r in self._rows(
            f'SELECT {_LOAD} FROM {self.t.ledger} WHERE "file_name" = ANY(%s) ORDER BY "id"',
            (list(names),))]

    def retries(self, names: Sequence[str]) -> list[Retry]:
        return [Retry(*r) for r in self._rows(
            f'SELECT {_RETRY} FROM {self.t.retries} WHERE "file_name" = ANY(%s) '
            'OR "failed_as" = ANY(%s) ORDER BY "id"', (list(names), list(names)))]

    def daemons(self) -> list[Daemon]:
        rows = self._rows(
            f'SELECT "node", "pid", {text_time(chr(34) + "started_at" + chr(34))}, "inbox", '
            f'"work", "processed", "failed", "created", '
            f'{text_time(chr(34) + "heartbeat_at" + chr(34))}, "file_in_hand", '
            f'coalesce("lease_until" > now(), false) FROM {self.t.daemons} '
            'ORDER BY "started_at" DESC')
        return [Daemon(str(node), int(pid), str(started), str(inbox), str(work),
                       str(processed), str(failed), json.loads(created), beat, in_hand,
                       bool(alive))
                for node, pid, started, inbox, work, processed, failed, created, beat,
                in_hand, alive in rows]

    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None:
        if sidecar is None:
            return None
        return recording(self._rows(
            f'SELECT {_RETRY}, "sidecar" FROM {self.t.retries} WHERE "failed_as" = %s '
            'ORDER BY "id" DESC', (failed_as,)), sidecar)

    def tally(self, since: str | None = None, until: str | None = None,
              feed: str | None = None) -> Tally:
        bounds = [(f'"finished_at" {op} %s::timestamptz', value)
                  for op, value in ((">=", since), ("<=", until)) if value]
        where = ("WHERE " + " AND ".join(c for c, _ in bounds)) if bounds else ""
        files = {str(status): (int(n), int(loads)) for status, n, loads in self._rows(
            'SELECT "status", count(*), sum("loads") FROM (SELECT DISTINCT ON ("file_name") '
            '"status", count(*) OVER (PARTITION BY "file_name") AS "loads" '
            f'FROM {self.t.ledger} {where} ORDER BY "file_name", "id" DESC) AS latest '
            'GROUP BY "status"', tuple(v for _, v in bounds))}
        return Tally(files.get("processed", (0, 0))[0], files.get("failed", (0, 0))[0],
                     sum(loads for _, loads in files.values()))

    def last_success(self, now: str, feed: str | None = None) -> Load | None:
        rows = self._rows(f"SELECT {_LOAD} FROM {self.t.ledger} WHERE \"status\" = "
                          "'processed' AND \"finished_at\" <= %s::timestamptz "
                          'ORDER BY "id" DESC LIMIT 1', (now,))
        return _load(rows[0]) if rows else None

    def loads_in_the_future(self, now: str) -> int:
        [(count,)] = self._rows(f'SELECT count(*) FROM {self.t.ledger} '
                                'WHERE "finished_at" > %s::timestamptz', (now,))
        return int(count)

    # TODO(postgresql helper): the feed's own figures, from `contract.totals`.
    def day_totals(self, contract: Contract, since: str | None = None,
                   until: str | None = None) -> list[DayTotal]:
        where, params = date_range(self.t.date, since, until, "%s::date")
        date = self.t.date
        return [DayTotal(str(d), int(n), (("customers", int(c)), ("amount", float(a))))
                for d, n, c, a in self._rows(
            f"SELECT to_char({date}, 'YYYY-MM-DD'), count(*), count(DISTINCT "
            f'"customer_id"), coalesce(sum("amount"), 0) FROM {self.t.fact} {where} '
            f"GROUP BY {date} ORDER BY {date}", params)]

    def group_totals(self, contract: Contract, since: str | None = None,
                     until: str | None = None) -> list[GroupTotal]:
        where, params = date_range(self.t.date, since, until, "%s::date")
        return [GroupTotal(int(c), int(n), (("amount", float(a)),)) for c, n, a in self._rows(
            'SELECT "customer_id", count(*), coalesce(sum("amount"), 0) AS "total" '
            f'FROM {self.t.fact} {where} GROUP BY "customer_id" '
            'ORDER BY "total" DESC, "customer_id"', params)]

    def has_rows(self, contract: Contract) -> bool:
        [(found,)] = self._rows(f"SELECT EXISTS (SELECT 1 FROM {self.t.fact})")
        return bool(found)

    def rows_per_day(self, contract: Contract, days: int, latest: str) -> list[DayRows]:
        date = self.t.date
        [(before, newest)] = self._rows(
            f"SELECT (SELECT max({date}) FROM {self.t.fact} WHERE {date} <= %s::date), "
            f"(SELECT max({date}) FROM {self.t.fact})", (latest,))
        last = before or newest
        if last is None:
            return []
        upper, bound = ("", ()) if last == newest else (f" AND {date} <= %s", (last,))
        return [DayRows(str(d), int(n)) for d, n in self._rows(
            f"SELECT to_char({date}, 'YYYY-MM-DD'), count(*) FROM {self.t.fact} "
            f"WHERE {date} > %s::date - %s{upper} GROUP BY {date} ORDER BY {date}",
            (last, days, *bound))]

    def load_bins(self, since: str, until: str, seconds: int,
                  feed: str | None = None) -> list[LoadBin]:
        rows = self._rows(
            # date_part, not extract: double precision, where extract's numeric took
            # twice as long (PostgreSQL 14 and later).
            """SELECT floor(date_part('epoch', "finished_at") / %s)::bigint AS "slice", """
            f'"status", count(*), coalesce(sum("rows"), 0), min({_TOOK}), max({_TOOK}), '
            f'sum({_TOOK}), min("file_name") {_FINISHED.format(self.t.ledger)} '
            'GROUP BY "slice", "status" ORDER BY "slice", "status"', (seconds, since, until))
        return [LoadBin(int(n), str(status), int(loads), int(total), float(low), float(high),
                        float(busy), str(name) if loads == 1 else None)
                for n, status, loads, total, low, high, busy, name in rows]

    def median_load(self, since: str, until: str, feed: str | None = None) -> float | None:
        [(median,)] = self._rows(
            f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {_TOOK}) "
            f"{_FINISHED.format(self.t.ledger)}", (since, until))
        return None if median is None else float(median)


# A load's duration in seconds (clamped at 0: a clock set back mid-load).
_TOOK = """greatest(0, date_part('epoch', "finished_at" - "started_at"))"""
_FINISHED = ('FROM {} WHERE "finished_at" >= %s::timestamptz '
             'AND "finished_at" <= %s::timestamptz')
