"""The PostgreSQL ledger: one `load_history` row per attempt of any feed, and its word on
a claim.

As SQLite's: a successful load's row is written in the load's own transaction, with
zero counts filled in before the commit; a failed attempt's in one of its own. Each row
names its feed (`LoadRecord.feed`). Times go in as the ledger's ISO text, cast to
`timestamptz`; the run date as `date`.
"""

from __future__ import annotations

from filedrop_etl.daemon.warehouse.api import LoadRecord, MergeCounts, Recorded
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.postgresql.shape import LEDGER


def record_load(conn: Connection, load: LoadRecord, *, status: str, finished_at: str,
                rows: int | None = None, error: str | None = None) -> int:
    """Insert one `load_history` row with zero change counts; its id."""
    row = conn.execute(stmt(
        f'INSERT INTO {LEDGER} ("file_name", "sha256", "bytes", "status", "write_mode", '
        '"run_date", "rows", "error", "started_at", "finished_at", "claim", "feed") '
        "VALUES (%s, %s, %s, %s, %s, %s::date, %s, %s, %s::timestamptz, %s::timestamptz, "
        '%s, %s) RETURNING "id"'),
        (load.file_name, load.sha256, load.bytes, status, load.write_mode, load.run_date,
         rows, error, load.started_at, finished_at, load.claim, load.feed)).fetchone()
    assert row is not None
    return int(str(row[0]))


def update_load_counts(conn: Connection, load_id: int, counts: MergeCounts,
                       finished_at: str) -> None:
    conn.execute(stmt(
        f'UPDATE {LEDGER} SET "rows" = %s, "inserted" = %s, "updated" = %s, '
        '"unchanged" = %s, "deleted" = %s, "finished_at" = %s::timestamptz WHERE "id" = %s'),
        (counts.rows, counts.inserted, counts.updated, counts.unchanged, counts.deleted,
         finished_at, load_id))


def recorded_outcome(conn: Connection, claim: str) -> Recorded | None:
    """The latest ledger status and counts recorded for one claim of a file, if any."""
    row = conn.execute(stmt(
        'SELECT "status", "rows", "inserted", "updated", "unchanged", "deleted" '
        f'FROM {LEDGER} WHERE "claim" = %s ORDER BY "id" DESC LIMIT 1'),
        (claim,)).fetchone()
    if row is None:
        return None
    status, *counts = row
    rows, inserted, updated, unchanged, deleted = (int(str(c or 0)) for c in counts)
    return Recorded(str(status), MergeCounts(rows, inserted, updated, unchanged, deleted))
