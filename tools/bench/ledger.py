"""A ledger full of loads: `fill` writes N `load_history` rows of the last day, fast.

For the status page's measurements (`tools.bench.page`) and its tests: the page's cost
is a matter of how many loads finished in the last 24 hours, and a daemon would take
hours to make 100,000 of them. The rows are made up but shaped like the daemon's (a
file name, a run date, rows and counts, durations from 10 ms to a minute on a log
scale, one in fifty failed), spread evenly over the hours before `now`, and written with
bound-parameter bulk inserts: `executemany` on SQLite, arrays through `unnest` on
PostgreSQL (`insert`, which also writes rows of the caller's). The schema is made first,
by the seam's `migrate`, as the daemon's own; nothing else (no fact rows, no daemon
recorded), so a daemon may start on the database afterwards. Each row is a load of the
built-in feed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import LEDGER_TABLE_NAME, TRANSACTIONS
from filedrop_etl.daemon.warehouse import registry
from filedrop_etl.daemon.warehouse.postgresql import connection, url_of
from filedrop_etl.daemon.warehouse.postgresql.connection import stmt
from filedrop_etl.daemon.warehouse.sql import q
from filedrop_etl.daemon.warehouse.sqlite import connection as sqlite_connection

# Inserted per statement on PostgreSQL: bounded memory, few round trips.
_CHUNK = 20_000
COLUMNS = ("file_name", "sha256", "bytes", "status", "write_mode", "run_date", "rows",
           "inserted", "updated", "unchanged", "deleted", "error", "started_at", "finished_at")
_PG_TYPES = ("text", "text", "bigint", "text", "text", "date", "bigint", "bigint", "bigint",
             "bigint", "bigint", "text", "timestamptz", "timestamptz")


def stamp(moment: datetime) -> str:
    """The ledger's text of a UTC time (isoformat: several times faster than strftime)."""
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def loads(count: int, now: datetime, *, hours: float = 24.0,
          seed: int = 0) -> Iterator[tuple[object, ...]]:
    """`count` ledger rows (in `COLUMNS` order) finished evenly over the `hours` before
    `now`, oldest first."""
    pick = random.Random(seed)  # noqa: S311 (made-up durations, not secrets)
    span = timedelta(hours=hours)
    for i in range(count):
        finished = now - span + span * (i + 0.5) / count
        seconds = 10 ** pick.uniform(-2, 1.8)  # 10 ms to about a minute
        failed = pick.random() < 0.02
        rows = pick.randint(25, 100_000)
        day = (now.date() - timedelta(days=i % 365)).isoformat()
        yield (f"transactions_{day}~{i}.parquet", None, rows * 40,
               "failed" if failed else "processed", "merge", day,
               None if failed else rows, 0 if failed else rows, 0, 0, 0,
               "checks: a made-up failure" if failed else None,
               stamp(finished - timedelta(seconds=seconds)), stamp(finished))


def fill(settings: Settings, count: int, now: datetime | None = None, *,
         hours: float = 24.0) -> None:
    """Make the warehouse's schema (if missing) and add `count` loads of the `hours`
    before `now` to its ledger."""
    insert(settings, loads(count, now or datetime.now(UTC), hours=hours))


def insert(settings: Settings, rows: Iterable[tuple[object, ...]]) -> None:
    """Make the warehouse's schema (if missing, through the seam's `migrate`) and add
    `rows` (in `COLUMNS` order, each a load of the built-in feed) to its ledger, in one
    transaction on SQLite, in chunks on PostgreSQL."""
    backend = registry.backend_of(settings)
    backend.migrate(settings)
    ledger = q(LEDGER_TABLE_NAME)
    rows = iter(rows)
    if backend.name != "postgresql":
        lite = sqlite_connection.connect(settings.db_file)
        try:
            held = {r[1] for r in lite.execute(f"PRAGMA table_info({ledger})")}
            names, rows = _with_feed(held, rows)
            lite.execute("BEGIN")
            lite.executemany(f"INSERT INTO {ledger} ({', '.join(map(q, names))}) VALUES "
                             f"({', '.join('?' * len(names))})", rows)
            lite.execute("COMMIT")
        finally:
            lite.close()
        return
    # The daemon's own session: it knows where the raw ledger is (`books`), which the
    # analysts' view of the same name in the search_path is not.
    with connection.connect(url_of(settings), settings.busy_timeout_seconds) as conn:
        ledger = conn.books.ledger
        held = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "%s AND table_name = %s", (conn.books.schema, LEDGER_TABLE_NAME))}
        names, rows = _with_feed(held, rows)
        types = _PG_TYPES + ("text",) * (len(names) - len(COLUMNS))
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        while chunk := [row for _, row in zip(range(_CHUNK), rows, strict=False)]:
            conn.execute(stmt(f"INSERT INTO {ledger} ({', '.join(map(q, names))}) "
                              f"SELECT * FROM unnest({arrays})"),
                         [list(column) for column in zip(*chunk, strict=True)])
        conn.execute(stmt(f"ANALYZE {ledger}"))


def _with_feed(held: set[str], rows: Iterator[tuple[object, ...]]
               ) -> tuple[tuple[str, ...], Iterator[tuple[object, ...]]]:
    """The columns to write and the rows, with the ledger's `feed` (issue 23) where the
    ledger has one: each row a load of the built-in feed."""
    if "feed" not in held:
        return COLUMNS, rows
    return (*COLUMNS, "feed"), ((*row, TRANSACTIONS.name) for row in rows)
