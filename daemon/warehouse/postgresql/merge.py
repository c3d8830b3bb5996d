"""The PostgreSQL merge: staged rows into the fact table, rewriting only rows that changed.

Runs inside the load's transaction, after the caller took the run date's advisory
lock, so loads of one date never interleave and the count of new keys taken before
the upsert is exact (another date's keys never collide: the key carries its date). The
upsert's `DO UPDATE ... WHERE (...) IS DISTINCT FROM (...)` skips unchanged rows, so
`loaded_at` stays; rows it skips are not counted, so the change count is inserts plus
updates. Replace mode deletes the date's rows whose key the file no longer has.
"""

from __future__ import annotations

from dataclasses import replace

from filedrop_etl.daemon.warehouse.api import MergeCounts, MergePlan
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.postgresql.staging import TABLE as STAGED
from filedrop_etl.daemon.warehouse.sql import Tables, q


def _one(conn: Connection, text: str, params: tuple[object, ...] = ()) -> int:
    row = conn.execute(stmt(text), params).fetchone()
    assert row is not None
    return int(str(row[0]))


def surplus_rows(conn: Connection, column: str, limit: int) -> tuple[int, list[str]]:
    """Staged rows beyond the first for each repeated non-null value of `column`, and up to
    `limit` of those values (as text); the samples are looked for only when there are
    repeats."""
    col = q(column)
    total = _one(conn, f"SELECT count({col}) - count(DISTINCT {col}) FROM {STAGED}")
    if not total:
        return 0, []
    samples = conn.execute(stmt(
        f"SELECT {col}::text FROM {STAGED} WHERE {col} IS NOT NULL GROUP BY {col} "
        f"HAVING count(*) > 1 ORDER BY {col} LIMIT %s"), (limit,)).fetchall()
    return total, [str(s) for s, in samples]


def _present(conn: Connection, tables: Tables, plan: MergePlan) -> int:
    """Staged keys already in the fact table. Where keys carry their date, only the
    date's rows can hold them: a new day (the usual file) is known to have none from the
    date index alone, and a re-run is counted over that day's rows, not the whole table."""
    key, day = tables.key, plan.run_date
    if day is None or not tables.contract.keys_carry_their_date:
        return _one(conn, f"SELECT count(*) FROM {STAGED} s WHERE EXISTS "
                          f"(SELECT 1 FROM {tables.fact} f WHERE f.{key} = s.{key})")
    if not _one(conn, f"SELECT count(*) FROM (SELECT 1 FROM {tables.fact} "
                      f"WHERE {tables.date} = %s::date LIMIT 1) AS any_row", (day,)):
        return 0
    return _one(conn, f"SELECT count(*) FROM {tables.fact} f WHERE f.{tables.date} = %s::date "
                      f"AND EXISTS (SELECT 1 FROM {STAGED} s WHERE s.{key} = f.{key})", (day,))


def merge(conn: Connection, tables: Tables, plan: MergePlan, *, rows: int, loaded_at: str,
          load_id: int) -> MergeCounts:
    """Upsert the staged rows into the fact table; the counts. Repeated keys must have
    been refused before (`keys_sorted` or `keys_counted`), else they are counted here."""
    contract = tables.contract
    if not (plan.keys_sorted or plan.keys_counted):
        repeats, _ = surplus_rows(conn, contract.key[0], limit=0)
        if repeats:
            raise RuntimeError(f"{repeats} staged rows repeat a key: the caller must refuse "
                               "repeated keys before the merge")
    key = tables.key
    inserted = rows - _present(conn, tables, plan)
    values = contract.value_columns
    target = tables.columns((*contract.column_names, "loaded_at", "load_id"))
    assignments = ", ".join(f"{q(n)} = EXCLUDED.{q(n)}"
                            for n in (*values, "loaded_at", "load_id"))
    changed = conn.execute(stmt(
        f"INSERT INTO {tables.fact} AS f ({target}) "
        f"SELECT {tables.columns()}, %s::timestamptz, %s FROM {STAGED} "
        f"ON CONFLICT ({key}) DO UPDATE SET {assignments} "
        f"WHERE ({tables.columns(values, 'f.')}) IS DISTINCT FROM "
        f"({tables.columns(values, 'EXCLUDED.')})"), (loaded_at, load_id)).rowcount
    counts = MergeCounts.of_upsert(rows, changed, inserted)
    # As in SQLite: after the upsert every staged key is a row of the date, so only a date
    # with more rows than the file has any to delete (the usual re-drop has none).
    day, deleted = plan.replace_date, 0
    if day is not None and _one(conn, f"SELECT count(*) FROM {tables.fact} "
                                      f"WHERE {tables.date} = %s::date", (day,)) > rows:
        deleted = conn.execute(stmt(
            f"DELETE FROM {tables.fact} f WHERE f.{tables.date} = %s::date AND NOT EXISTS "
            f"(SELECT 1 FROM {STAGED} s WHERE s.{key} = f.{key})"), (day,)).rowcount
    return replace(counts, deleted=deleted)
