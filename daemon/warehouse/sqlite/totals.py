"""What a feed's fact table holds, for `report`, `show` and the status page: read-only.

Per date, the rows and the feed's `Totals` figures (`day_totals`); per value of its
`group_by` column, the same (`group_totals`); whether it holds rows; and its rows per
date over the last days, read from `<fact>_days`. Each figure is computed in the
database: a distinct count, or a sum in the kind's own arithmetic. A decimal is stored as
its fixed-scale text (`types`), so its sum is taken exactly as the integer of its digits
(`12.50` as 1250) and given back as the exact decimal's text; a sum too large for
SQLite's 64-bit integers (or of a precision beyond 18 digits) is taken in Python's
decimals instead. A feed whose table does not exist yet reads as an empty one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from decimal import Context, Decimal
from typing import Any

from filedrop_etl.config.contract import Column, Contract
from filedrop_etl.daemon.warehouse.api import DayRows, DayTotal, Figure, Figures, GroupTotal
from filedrop_etl.daemon.warehouse.sql import DAYS_SUFFIX, Tables, date_range, q
from filedrop_etl.daemon.warehouse.sqlite.types import decimal_text

# The largest precision whose digits fit SQLite's 64-bit integer.
_INTEGER_DIGITS = 18
_DECIMAL_SUM = "filedrop_decimal_sum"
# Enough digits for any sum of 38-digit decimals: no rounding.
_EXACT = Context(prec=80)


class _DecimalSum:
    """An exact sum of decimal texts, for precisions SQLite's integers can not hold."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total = _EXACT.add(self.total or Decimal(0), Decimal(value))

    def finalize(self) -> str | None:
        return None if self.total is None else format(self.total, "f")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def has_rows(conn: sqlite3.Connection, contract: Contract) -> bool:
    """Whether the fact table holds any row at all (its first row, not a count)."""
    return _has_table(conn, contract.fact_table) and bool(conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {q(contract.fact_table)})").fetchone()[0])


def _date_range(t: Tables, since: str | None, until: str | None) -> tuple[str, list[str]]:
    """The WHERE clause of dates `since` to `until` (each optional), with a range of the
    key's leading column beside each bound where keys carry their date: the fact has no
    date index then, and its key's B-tree serves the range."""
    where, params = date_range(t.date, since, until, "?")
    contract = t.contract
    if not contract.keys_carry_their_date:
        return where, params
    if since is not None:
        where += f" AND {t.lead} >= ?"
        params.append(contract.key_bounds(since, since)[0])
    if until is not None:
        where += f" AND {t.lead} < ?"
        params.append(contract.key_bounds(until, until)[1])
    return where, params


def _figures(contract: Contract, exact: bool,
             skip: str | None = None) -> list[tuple[str, str, Column | None]]:
    """Each figure's label, SQL and (for a sum) column, distinct counts first; `exact`:
    decimal sums in Python's decimals (an integer sum overflowed)."""
    figures: list[tuple[str, str, Column | None]] = [
        (label, f"COUNT(DISTINCT {q(name)})", None)
        for label, name in contract.totals.distinct if name != skip]
    for label, name in contract.totals.sums:
        column = contract.column(name)
        if column.kind == "float":
            sql = f"TOTAL({q(name)})"
        elif column.kind != "decimal":
            sql = f"SUM({q(name)})"
        elif exact or (column.precision or 0) > _INTEGER_DIGITS:
            sql = f"{_DECIMAL_SUM}({q(name)})"
        else:
            # The canonical text's digits are the value times 10^scale.
            sql = f"SUM(CAST(REPLACE({q(name)}, '.', '') AS INTEGER))"
        figures.append((label, sql, column))
    return figures


def _value(column: Column | None, value: Any) -> Figure:
    """A figure as SQLite gave it, in the seam's form: a decimal sum as its exact text."""
    if column is None or value is None:
        return value  # type: ignore[no-any-return]
    if column.kind == "float":
        return float(value)
    if column.kind == "decimal" and not isinstance(value, str):
        scale = column.scale or 0
        return decimal_text(Decimal(int(value)).scaleb(-scale), scale)
    return value  # type: ignore[no-any-return]


def _grouped(conn: sqlite3.Connection, contract: Contract, head: str, rest: str,
             params: Sequence[str], skip: str | None = None) -> list[tuple[Any, int, Figures]]:
    """`SELECT head, COUNT(*), <figures> FROM fact rest`: each row's head, rows and
    figures; in Python's decimals where SQLite's integer sum overflows."""
    conn.create_aggregate(_DECIMAL_SUM, 1, _DecimalSum)  # type: ignore[arg-type]
    for exact in (False, True):
        figures = _figures(contract, exact, skip)
        select = ", ".join(["COUNT(*)", *(sql for _, sql, _ in figures)])
        try:
            rows = conn.execute(f"SELECT {head}, {select} FROM {q(contract.fact_table)} "
                                f"{rest}", params).fetchall()
        except sqlite3.OperationalError as exc:
            if exact or "integer overflow" not in str(exc):
                raise
            continue
        return [(first, int(n), tuple((label, _value(column, v)) for (label, _, column), v
                                      in zip(figures, values, strict=True)))
                for first, n, *values in rows]
    raise AssertionError("unreachable")


def day_totals(conn: sqlite3.Connection, contract: Contract, since: str | None,
               until: str | None) -> list[DayTotal]:
    """Per date of the fact table: rows and the feed's figures, oldest first."""
    if contract.date_column is None or not _has_table(conn, contract.fact_table):
        return []
    t = Tables(contract)
    where, params = _date_range(t, since, until)
    return [DayTotal(str(d), n, figures) for d, n, figures in _grouped(
        conn, contract, t.date, f"{where} GROUP BY {t.date} ORDER BY {t.date}", params)]


def _order(total: GroupTotal, sums: int) -> tuple[Any, ...]:
    lead = total.figures[-sums][1] if sums else total.rows
    size = Decimal(lead) if isinstance(lead, str) else (lead if lead is not None else 0)
    return (-size, total.group is None, total.group)


def group_totals(conn: sqlite3.Connection, contract: Contract, since: str | None,
                 until: str | None) -> list[GroupTotal]:
    """Per value of the feed's `group_by` column, over the dates `since` to `until`:
    rows and figures (a distinct count of the group column itself left out), largest
    first by the first sum (by rows where the feed sums nothing), then by value."""
    group = contract.totals.group_by
    if group is None or not _has_table(conn, contract.fact_table):
        return []
    t = Tables(contract)
    where, params = (_date_range(t, since, until) if contract.date_column is not None
                     else ("", []))
    totals = [GroupTotal(g, n, figures) for g, n, figures in _grouped(
        conn, contract, q(group), f"{where} GROUP BY {q(group)}", params, skip=group)]
    return sorted(totals, key=lambda total: _order(total, len(contract.totals.sums)))


def rows_per_day(conn: sqlite3.Connection, contract: Contract, days: int,
                 latest: str) -> list[DayRows]:
    """Fact rows per date over the `days` calendar days up to the newest date not after
    `latest` (ISO; today, give or take a time zone), oldest first; up to the newest of
    all when every date is later.

    One far-future date (a valid `9999-12-31` file) must not leave only itself in the
    window. Read from the rows-per-day table each load keeps (version 4): the status
    page asks on every refresh, and the fact may hold years of rows. A database not yet
    migrated is counted on its date index, from its newest end.
    """
    if contract.date_column is None or not _has_table(conn, contract.fact_table):
        return []
    t = Tables(contract)
    kept = _has_table(conn, contract.fact_table + DAYS_SUFFIX)
    table, date = (t.days if kept else t.fact), t.date
    # The anchor on its own first: joined into the count, it made SQLite group the rows in
    # a temporary B-tree instead of along the index (1.1 s instead of 0.2 on 3M rows).
    before, newest = conn.execute(
        f"SELECT (SELECT MAX({date}) FROM {table} WHERE {date} <= ?), "
        f"(SELECT MAX({date}) FROM {table})", (latest,)).fetchone()
    last = before or newest
    if last is None:
        return []
    # An upper bound only when there are later days: checked on every row, it costs.
    upper, bound = ("", ()) if last == newest else (f" AND {date} <= ?", (last,))
    rows = '"rows"' if kept else "COUNT(*)"
    group = "" if kept else f" GROUP BY {date}"
    return [DayRows(str(d), int(n)) for d, n in conn.execute(
        f"SELECT {date}, {rows} FROM {table} WHERE {date} > date(?, ?){upper}"
        f"{group} ORDER BY {date}", (last, f"-{days} days", *bound))]
