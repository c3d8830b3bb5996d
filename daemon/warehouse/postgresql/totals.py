"""What a feed's fact table holds, for `report`, `show` and the status page (PostgreSQL).

Per run date (`day_totals`) and per value of its `Totals.group_by` column
(`group_totals`): the rows and the feed's figures, in `Totals` order, distinct counts
then sums: of integers an int, of floats a float, of decimals the exact sum's text
(`numeric` sums exactly: `"1234.50"`), None where every value summed is null. A feed
whose table does not exist yet answers as an empty one; one without a date column has
no days.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.warehouse.api import DayRows, DayTotal, Figure, Figures, GroupTotal
from filedrop_etl.daemon.warehouse.postgresql import catalog
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.sql import Tables, date_range, q


def _rows(conn: Connection, text: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    return conn.execute(stmt(text), params).fetchall()


def _figure(value: object, kind: str) -> Figure:
    if value is None:
        return None
    if kind == "decimal":
        return str(value)  # summed as text by the query: the exact decimal
    if kind == "float":
        return float(str(value))
    return int(str(value))


def _exists(conn: Connection, contract: Contract) -> bool:
    return bool(catalog.existing(conn, [contract.fact_table]))


def _figures(contract: Contract, but: str | None = None) -> list[tuple[str, str, str]]:
    """(label, SQL, kind summed) of each of the feed's figures, but a distinct count of
    `but` (a group's own column: always 1)."""
    totals = contract.totals
    return ([(label, f"count(DISTINCT {q(c)})", "integer") for label, c in totals.distinct
             if c != but]
            + [(label, f"sum({q(c)})" + ("::text" if contract.column(c).kind == "decimal"
                                         else ""), contract.column(c).kind)
               for label, c in totals.sums])


def _valued(figures: list[tuple[str, str, str]], values: Sequence[object]) -> Figures:
    return tuple((label, _figure(v, kind))
                 for (label, _, kind), v in zip(figures, values, strict=True))


def day_totals(conn: Connection, contract: Contract, since: str | None,
               until: str | None) -> list[DayTotal]:
    if contract.date_column is None or not _exists(conn, contract):
        return []
    t = Tables(contract)
    where, params = date_range(t.date, since, until, "%s::date")
    figures = _figures(contract)
    shown = "".join(f", {sql}" for _, sql, _ in figures)
    return [DayTotal(str(d), int(n), _valued(figures, rest)) for d, n, *rest in _rows(
        conn, f"SELECT to_char({t.date}, 'YYYY-MM-DD'), count(*){shown} FROM {t.fact} "
              f"{where} GROUP BY {t.date} ORDER BY {t.date}", params)]


def group_totals(conn: Connection, contract: Contract, since: str | None,
                 until: str | None) -> list[GroupTotal]:
    group = contract.totals.group_by
    if group is None or not _exists(conn, contract):
        return []
    t = Tables(contract)
    where, params = (date_range(t.date, since, until, "%s::date")
                     if contract.date_column is not None else ("", []))
    figures = _figures(contract, group)
    shown = "".join(f", {sql}" for _, sql, _ in figures)
    # Largest first by the first sum (its column in the select), by rows where the feed
    # sums nothing; then by the value.
    first = len(figures) - len(contract.totals.sums) + 3
    order = f"{first} DESC NULLS LAST" if contract.totals.sums else "2 DESC"
    value = (q(group) if contract.column(group).kind in ("integer", "string")
             else f"{q(group)}::text")
    return [GroupTotal(g if g is None or isinstance(g, int) else str(g), int(n),
                       _valued(figures, rest)) for g, n, *rest in _rows(
        conn, f"SELECT {value}, count(*){shown} FROM {t.fact} {where} "
              f"GROUP BY {q(group)} ORDER BY {order}, {q(group)}", params)]


def has_rows(conn: Connection, contract: Contract) -> bool:
    if not _exists(conn, contract):
        return False
    [(found,)] = _rows(conn, f"SELECT EXISTS (SELECT 1 FROM {Tables(contract).fact})")
    return bool(found)


def rows_per_day(conn: Connection, contract: Contract, days: int,
                 latest: str) -> list[DayRows]:
    if contract.date_column is None or not _exists(conn, contract):
        return []
    t = Tables(contract)
    date = t.date
    [(before, newest)] = _rows(
        conn, f"SELECT (SELECT max({date}) FROM {t.fact} WHERE {date} <= %s::date), "
              f"(SELECT max({date}) FROM {t.fact})", (latest,))
    last = before or newest
    if last is None:
        return []
    upper, bound = ("", ()) if last == newest else (f" AND {date} <= %s", (last,))
    return [DayRows(str(d), int(n)) for d, n in _rows(
        conn, f"SELECT to_char({date}, 'YYYY-MM-DD'), count(*) FROM {t.fact} "
              f"WHERE {date} > %s::date - %s{upper} GROUP BY {date} ORDER BY {date}",
        (last, days, *bound))]
