"""The SQLite merge: staged rows into the fact table, rewriting only rows that changed.

Reads the attached staging database (`connection.attached_staging`); runs inside the
load's transaction, which the caller holds. All SQL binds its values and quotes its
identifiers, which come only from the contract (`daemon.warehouse.sql.Tables`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from daemon.warehouse.api import MergeCounts, MergePlan
from daemon.warehouse.sql import Tables, q
from daemon.warehouse.sqlite.connection import staged_table


def surplus_rows(conn: sqlite3.Connection, tables: Tables, column: str,
                 limit: int) -> tuple[int, list[str]]:
    """Staged rows beyond the first for each repeated non-null value of `column`, and up to
    `limit` of those values; the samples are looked for only when there are repeats."""
    col, staged = q(column), staged_table(tables.contract.staging_table)
    total, = conn.execute(
        f"SELECT COUNT({col}) - COUNT(DISTINCT {col}) FROM {staged}").fetchone()
    if not total:
        return 0, []
    samples = conn.execute(
        f"SELECT {col} FROM {staged} WHERE {col} IS NOT NULL GROUP BY {col} "
        f"HAVING COUNT(*) > 1 ORDER BY {col} LIMIT ?", (limit,)).fetchall()
    return int(total), [str(s) for s, in samples]


def _differs(tables: Tables, left: str, right: str) -> str:
    return " OR ".join(f"{left}.{q(n)} IS NOT {right}.{q(n)}"
                       for n in tables.contract.value_columns)


def merge(conn: sqlite3.Connection, tables: Tables, plan: MergePlan, *, rows: int,
          loaded_at: str, load_id: int) -> MergeCounts:
    """Upsert the staged rows (unique keys) into the fact table, rewriting only rows whose
    values changed.

    With `plan.replace_date`, the file is the whole truth for that run date: fact rows of
    the date whose key is absent from staging are deleted. Keys are fed to the upsert in
    order (sorted here unless `keys_sorted`): the fact's key index then grows at its
    right edge. The split of SQLite's change count into inserts and updates costs only
    the inserted rows: new rows take rowids above the largest one before the upsert.
    `keys_sorted` promises strictly ascending keys, so unique ones; `keys_counted` says
    the caller counted repeats in staging and found none (`surplus_rows`). Otherwise the
    keys are counted here, and a repeated key raises `RuntimeError`: an upsert would
    silently write its row twice. (On unsorted keys that count costs about as much as
    the merge itself, so it is not paid twice.)
    """
    contract, staged = tables.contract, staged_table(tables.contract.staging_table)
    if not (plan.keys_sorted or plan.keys_counted):
        repeats, _ = surplus_rows(conn, tables, contract.key, limit=0)
        if repeats:
            raise RuntimeError(f"{repeats} staged rows repeat a key: the caller must refuse "
                               "repeated keys before the merge")
    top, = conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {tables.fact}").fetchone()
    target = tables.columns((*contract.column_names, "loaded_at", "load_id"))
    assignments = ", ".join(f"{q(n)} = excluded.{q(n)}"
                            for n in (*contract.value_columns, "loaded_at", "load_id"))
    order = "" if plan.keys_sorted else f" ORDER BY {tables.key}"
    # `WHERE true` disambiguates ON CONFLICT after a SELECT; the DO UPDATE's WHERE is
    # what keeps `loaded_at` stable for rows whose values did not change.
    changed = conn.execute(
        f"INSERT INTO {tables.fact} ({target}) "
        f"SELECT {tables.columns()}, ?, ? FROM {staged} WHERE true{order} "
        f"ON CONFLICT ({tables.key}) DO UPDATE SET {assignments} "
        f"WHERE {_differs(tables, tables.fact, 'excluded')}",
        (loaded_at, load_id),
    ).rowcount
    inserted, = conn.execute(f"SELECT COUNT(*) FROM {tables.fact} WHERE rowid > ?",
                             (top,)).fetchone()
    counts = MergeCounts.of_upsert(rows, changed, inserted)
    # After the upsert every staged key is a fact row of the date (the checks saw to
    # that), so the date's rows beyond `rows` are exactly those to delete; counting them
    # on the date index spares the anti-join when there are none, the usual case.
    day, deleted = plan.replace_date, 0
    if day is not None and _rows_of_date(conn, tables, day) > rows:
        deleted = conn.execute(
            f"DELETE FROM {tables.fact} WHERE {tables.date} = ? "
            f"AND {tables.key} NOT IN (SELECT {tables.key} FROM {staged})",
            (day,),
        ).rowcount
    return replace(counts, deleted=deleted)


def _rows_of_date(conn: sqlite3.Connection, tables: Tables, run_date: str) -> int:
    count, = conn.execute(f"SELECT COUNT(*) FROM {tables.fact} WHERE {tables.date} = ?",
                          (run_date,)).fetchone()
    return int(count)
