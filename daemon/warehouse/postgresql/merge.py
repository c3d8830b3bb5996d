"""The PostgreSQL merge: staged rows into the fact table, rewriting only rows that changed.

Runs inside the load's transaction, after the caller took the feed's run-date advisory
lock, so loads of one feed's date never interleave and the count of new keys taken
before the upsert is exact. The upsert (`ON CONFLICT` over every key column) has `DO
UPDATE ... WHERE (...) IS DISTINCT FROM (...)` over the value columns, which skips
unchanged rows, so `loaded_at` stays; rows it skips are not counted, so the change
count is inserts plus updates. A feed whose columns are all key has nothing to update
(`DO NOTHING`). Where keys are not dated, a key may be anywhere in the table, and
counting the file's keys there first would cost as much as the upsert: the new keys are
inserted first (`DO NOTHING`: its count is the inserts), then, only where some key was
there already, those rows updated that differ. Replace mode deletes the date's rows
whose key the file no longer has.

A date's rows are found the fastest way the feed allows (`day_rows`): by the date
index where the table has one (`shape.has_date_index`); else, where the key leads with
the date (`date_leads_key`), as the key's leading range; else, where the key carries
its date (`keys_carry_their_date`), as the range of its leading column between the
date's digits and the next date's. Those bounds, unlike `Contract.key_bounds`, leave
out the `-`: the range is then the same in the C collation as in a linguistic one,
where punctuation weighs nothing. The date column's own test is added to them, so what
the range finds can only be the date's rows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.warehouse.api import MergeCounts, MergePlan
from filedrop_etl.daemon.warehouse.postgresql import staging
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.postgresql.shape import has_date_index
from filedrop_etl.daemon.warehouse.sql import Tables, q


def _one(conn: Connection, text: str, params: tuple[object, ...] = ()) -> int:
    row = conn.execute(stmt(text), params).fetchone()
    assert row is not None
    return int(str(row[0]))


def surplus_rows(conn: Connection, contract: Contract, columns: tuple[str, ...],
                 limit: int) -> tuple[int, list[str]]:
    """Staged rows beyond the first for each repeated combination of `columns` in which
    none is null, and up to `limit` of those combinations, smallest first, as text (a
    composite one as its values joined by `", "`); the samples are looked for only when
    there are repeats."""
    staged = staging.table(contract)
    cols = ", ".join(map(q, columns))
    present = " AND ".join(f"{q(c)} IS NOT NULL" for c in columns)
    distinct = q(columns[0]) if len(columns) == 1 else f"ROW({cols})"
    total = _one(conn, f"SELECT count(*) - count(DISTINCT {distinct}) FROM {staged} "
                       f"WHERE {present}")
    if not total:
        return 0, []
    shown = " || ', ' || ".join(f"{q(c)}::text" for c in columns)
    samples = conn.execute(stmt(
        f"SELECT {shown} FROM {staged} WHERE {present} GROUP BY {cols} "
        f"HAVING count(*) > 1 ORDER BY {cols} LIMIT %s"), (limit,)).fetchall()
    return total, [str(s) for s, in samples]


def day_rows(contract: Contract, run_date: str, alias: str = "f") -> tuple[str, tuple[str, ...]]:
    """A condition that holds for exactly the fact rows of `run_date`, which an index
    serves (see the module), and its values."""
    date_column = contract.date_column
    assert date_column is not None
    on_date = f"{alias}.{q(date_column)} = %s::date"
    lead = f"{alias}.{q(contract.key[0])}"
    if has_date_index(contract) or not contract.dated_keys:
        return on_date, (run_date,)
    if contract.date_leads_key:
        return f"{lead} = %s::date", (run_date,)
    after = (date.fromisoformat(run_date) + timedelta(days=1)).isoformat()
    return (f"{lead} >= %s AND {lead} < %s AND {on_date}",
            (run_date.replace("-", ""), after.replace("-", ""), run_date))


def _present(conn: Connection, tables: Tables, day: str) -> int:
    """Staged keys already in the fact table, where the feed's keys are dated: only the
    rows of `day` can hold them, found by an index, so a new day (the usual file) is
    known to have none from that index alone, and a re-run is counted over that day's
    rows, not the whole table."""
    contract, staged = tables.contract, staging.table(tables.contract)
    same = " AND ".join(f"s.{q(k)} = f.{q(k)}" for k in contract.key)
    rows, params = day_rows(contract, day)
    if not _one(conn, f"SELECT count(*) FROM (SELECT 1 FROM {tables.fact} f "
                      f"WHERE {rows} LIMIT 1) AS any_row", params):
        return 0
    return _one(conn, f"SELECT count(*) FROM {tables.fact} f WHERE {rows} "
                      f"AND EXISTS (SELECT 1 FROM {staged} s WHERE {same})", params)


def _upsert(conn: Connection, tables: Tables, loaded_at: str, load_id: int) -> int:
    """Insert the staged rows, updating those whose key the fact holds with other values;
    the rows changed (inserted or updated)."""
    contract, staged = tables.contract, staging.table(tables.contract)
    values = contract.value_columns
    target = tables.columns((*contract.column_names, "loaded_at", "load_id"))
    assignments = ", ".join(f"{q(n)} = EXCLUDED.{q(n)}"
                            for n in (*values, "loaded_at", "load_id"))
    conflict = (f"DO UPDATE SET {assignments} WHERE ({tables.columns(values, 'f.')}) "
                f"IS DISTINCT FROM ({tables.columns(values, 'EXCLUDED.')})" if values
                else "DO NOTHING")
    return int(conn.execute(stmt(
        f"INSERT INTO {tables.fact} AS f ({target}) "
        f"SELECT {tables.columns()}, %s::timestamptz, %s FROM {staged} "
        f"ON CONFLICT ({tables.key}) {conflict}"), (loaded_at, load_id)).rowcount)


def _insert_then_update(conn: Connection, tables: Tables, rows: int, loaded_at: str,
                        load_id: int) -> tuple[int, int]:
    """Where a key may be anywhere in the table (it does not carry its date): the staged
    rows inserted whose key is new (the statement's count is then the inserts alone),
    and only if some key was there already, those rows updated where their values
    differ. A new day (the usual file) meets the fact table once, in its insert, never
    in a count of the keys first, which costs as much again on a large table. A key
    another session inserts meanwhile is waited for, then updated, never counted twice."""
    contract, staged = tables.contract, staging.table(tables.contract)
    values = contract.value_columns
    target = tables.columns((*contract.column_names, "loaded_at", "load_id"))
    inserted = int(conn.execute(stmt(
        f"INSERT INTO {tables.fact} AS f ({target}) "
        f"SELECT {tables.columns()}, %s::timestamptz, %s FROM {staged} "
        f"ON CONFLICT ({tables.key}) DO NOTHING"), (loaded_at, load_id)).rowcount)
    if inserted == rows or not values:
        return inserted, 0
    same = " AND ".join(f"s.{q(k)} = f.{q(k)}" for k in contract.key)
    sets = ", ".join(f"{q(n)} = s.{q(n)}" for n in values)
    # The rows inserted above are among those joined, and equal: never rewritten.
    updated = int(conn.execute(stmt(
        f'UPDATE {tables.fact} AS f SET {sets}, "loaded_at" = %s::timestamptz, '
        f'"load_id" = %s FROM {staged} AS s WHERE {same} AND '
        f"({tables.columns(values, 'f.')}) IS DISTINCT FROM "
        f"({tables.columns(values, 's.')})"), (loaded_at, load_id)).rowcount)
    return inserted, updated


def merge(conn: Connection, tables: Tables, plan: MergePlan, *, rows: int, loaded_at: str,
          load_id: int) -> MergeCounts:
    """Upsert the staged rows into the fact table; the counts. Repeated keys must have
    been refused before (`keys_sorted` or `keys_counted`), else they are counted here."""
    contract, staged = tables.contract, staging.table(tables.contract)
    if not (plan.keys_sorted or plan.keys_counted):
        repeats, _ = surplus_rows(conn, contract, contract.key, limit=0)
        if repeats:
            raise RuntimeError(f"{repeats} staged rows repeat a key: the caller must refuse "
                               "repeated keys before the merge")
    if plan.run_date is not None and contract.dated_keys:
        inserted = rows - _present(conn, tables, plan.run_date)
        changed = _upsert(conn, tables, loaded_at, load_id)
    else:
        inserted, updated = _insert_then_update(conn, tables, rows, loaded_at, load_id)
        changed = inserted + updated
    counts = MergeCounts.of_upsert(rows, changed, inserted)
    # As in SQLite: after the upsert every staged key is a row of the date, so only a date
    # with more rows than the file has any to delete (the usual re-drop has none).
    day, deleted = plan.replace_date, 0
    if day is not None:
        where, params = day_rows(contract, day)
        if _one(conn, f"SELECT count(*) FROM {tables.fact} f WHERE {where}", params) > rows:
            same = " AND ".join(f"s.{q(k)} = f.{q(k)}" for k in contract.key)
            deleted = conn.execute(stmt(
                f"DELETE FROM {tables.fact} f WHERE {where} AND NOT EXISTS "
                f"(SELECT 1 FROM {staged} s WHERE {same})"), params).rowcount
    return replace(counts, deleted=deleted)
