"""The database's shape: every table's columns, its indexes, the version, the migration.

`init_schema` creates what is missing, migrates an older version forward in place, and
refuses a database it did not write (the prototype's tables, say) or one of a newer
version, before any file could fail on it. Identifiers come from the contract value it is
given; what goes into the tables is the ledger's, the merge's and the retries'.
"""

from __future__ import annotations

import sqlite3
import time

import structlog

from config.contract import Contract
from daemon.errors import SchemaMismatch
from daemon.warehouse.sql import DAEMONS_TABLE, DAYS_SUFFIX, RETRIES_TABLE, Tables, q
from daemon.warehouse.sqlite import migrate
from daemon.warehouse.sqlite.connection import transaction

log = structlog.get_logger("daemon.schema")

# 1: fact, staging and load_history. 2: `retries`. 3: `daemons`. 4: the fact table
# WITHOUT ROWID, `<fact>_days` (see `init_schema` for the migrations).
SCHEMA_VERSION = 4
# The version that added the `retries` table, which `retry` writes.
RETRIES_VERSION = 2

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


def _tables(contract: Contract) -> dict[str, tuple[str, ...]]:
    """Each table's column definitions, in order; the first word of each is its name."""
    types = {c.name: c.sql_type for c in contract.columns}
    data, ledger = contract.column_names, q(contract.ledger_table)
    key = " PRIMARY KEY"
    return {
        contract.ledger_table: _LEDGER_COLUMNS,
        # The schema of record for staging, kept as version 1 defined it so that older
        # databases open unchanged. It stays empty: each load stages its rows in a table
        # of this name in its own staging database (see `daemon.staging`).
        contract.staging_table: (
            *(f"{q(n)} {types[n]}" + (key if n == contract.key else "") for n in data),
            '"occurrences" INTEGER NOT NULL DEFAULT 1',
        ),
        contract.fact_table: (
            *(f"{q(n)} {types[n]} NOT NULL" + (key if n == contract.key else "") for n in data),
            '"loaded_at" TEXT NOT NULL',
            f'"load_id" INTEGER REFERENCES {ledger} ("id")',
        ),
        # Version 4: the fact's rows per run date, written by each load in its own
        # transaction, so that the page and `report` need not count the fact table.
        contract.fact_table + DAYS_SUFFIX: (
            f"{q(contract.date_column)} TEXT PRIMARY KEY",
            '"rows" INTEGER NOT NULL',
        ),
        # Version 2: one row per failed file an operator sent back to the inbox
        # (`daemon.retries`). No foreign key: a retry names a file, not one attempt.
        RETRIES_TABLE: (
            '"id" INTEGER PRIMARY KEY',
            '"file_name" TEXT NOT NULL',  # the name it was sent back under
            '"failed_as" TEXT NOT NULL',  # its name in failed/ (`name~N` when taken)
            '"sha256" TEXT',  # of the file sent back, which may have been fixed in place
            '"reason" TEXT',  # the sidecar's one-line reason for the failure
            '"sidecar" TEXT',  # the whole sidecar, which the retry removes
            '"requested_by" TEXT',
            '"requested_at" TEXT NOT NULL',
        ),
        # Version 3: where each daemon (by node: its host) keeps its folders, as it
        # resolved them at its last start (`daemon.daemons`), so that a command given only
        # the database finds them; and which of them that start had to create.
        DAEMONS_TABLE: (
            '"node" TEXT PRIMARY KEY',
            '"pid" INTEGER NOT NULL',
            '"started_at" TEXT NOT NULL',
            '"inbox" TEXT NOT NULL',
            '"work" TEXT NOT NULL',
            '"processed" TEXT NOT NULL',
            '"failed" TEXT NOT NULL',
            '"created" TEXT NOT NULL',  # a JSON list of the folders' names
        ),
    }


def _without_rowid(contract: Contract) -> frozenset[str]:
    # Version 4: the fact's rows live in its key's B-tree, not in a rowid table beside a
    # key index: one B-tree written per row instead of two, and a third of the size.
    return frozenset({contract.fact_table, contract.fact_table + DAYS_SUFFIX})


def _create(table: str, columns: tuple[str, ...], without_rowid: bool) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)})"
            + (" WITHOUT ROWID" if without_rowid else ""))


def init_schema(conn: sqlite3.Connection, contract: Contract, *,
                chunk_rows: int = migrate.CHUNK_ROWS) -> None:
    """Create the tables if missing, then insist that existing ones are ours.

    Raises `SchemaMismatch` for a database written by another program (the prototype's
    tables, say) or by a newer version, before any file could fail on it.

    This is also the forward migration, in place and in one transaction: a failed or
    killed migration leaves the database as it was. From version 1 to 2 it is the
    `CREATE TABLE IF NOT EXISTS` of `retries`, and from 2 to 3 that of `daemons`. From
    3 to 4 the fact table is rebuilt (`migrate.rebuild_fact`, logged with its progress)
    and its rows per day counted; once that is committed, the file is compacted.
    """
    tables, names = _tables(contract), Tables(contract)
    one_btree = _without_rowid(contract)
    started = time.monotonic()
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the database has schema version {version}; this daemon knows {SCHEMA_VERSION}",
                hint="run the newer daemon that wrote it, or point --db at another file",
            )
        rebuild = version < 4 and has_table(conn, contract.fact_table)
        for table, columns in tables.items():
            conn.execute(_create(q(table), columns, table in one_btree))
        for table, columns in tables.items():
            expected = [c.split()[0].strip('"') for c in columns]
            actual = [row[1] for row in conn.execute(f"PRAGMA table_info({q(table)})")]
            if actual != expected:
                raise SchemaMismatch(
                    f"table {table} has columns {actual}, expected {expected}",
                    hint="this database was not created by this daemon; point --db at a new "
                    "file, or migrate the table by hand",
                )
        migrated = None
        if rebuild:
            fact = tables[contract.fact_table]
            migrated = migrate.rebuild_fact(
                conn, names, lambda name: _create(name, fact, True), from_version=version,
                to_version=SCHEMA_VERSION, chunk_rows=chunk_rows)
        if not contract.keys_carry_their_date:
            # Replace mode deletes a date's missing keys, and a key range can not find them.
            conn.execute(f"CREATE INDEX IF NOT EXISTS {q(contract.fact_table + '_run_date')} "
                         f"ON {names.fact} ({names.date})")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {q(contract.ledger_table + '_file_name')} "
                     f"ON {names.ledger} (\"file_name\")")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {q(contract.ledger_table + '_claim')} "
                     f"ON {names.ledger} (\"claim\")")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {q(RETRIES_TABLE + '_file_name')} "
                     f"ON {names.retries} (\"file_name\")")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    if migrated is not None:
        grown = migrate.file_bytes(conn)
        compacted = migrate.compact(conn)
        log.info("schema_migrated", from_version=version, to_version=SCHEMA_VERSION,
                 table=contract.fact_table, rows=migrated, file_bytes_before=grown,
                 file_bytes=migrate.file_bytes(conn) if compacted else grown,
                 steps=["fact table rebuilt WITHOUT ROWID",
                        *([] if not contract.keys_carry_their_date else
                          ["run-date index dropped: keys carry their date"]),
                        f"rows per day counted into {contract.fact_table + DAYS_SUFFIX}",
                        *(["file compacted (VACUUM)"] if compacted else [])],
                 duration_ms=round((time.monotonic() - started) * 1000))


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the database holds a table of that name (an older version may not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None
