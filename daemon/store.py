"""The SQLite side of a load: connection, transaction, schema, staging, merge, ledger.

One connection factory (WAL, synchronous=FULL so a commit survives power loss before
the file is archived, a busy timeout) and one transaction context manager (BEGIN
IMMEDIATE; ROLLBACK on any exception, re-raised). All SQL binds its values and quotes its
identifiers, which come only from `config.contract`. It knows nothing of files or checks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from config import contract
from daemon.errors import SchemaMismatch

SCHEMA_VERSION = 1
_DATA = contract.COLUMN_NAMES
_VALUES = tuple(n for n in _DATA if n != contract.KEY)


def q(identifier: str) -> str:
    """Quote an SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


STAGING, FACT, LEDGER, KEY = (q(contract.STAGING_TABLE), q(contract.FACT_TABLE),
                              q(contract.LEDGER_TABLE), q(contract.KEY))


def connect(path: Path, busy_timeout_seconds: float = 5.0) -> sqlite3.Connection:
    """The one way this project opens its database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are ours (see `transaction`), not the module's.
    conn = sqlite3.connect(path, timeout=busy_timeout_seconds, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT; ROLLBACK and re-raise on any exception, COMMIT's too."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        # SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR): a second
        # ROLLBACK would fail and hide the error that matters.
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as rollback_exc:
                exc.add_note(f"the rollback failed too: {rollback_exc}")
        raise


_LEDGER_COLUMNS = (
    '"id" INTEGER PRIMARY KEY',
    '"file_name" TEXT NOT NULL',
    '"sha256" TEXT',
    '"bytes" INTEGER',
    """"status" TEXT NOT NULL CHECK ("status" IN ('processed', 'failed'))""",
    '"write_mode" TEXT NOT NULL',
    '"run_date" TEXT',
    '"rows" INTEGER',
    '"inserted" INTEGER NOT NULL DEFAULT 0',
    '"updated" INTEGER NOT NULL DEFAULT 0',
    '"unchanged" INTEGER NOT NULL DEFAULT 0',
    '"deleted" INTEGER NOT NULL DEFAULT 0',
    '"error" TEXT',
    '"started_at" TEXT NOT NULL',
    '"finished_at" TEXT NOT NULL',
    # Which claim of the file this was (device, inode and ctime of the claimed file): a
    # file resumed after a crash between COMMIT and the archive move is recognised as
    # loaded already, not loaded twice.
    '"claim" TEXT',
)


def _tables() -> dict[str, tuple[str, ...]]:
    """Each table's column definitions, in order; the first word of each is its name."""
    types = {c.name: c.sql_type for c in contract.COLUMNS}
    key = " PRIMARY KEY"
    return {
        contract.LEDGER_TABLE: _LEDGER_COLUMNS,
        # Staging columns are nullable and the key counts its repeats, so that nulls and
        # duplicate keys become check results with counts, not a bare constraint error.
        contract.STAGING_TABLE: (
            *(f"{q(n)} {types[n]}" + (key if n == contract.KEY else "") for n in _DATA),
            '"occurrences" INTEGER NOT NULL DEFAULT 1',
        ),
        contract.FACT_TABLE: (
            *(f"{q(n)} {types[n]} NOT NULL" + (key if n == contract.KEY else "") for n in _DATA),
            '"loaded_at" TEXT NOT NULL',
            f'"load_id" INTEGER REFERENCES {LEDGER} ("id")',
        ),
    }


def init_schema(conn: sqlite3.Connection) -> None:
    """Create the tables if missing, then insist that existing ones are ours.

    Raises `SchemaMismatch` for a database written by another program (the prototype's
    tables, say) or by a newer version, before any file could fail on it.
    """
    tables = _tables()
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the database has schema version {version}; this daemon knows {SCHEMA_VERSION}",
                hint="run the newer daemon that wrote it, or point --db at another file",
            )
        for table, columns in tables.items():
            conn.execute(f"CREATE TABLE IF NOT EXISTS {q(table)} ({', '.join(columns)})")
        for table, columns in tables.items():
            expected = [c.split()[0].strip('"') for c in columns]
            actual = [row[1] for row in conn.execute(f"PRAGMA table_info({q(table)})")]
            if actual != expected:
                raise SchemaMismatch(
                    f"table {table} has columns {actual}, expected {expected}",
                    hint="this database was not created by this daemon; point --db at a new "
                    "file, or migrate the table by hand",
                )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {q(contract.FACT_TABLE + '_run_date')} "
                     f"ON {FACT} ({q(contract.DATE_COLUMN)})")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {q(contract.LEDGER_TABLE + '_file_name')} "
                     f"ON {LEDGER} (\"file_name\")")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {q(contract.LEDGER_TABLE + '_claim')} "
                     f"ON {LEDGER} (\"claim\")")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def clear_staging(conn: sqlite3.Connection) -> None:
    conn.execute(f"DELETE FROM {STAGING}")


def stage_rows(conn: sqlite3.Connection, rows: Iterable[Sequence[object]]) -> None:
    """Append rows (in contract column order); a repeated key bumps `occurrences`."""
    conn.executemany(
        f"INSERT INTO {STAGING} ({', '.join(map(q, _DATA))}) "
        f"VALUES ({', '.join('?' for _ in _DATA)}) "
        f'ON CONFLICT ({KEY}) DO UPDATE SET "occurrences" = "occurrences" + 1',
        rows,
    )


def surplus_rows(conn: sqlite3.Connection, column: str, limit: int) -> tuple[int, list[str]]:
    """Rows in staging beyond the first for each repeated value of `column`, and samples."""
    if column == contract.KEY:
        total, = conn.execute(
            f'SELECT COALESCE(SUM("occurrences" - 1), 0) FROM {STAGING} WHERE "occurrences" > 1'
        ).fetchone()
        samples = conn.execute(
            f'SELECT {KEY} FROM {STAGING} WHERE "occurrences" > 1 ORDER BY {KEY} LIMIT ?',
            (limit,),
        ).fetchall()
    else:
        col = q(column)
        repeated = f"SELECT {col} AS v, COUNT(*) AS n FROM {STAGING} WHERE {col} IS NOT NULL " \
                   f"GROUP BY {col} HAVING COUNT(*) > 1"
        total, = conn.execute(f"SELECT COALESCE(SUM(n - 1), 0) FROM ({repeated})").fetchone()
        samples = conn.execute(f"SELECT v FROM ({repeated}) ORDER BY v LIMIT ?",
                               (limit,)).fetchall()
    return int(total), [str(s) for s, in samples]


@dataclass(frozen=True)
class MergeCounts:
    rows: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int = 0


def _differs(left: str, right: str) -> str:
    return " OR ".join(f"{left}.{q(n)} IS NOT {right}.{q(n)}" for n in _VALUES)


def merge(conn: sqlite3.Connection, *, loaded_at: str, load_id: int,
          replace_date: str | None = None) -> MergeCounts:
    """Upsert staging into the fact table, rewriting only rows whose values changed.

    With `replace_date`, the file is the whole truth for that run date: fact rows of the
    date whose key is absent from staging are deleted. Counts are taken before the write
    and cross-checked against SQLite's own change count.
    """
    rows, inserted, updated = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM(f.{KEY} IS NULL), 0), "
        f"COALESCE(SUM(f.{KEY} IS NOT NULL AND ({_differs('s', 'f')})), 0) "
        f"FROM {STAGING} AS s LEFT JOIN {FACT} AS f ON f.{KEY} = s.{KEY}"
    ).fetchone()
    target = ", ".join(map(q, (*_DATA, "loaded_at", "load_id")))
    assignments = ", ".join(f"{q(n)} = excluded.{q(n)}" for n in (*_VALUES, "loaded_at", "load_id"))
    # `WHERE true` disambiguates ON CONFLICT after a SELECT; the DO UPDATE's WHERE is
    # what keeps `loaded_at` stable for rows whose values did not change.
    cursor = conn.execute(
        f"INSERT INTO {FACT} ({target}) "
        f"SELECT {', '.join(map(q, _DATA))}, ?, ? FROM {STAGING} WHERE true "
        f"ON CONFLICT ({KEY}) DO UPDATE SET {assignments} "
        f"WHERE {_differs(FACT, 'excluded')}",
        (loaded_at, load_id),
    )
    if cursor.rowcount != inserted + updated:
        raise RuntimeError(f"merge wrote {cursor.rowcount} rows, expected {inserted + updated}")
    deleted = 0
    if replace_date is not None:
        deleted = conn.execute(
            f"DELETE FROM {FACT} WHERE {q(contract.DATE_COLUMN)} = ? "
            f"AND {KEY} NOT IN (SELECT {KEY} FROM {STAGING})",
            (replace_date,),
        ).rowcount
    return MergeCounts(rows, inserted, updated, rows - inserted - updated, deleted)


@dataclass(frozen=True)
class LoadRecord:
    """What the ledger knows about one attempt before its outcome."""

    file_name: str
    sha256: str | None
    bytes: int | None
    write_mode: str
    run_date: str | None
    started_at: str
    claim: str | None = None


def record_load(conn: sqlite3.Connection, load: LoadRecord, *, status: str, finished_at: str,
                rows: int | None = None, error: str | None = None) -> int:
    """Insert one `load_history` row with zero change counts and return its id.

    A successful load fills in its counts with `update_load_counts` before the commit.
    """
    cursor = conn.execute(
        f'INSERT INTO {LEDGER} ("file_name", "sha256", "bytes", "status", "write_mode", '
        '"run_date", "rows", "error", "started_at", "finished_at", "claim") '
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (load.file_name, load.sha256, load.bytes, status, load.write_mode, load.run_date,
         rows, error, load.started_at, finished_at, load.claim),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def update_load_counts(conn: sqlite3.Connection, load_id: int, counts: MergeCounts,
                       finished_at: str) -> None:
    conn.execute(
        f'UPDATE {LEDGER} SET "rows" = ?, "inserted" = ?, "updated" = ?, "unchanged" = ?, '
        '"deleted" = ?, "finished_at" = ? WHERE "id" = ?',
        (counts.rows, counts.inserted, counts.updated, counts.unchanged, counts.deleted,
         finished_at, load_id),
    )


def recorded_outcome(conn: sqlite3.Connection, claim: str) -> tuple[str, MergeCounts] | None:
    """The latest ledger status and counts recorded for one claim of a file, if any."""
    row = conn.execute(
        f'SELECT "status", "rows", "inserted", "updated", "unchanged", "deleted" FROM {LEDGER} '
        'WHERE "claim" = ? ORDER BY "id" DESC LIMIT 1',
        (claim,),
    ).fetchone()
    if row is None:
        return None
    status, *counts = row
    return str(status), MergeCounts(*(int(c or 0) for c in counts))
