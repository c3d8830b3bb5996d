"""The SQLite ledger: one `load_history` row per attempt at a file, and its word on a claim.

The ledger is every feed's: each row names its feed. A successful load's row is written
in the load's own transaction, with zero counts that `update_load_counts` fills in
before the commit; a failed attempt's row in one of its own. `recorded_outcome` tells a
claim resumed after a crash from a new one: committed already (archive it, do not load
it again) or failed already (do not record it twice). The table itself is created with
the others by `schema.init_schema`.
"""

from __future__ import annotations

import sqlite3

from filedrop_etl.daemon.warehouse.api import LoadRecord, MergeCounts, Recorded
from filedrop_etl.daemon.warehouse.sql import LEDGER_TABLE, q

_LEDGER = q(LEDGER_TABLE)


def record_load(conn: sqlite3.Connection, load: LoadRecord, *, status: str,
                finished_at: str, node: str | None = None, rows: int | None = None,
                error: str | None = None) -> int:
    """Insert one `load_history` row with zero change counts, made by `node` (the
    daemon's, from the `node` setting), and return its id.

    A successful load fills in its counts with `update_load_counts` before the commit.
    """
    cursor = conn.execute(
        f'INSERT INTO {_LEDGER} ("file_name", "sha256", "bytes", "status", '
        '"write_mode", "run_date", "rows", "error", "started_at", "finished_at", "claim", '
        '"feed", "node") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        (load.file_name, load.sha256, load.bytes, status, load.write_mode, load.run_date,
         rows, error, load.started_at, finished_at, load.claim, load.feed, node),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def update_load_counts(conn: sqlite3.Connection, load_id: int,
                       counts: MergeCounts, finished_at: str) -> None:
    conn.execute(
        f'UPDATE {_LEDGER} SET "rows" = ?, "inserted" = ?, "updated" = ?, '
        '"unchanged" = ?, "deleted" = ?, "finished_at" = ? WHERE "id" = ?',
        (counts.rows, counts.inserted, counts.updated, counts.unchanged, counts.deleted,
         finished_at, load_id),
    )


def recorded_outcome(conn: sqlite3.Connection, claim: str) -> Recorded | None:
    """The latest ledger status and counts recorded for one claim of a file, if any."""
    row = conn.execute(
        'SELECT "status", "rows", "inserted", "updated", "unchanged", "deleted" '
        f'FROM {_LEDGER} WHERE "claim" = ? ORDER BY "id" DESC LIMIT 1',
        (claim,),
    ).fetchone()
    if row is None:
        return None
    status, *counts = row
    rows, inserted, updated, unchanged, deleted = (int(c or 0) for c in counts)
    return Recorded(str(status), MergeCounts(rows, inserted, updated, unchanged, deleted))
