"""The version-4 migration: the fact table rebuilt as one B-tree, and its rows per day.

Up to version 3 the fact table was a rowid table with a separate index on its key and
another on its run date: three B-trees written per row. Version 4 keeps the rows in the
key's own B-tree (`WITHOUT ROWID`), keeps a date index only where keys do not carry
their date (`Contract.keys_carry_their_date`), and counts rows per run date in
`<fact>_days`. `rebuild_fact` copies the rows in key order, in chunks so that it can
say how far it got, inside the caller's transaction: a migration that fails or is
killed leaves the database as it was, and the next start begins it again. `compact`
then returns the old table's pages to the disk. `reshape` is the same copy for a
declared feed's table whose columns' NOT NULL changed (`columns.evolve`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import structlog

from filedrop_etl.daemon import crashpoints
from filedrop_etl.daemon.warehouse.sql import Tables, q

log = structlog.get_logger("daemon.schema")

# Rows copied per statement: a progress line each, about a second apiece here.
CHUNK_ROWS = 500_000


def rebuild_fact(conn: sqlite3.Connection, tables: Tables, create: Callable[[str], str], *,
                 from_version: int, to_version: int, chunk_rows: int = CHUNK_ROWS,
                 extra: tuple[str, ...] = ()) -> int:
    """Replace the fact table by one that `create(name)` makes, holding the same rows
    (and the values of the `extra` columns, which `create` must define too); fill the
    rows-per-day table from them; the number of rows.

    Runs inside the caller's transaction and never commits: the caller says
    `schema_migrated` once its commit has made it so.
    """
    contract = tables.contract
    fact, key = tables.fact, tables.key
    new = q(contract.fact_table + "_rebuilt")
    started = time.monotonic()
    total, = conn.execute(f"SELECT COUNT(*) FROM {fact}").fetchone()
    log.info("schema_migration_started", table=contract.fact_table, from_version=from_version,
             to_version=to_version, rows=total)
    conn.execute(f"DROP TABLE IF EXISTS {new}")
    conn.execute(create(new))
    columns = tables.columns((*contract.column_names, "loaded_at", "load_id", *extra))
    copied, last = 0, None
    while True:
        after, bound = ("", ()) if last is None else (f"WHERE {key} > ?", (last,))
        # In key order: each chunk lands at the right edge of the new B-tree, its
        # pages filled, as the daemon's own sorted loads leave them.
        moved = conn.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {fact} "
                             f"{after} ORDER BY {key} LIMIT ?", (*bound, chunk_rows)).rowcount
        if moved <= 0:
            break
        copied += moved
        last, = conn.execute(f"SELECT MAX({key}) FROM {new}").fetchone()
        log.info("schema_migration_progress", table=contract.fact_table, rows_copied=copied,
                 rows=total, seconds=round(time.monotonic() - started, 1))
    if copied != total:
        raise RuntimeError(f"the migration copied {copied} of {total} rows")
    count_days(conn, tables)
    conn.execute(f"DROP TABLE {fact}")
    conn.execute(f"ALTER TABLE {new} RENAME TO {fact}")
    crashpoints.reached("during_migration")
    return int(total)


def reshape(conn: sqlite3.Connection, tables: Tables, create: Callable[[str], str],
            kept: tuple[str, ...]) -> None:
    """Replace a declared feed's fact table by one that `create(name)` makes, holding
    the same rows: SQLite can not change a column's NOT NULL in place. The columns
    `kept` are copied (in key order, as `rebuild_fact` does); any other the new table
    defines takes its default. Inside the caller's transaction, as one statement: a
    failure leaves the table as it was."""
    fact = tables.fact
    new = q(tables.contract.fact_table + "_rebuilt")
    conn.execute(f"DROP TABLE IF EXISTS {new}")
    conn.execute(create(new))
    names = tables.columns(kept)
    conn.execute(f"INSERT INTO {new} ({names}) SELECT {names} FROM {fact} "
                 f"ORDER BY {tables.key}")
    conn.execute(f"DROP TABLE {fact}")
    conn.execute(f"ALTER TABLE {new} RENAME TO {fact}")


def count_days(conn: sqlite3.Connection, tables: Tables) -> None:
    """Fill the rows-per-day table by counting the fact table (which loads then keep)."""
    date = tables.date
    conn.execute(f"DELETE FROM {tables.days}")
    conn.execute(f'INSERT INTO {tables.days} ({date}, "rows") '
                 f"SELECT {date}, COUNT(*) FROM {tables.fact} GROUP BY {date}")


def file_bytes(conn: sqlite3.Connection) -> int:
    """The database's size in pages, as bytes (free pages included)."""
    pages, = conn.execute("PRAGMA page_count").fetchone()
    size, = conn.execute("PRAGMA page_size").fetchone()
    return int(pages) * int(size)


def compact(conn: sqlite3.Connection) -> bool:
    """`VACUUM` after a committed rebuild: the old table's pages are free, and the file
    would otherwise keep them (306 MB to 477 MB for 3M rows; 152 MB once compacted, in
    1.5 s). Atomic on its own; a failure (no room for its copy, another writer) is only
    a warning, and the migration stands."""
    try:
        conn.execute("VACUUM")
    except sqlite3.OperationalError as exc:
        log.warning("schema_vacuum_skipped", reason=str(exc),
                    hint="the migration is done; to return the old table's space to the "
                    "disk, run `sqlite3 <db> VACUUM` with the daemon stopped")
        return False
    return True
