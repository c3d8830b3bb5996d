"""The in-place migrations of an older PostgreSQL warehouse, inside the migration's one
transaction (`schema._create`): a failure anywhere leaves the database as it was.

From version 3 (before feeds, `from_v3`): every ledger row and every watermark was the
built-in feed's: the ledger gains `feed`, `drops` is keyed by feed and run date. From
version 4 (`relocate`, then `from_v4`): the daemon's own tables leave the fact tables'
schema for the bookkeeping schema (`ALTER TABLE ... SET SCHEMA`: their rows, indexes,
constraints and identity sequences go with them, and nothing is copied), the ledger
gains `node` (null for the loads before: which node made them was not recorded), and
`drops.dropped_ns` becomes `dropped_at`, a timestamptz, beside `dropped_nanos`, the
nanoseconds a timestamptz can not hold, and the daemons whose lease had run out are
marked stopped (no `owner`), as a clean stop now marks them. Each returns the steps it
took, in words, for `schema_migrated`.
"""

from __future__ import annotations

from collections.abc import Sequence

from filedrop_etl.daemon.warehouse.columns import Held
from filedrop_etl.daemon.warehouse.postgresql.books import DROPS_TABLE, Books
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.sql import DAEMONS_TABLE, EARLIEST_FEED, LEDGER_TABLE, q


def _names(held: dict[str, list[Held]], table: str) -> set[str] | None:
    return None if table not in held else {c.name for c in held[table]}


def from_v3(conn: Connection, held: dict[str, list[Held]]) -> list[str]:
    """From version 3, in place, where the tables are (the search_path finds them).
    Adding a column with a constant default rewrites no row (PostgreSQL 11 and later);
    the default then goes, as every insert names the feed."""
    steps = []
    ledger = _names(held, LEDGER_TABLE)
    if ledger is not None and "feed" not in ledger:
        table = q(LEDGER_TABLE)
        conn.execute(stmt(f"ALTER TABLE {table} ADD COLUMN \"feed\" text NOT NULL "
                          f"DEFAULT '{EARLIEST_FEED}'"))
        conn.execute(stmt(f'ALTER TABLE {table} ALTER COLUMN "feed" DROP DEFAULT'))
        steps.append(f"load_history.feed added ('{EARLIEST_FEED}' for every row)")
    drops = _names(held, DROPS_TABLE)
    if drops is not None and "feed" not in drops:
        table = q(DROPS_TABLE)
        [(key,)] = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) "
            "AND contype = 'p'", (table,)).fetchall()
        conn.execute(stmt(f"ALTER TABLE {table} ADD COLUMN \"feed\" text NOT NULL "
                          f"DEFAULT '{EARLIEST_FEED}'"))
        conn.execute(stmt(f'ALTER TABLE {table} ALTER COLUMN "feed" DROP DEFAULT, '
                          f'DROP CONSTRAINT {q(str(key))}, ADD PRIMARY KEY ("feed", "run_date")'))
        steps.append("drops keyed by feed and run date")
    return steps


def relocate(conn: Connection, books: Books, tables: Sequence[str]) -> list[str]:
    """Move `tables` (found through the search_path) into the bookkeeping schema."""
    for table in tables:
        conn.execute(stmt(f"ALTER TABLE {q(table)} SET SCHEMA {books.quoted}"))
    return [f"bookkeeping moved to schema {books.schema}: {', '.join(tables)}"] if tables \
        else []


def from_v4(conn: Connection, books: Books, held: dict[str, list[Held]]) -> list[str]:
    """From version 4, once `relocate`d: the ledger's `node`, the drops' time."""
    steps = []
    ledger = _names(held, LEDGER_TABLE)
    if ledger is not None and "node" not in ledger:
        conn.execute(stmt(f'ALTER TABLE {books.ledger} ADD COLUMN "node" text'))
        steps.append("load_history.node added (null for the loads before)")
    drops = _names(held, DROPS_TABLE)
    if drops is not None and "dropped_ns" in drops:
        table = books.drops
        conn.execute(stmt(f'ALTER TABLE {table} ADD COLUMN "dropped_nanos" integer'))
        conn.execute(stmt(f'UPDATE {table} SET "dropped_nanos" = "dropped_ns" % 1000'))
        # Whole microseconds since the epoch, below 2^53: exact as the double precision
        # that multiplies an interval.
        conn.execute(stmt(
            f'ALTER TABLE {table} ALTER COLUMN "dropped_nanos" SET NOT NULL, '
            'ALTER COLUMN "dropped_ns" TYPE timestamptz USING '
            """timestamptz 'epoch' + ("dropped_ns" / 1000) * interval '1 microsecond'"""))
        conn.execute(stmt(f'ALTER TABLE {table} RENAME COLUMN "dropped_ns" TO "dropped_at"'))
        steps.append("drops.dropped_ns became dropped_at (timestamptz) and dropped_nanos")
    # A clean stop now clears its `owner` (`claims`), which tells a stopped daemon from a
    # lost one (`nodes.STATE`); the daemons stopped before (a migration runs with none
    # alive on this release) are stopped, not lost: their owner goes too.
    if _names(held, DAEMONS_TABLE) is not None:
        stopped = conn.execute(stmt(
            f'UPDATE {books.daemons} SET "owner" = NULL '
            'WHERE "owner" IS NOT NULL AND "lease_until" <= now()')).rowcount
        if stopped:
            steps.append(f"daemons: {stopped} whose lease had run out marked stopped")
    return steps
