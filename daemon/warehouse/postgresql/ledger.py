"""The PostgreSQL ledger: one `load_history` row per attempt of any feed, and its word on
a claim.

As SQLite's: a successful load's row is written in the load's own transaction, with
zero counts filled in before the commit; a failed attempt's in one of its own. Each row
names its feed (`LoadRecord.feed`) and the node whose daemon made it. The raw ledger is
in the bookkeeping schema (`books`); analysts read it through the view (`analysts`).
Times go in as the ledger's ISO text, cast to `timestamptz`; the run date as `date`.
"""

from __future__ import annotations

from filedrop_etl.daemon.warehouse.api import LoadRecord, MergeCounts, Recorded
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt


def record_load(conn: Connection, load: LoadRecord, *, status: str, finished_at: str,
                node: str | None = None, rows: int | None = None,
                error: str | None = None) -> int:
    """Insert one `load_history` row with zero change counts, made by `node`; its id."""
    row = conn.execute(stmt(
        f'INSERT INTO {conn.books.ledger} ("file_name", "sha256", "bytes", "status", '
        '"write_mode", "run_date", "rows", "error", "started_at", "finished_at", "claim", '
        '"feed", "node") VALUES (%s, %s, %s, %s, %s, %s::date, %s, %s, %s::timestamptz, '
        '%s::timestamptz, %s, %s, %s) RETURNING "id"'),
        (load.file_name, load.sha256, load.bytes, status, load.write_mode, load.run_date,
         rows, error, load.started_at, finished_at, load.claim, load.feed,
         node)).fetchone()
    assert row is not None
    return int(str(row[0]))


def update_load_counts(conn: Connection, load_id: int, counts: MergeCounts,
                       finished_at: str) -> None:
    conn.execute(stmt(
        f'UPDATE {conn.books.ledger} SET "rows" = %s, "inserted" = %s, "updated" = %s, '
        '"unchanged" = %s, "deleted" = %s, "finished_at" = %s::timestamptz WHERE "id" = %s'),
        (counts.rows, counts.inserted, counts.updated, counts.unchanged, counts.deleted,
         finished_at, load_id))


def recorded_outcome(conn: Connection, claim: str) -> Recorded | None:
    """The latest ledger status and counts recorded for one claim of a file, if any."""
    row = conn.execute(stmt(
        'SELECT "status", "rows", "inserted", "updated", "unchanged", "deleted" '
        f'FROM {conn.books.ledger} WHERE "claim" = %s ORDER BY "id" DESC LIMIT 1'),
        (claim,)).fetchone()
    if row is None:
        return None
    status, *counts = row
    rows, inserted, updated, unchanged, deleted = (int(str(c or 0)) for c in counts)
    return Recorded(str(status), MergeCounts(rows, inserted, updated, unchanged, deleted))
