"""The SQLite merge: staged rows into the fact table, rewriting only rows that changed.

Reads the attached staging database (`connection.attached_staging`); runs inside the
load's transaction, which the caller holds. All SQL binds its values and quotes its
identifiers, which come only from the contract (`daemon.warehouse.sql.Tables`). A key
may span several columns; where a feed's keys are dated (`Contract.dated_keys`) a date's
rows are found by the key's own B-tree, and one upsert does the merge; else a date's rows
are found by the fact's date index, and the merge inserts the new keys first, updating
the others only where there are any, so that the usual file (a new day) meets the fact
table once, in its insert.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from filedrop_etl.daemon.warehouse.api import MergeCounts, MergePlan
from filedrop_etl.daemon.warehouse.sql import Tables, q
from filedrop_etl.daemon.warehouse.sqlite.connection import staged_table


def surplus_rows(conn: sqlite3.Connection, tables: Tables, columns: tuple[str, ...],
                 limit: int) -> tuple[int, list[str]]:
    """Staged rows beyond the first for each repeated combination of values of `columns`
    none of which is null, and up to `limit` of those combinations (as text, joined by
    `", "`); the samples are looked for only when there are repeats."""
    staged = staged_table(tables.contract.staging_table)
    cols = ", ".join(map(q, columns))
    if len(columns) == 1:
        total, = conn.execute(
            f"SELECT COUNT({cols}) - COUNT(DISTINCT {cols}) FROM {staged}").fetchone()
    else:
        # SQLite counts no DISTINCT of several columns: the groups' surplus instead.
        total, = conn.execute(
            f'SELECT TOTAL("n" - 1) FROM (SELECT COUNT(*) AS "n" FROM {staged} '
            f"WHERE {_none_null(columns)} GROUP BY {cols} HAVING COUNT(*) > 1)").fetchone()
    if not total:
        return 0, []
    samples = conn.execute(
        f"SELECT {cols} FROM {staged} WHERE {_none_null(columns)} GROUP BY {cols} "
        f"HAVING COUNT(*) > 1 ORDER BY {cols} LIMIT ?", (limit,)).fetchall()
    return int(total), [", ".join(map(str, sample)) for sample in samples]


def _none_null(columns: tuple[str, ...]) -> str:
    return " AND ".join(f"{q(c)} IS NOT NULL" for c in columns)


def _differs(tables: Tables, left: str, right: str) -> str:
    return " OR ".join(f"{left}.{q(n)} IS NOT {right}.{q(n)}"
                       for n in tables.contract.value_columns) or "false"


def merge(conn: sqlite3.Connection, tables: Tables, plan: MergePlan, *, rows: int,
          loaded_at: str, load_id: int) -> MergeCounts:
    """Upsert the staged rows (unique keys) into the fact table, rewriting only rows whose
    values changed; keep the rows-per-day table true.

    With `plan.replace_date`, the file is the whole truth for that run date: fact rows of
    the date whose key is absent from staging are deleted. Keys are fed to the upsert in
    order (sorted here unless `keys_sorted`): the fact's B-tree then grows at its right
    edge. `keys_sorted` promises strictly ascending keys, so unique ones; `keys_counted`
    says the caller counted repeats in staging and found none (`surplus_rows`).
    Otherwise the keys are counted here, and a repeated key raises `RuntimeError`: an
    upsert would silently write its row twice. (On unsorted keys that count costs about
    as much as the merge itself, so it is not paid twice.)

    Where keys are dated (they carry their date, or lead with it), the file's rows can
    only meet rows of its own date, found by the key's B-tree: the split of SQLite's
    change count into inserts and updates is that date's count before and after, and a
    new day (the usual file) has none. A feed without a date column keeps no rows per
    date.
    """
    contract, staged = tables.contract, staged_table(tables.contract.staging_table)
    if not (plan.keys_sorted or plan.keys_counted):
        repeats, _ = surplus_rows(conn, tables, contract.key, limit=0)
        if repeats:
            raise RuntimeError(f"{repeats} staged rows repeat a key: the caller must refuse "
                               "repeated keys before the merge")
    day = plan.run_date or plan.replace_date
    dated = day is not None and contract.dated_keys
    order = "" if plan.keys_sorted else f" ORDER BY {tables.key}"
    before = after = 0
    touched: list[str] = []
    if dated and day is not None:
        before = _rows_of_date(conn, tables, day)
        changed = _upsert(conn, tables, order, loaded_at, load_id)
        # A new day's every change is an insert, and an identical re-run changes
        # nothing: only a re-run that changed rows needs the day counted again.
        after = before + changed
        if before and changed:
            after = _rows_of_date(conn, tables, day)
        inserted = after - before
    else:
        inserted, updated, touched = _insert_then_update(conn, tables, order, rows,
                                                         loaded_at, load_id)
        changed = inserted + updated
    counts = MergeCounts.of_upsert(rows, changed, inserted)
    deleted = 0
    if plan.replace_date is not None:
        # After the upsert every staged key is a fact row of the date (the checks saw to
        # that), so the date's rows beyond `rows` are exactly those to delete; counting
        # them spares the anti-join when there are none, the usual case.
        day_rows = after if dated else _rows_of_date(conn, tables, plan.replace_date)
        if day_rows > rows:
            where, bound = _of_date(tables, plan.replace_date)
            deleted = conn.execute(
                f"DELETE FROM {tables.fact} WHERE {where} "
                f"AND {tables.key_row} NOT IN (SELECT {tables.key} FROM {staged})",
                bound).rowcount
    for date in ([day] if dated and day is not None else touched):
        count = after - deleted if dated else _rows_of_date(conn, tables, date)
        _set_rows_of_date(conn, tables, date, count)
    return replace(counts, deleted=deleted)


def _upsert(conn: sqlite3.Connection, tables: Tables, order: str, loaded_at: str,
            load_id: int) -> int:
    """Insert the staged rows, updating those whose key the fact holds with other values;
    SQLite's count of rows changed (inserted or updated)."""
    contract, staged = tables.contract, staged_table(tables.contract.staging_table)
    target = tables.columns((*contract.column_names, "loaded_at", "load_id"))
    assignments = ", ".join(f"{q(n)} = excluded.{q(n)}"
                            for n in (*contract.value_columns, "loaded_at", "load_id"))
    # `WHERE true` disambiguates ON CONFLICT after a SELECT; the DO UPDATE's WHERE is
    # what keeps `loaded_at` stable for rows whose values did not change.
    return int(conn.execute(
        f"INSERT INTO {tables.fact} ({target}) "
        f"SELECT {tables.columns()}, ?, ? FROM {staged} WHERE true{order} "
        f"ON CONFLICT ({tables.key}) DO UPDATE SET {assignments} "
        f"WHERE {_differs(tables, tables.fact, 'excluded')}",
        (loaded_at, load_id)).rowcount)


def _insert_then_update(conn: sqlite3.Connection, tables: Tables, order: str, rows: int,
                        loaded_at: str, load_id: int) -> tuple[int, int, list[str]]:
    """Where a key may be anywhere in the table (it does not carry its date): the staged
    rows inserted whose key is new (SQLite's change count is then the inserts alone),
    and only if some key was there already, those rows updated where their values
    differ: a new day (the usual file) meets the fact table once, in its insert, as an
    upsert would, never in a count of the keys first. Returns the rows inserted, the
    rows updated, and every date whose row count may have changed (the staged rows'
    dates, and those of the rows a key moved away from)."""
    contract, staged = tables.contract, staged_table(tables.contract.staging_table)
    target = tables.columns((*contract.column_names, "loaded_at", "load_id"))
    inserted = int(conn.execute(
        f"INSERT INTO {tables.fact} ({target}) "
        f"SELECT {tables.columns()}, ?, ? FROM {staged} WHERE true{order} "
        f"ON CONFLICT ({tables.key}) DO NOTHING", (loaded_at, load_id)).rowcount)
    dated = contract.date_column is not None
    dates = {str(d) for d, in conn.execute(f"SELECT DISTINCT {tables.date} FROM {staged}")
             if d is not None} if dated else set()
    updated = 0
    if inserted < rows and contract.value_columns:
        on = tables.joined(tables.fact, "s")
        if dated:
            # Before the update moves them: the dates of the rows whose key was there.
            dates |= {str(d) for d, in conn.execute(
                f"SELECT DISTINCT {tables.fact}.{tables.date} FROM {staged} AS s "
                f"JOIN {tables.fact} ON {on}") if d is not None}
        sets = ", ".join(f"{q(n)} = s.{q(n)}" for n in contract.value_columns)
        # The rows inserted above are among those joined, and equal: never rewritten.
        updated = int(conn.execute(
            f'UPDATE {tables.fact} SET {sets}, "loaded_at" = ?, "load_id" = ? '
            f"FROM {staged} AS s WHERE {on} AND ({_differs(tables, tables.fact, 's')})",
            (loaded_at, load_id)).rowcount)
    return inserted, updated, sorted(dates)


def _of_date(tables: Tables, run_date: str) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (and its values) of a date's fact rows: a range of the key's
    leading column where keys carry their date, or its leading column where that is the
    date (both the key's own B-tree), else the date index."""
    if tables.contract.keys_carry_their_date:
        return f"{tables.lead} >= ? AND {tables.lead} < ?", tables.contract.key_bounds(
            run_date, run_date)
    return f"{tables.date} = ?", (run_date,)


def _rows_of_date(conn: sqlite3.Connection, tables: Tables, run_date: str) -> int:
    where, bound = _of_date(tables, run_date)
    count, = conn.execute(f"SELECT COUNT(*) FROM {tables.fact} WHERE {where}",
                          bound).fetchone()
    return int(count)


def _set_rows_of_date(conn: sqlite3.Connection, tables: Tables, run_date: str,
                      rows: int) -> None:
    if rows:
        # Written only when it changed: an identical re-run leaves every page of the
        # database alone but its ledger row's.
        conn.execute(f'INSERT INTO {tables.days} ({tables.date}, "rows") VALUES (?, ?) '
                     f'ON CONFLICT ({tables.date}) DO UPDATE SET "rows" = excluded."rows" '
                     f'WHERE "rows" IS NOT excluded."rows"', (run_date, rows))
    else:
        conn.execute(f"DELETE FROM {tables.days} WHERE {tables.date} = ?", (run_date,))
