"""The database's shape: every table's columns, its indexes, the version, the migration.

`init_schema` creates what is missing, migrates an older version forward in place, and
refuses a database it did not write (the prototype's tables, say: columns missing or of
another type) or one of a newer version, before any file could fail on it. Columns a DBA
added that the daemon's inserts can leave out are accepted with a warning, and kept
through the version-4 rebuild (`columns`). Identifiers come from the contract value it
is given; what goes into the tables is the ledger's, the merge's and the retries'.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import structlog

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.errors import SchemaMismatch
from filedrop_etl.daemon.warehouse import columns
from filedrop_etl.daemon.warehouse.sql import DAEMONS_TABLE, DAYS_SUFFIX, RETRIES_TABLE, Tables, q
from filedrop_etl.daemon.warehouse.sqlite import migrate
from filedrop_etl.daemon.warehouse.sqlite.connection import transaction
from filedrop_etl.daemon.warehouse.sqlite.types import column_type

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
    types = {c.name: column_type(c.kind) for c in contract.columns}
    data, ledger = contract.column_names, q(contract.ledger_table)
    key = " PRIMARY KEY"
    return {
        contract.ledger_table: _LEDGER_COLUMNS,
        # The schema of record for staging, kept as version 1 defined it so that older
        # databases open unchanged. It stays empty: each load stages its rows in a table
        # of this name in its own staging database (see `daemon.warehouse.sqlite.staging`).
        contract.staging_table: (
            *(f"{q(n)} {types[n]}" + (key if n == contract.key[0] else "") for n in data),
            '"occurrences" INTEGER NOT NULL DEFAULT 1',
        ),
        contract.fact_table: (
            *(f"{q(n)} {types[n]} NOT NULL" + (key if n == contract.key[0] else "") for n in data),
            '"loaded_at" TEXT NOT NULL',
            f'"load_id" INTEGER REFERENCES {ledger} ("id")',
        ),
        # Version 4: the fact's rows per run date, written by each load in its own
        # transaction, so that the page and `report` need not count the fact table.
        contract.fact_table + DAYS_SUFFIX: (
            f"{q(contract.date_column or 'run_date')} TEXT PRIMARY KEY",
            '"rows" INTEGER NOT NULL',
        ),
        # Version 2: one row per failed file an operator sent back to the inbox
        # (`daemon.ops.retries`). No foreign key: a retry names a file, not one attempt.
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
        # resolved them at its last start (`daemon.warehouse.sqlite.nodes`), so that a
        # command given only the database finds them; and which of them that start had to create.
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
        for table, defined in tables.items():
            conn.execute(_create(q(table), defined, table in one_btree))
        differences = [_difference(conn, table, defined) for table, defined in tables.items()]
        for difference in differences:
            if difference.refused:
                raise columns.refusal(difference)
        migrated = None
        if rebuild:
            # A DBA's own columns go into the new table too, as they were declared.
            [extra] = [d.extra for d in differences if d.table == contract.fact_table]
            kept = _definitions(conn, contract.fact_table, extra)
            fact = (*tables[contract.fact_table], *kept.values())
            migrated = migrate.rebuild_fact(
                conn, names, lambda name: _create(name, fact, True), from_version=version,
                to_version=SCHEMA_VERSION, chunk_rows=chunk_rows, extra=tuple(kept))
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
    columns.warn_extra(differences)
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


def _held(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    # cid, name, declared type, notnull, default, pk: one row per column, in order.
    return list(conn.execute(f"PRAGMA table_info({q(table)})"))


def _difference(conn: sqlite3.Connection, table: str,
                defined: tuple[str, ...]) -> columns.Difference:
    """The table's columns against its definitions, declared types compared as SQLite
    keeps them, in any case. A NOT NULL column without a default fails every insert that
    leaves it out."""
    expected = {n: t.upper() for n, t in columns.declared(defined).items()}
    held = [columns.Held(str(name), str(kind).upper(), bool(notnull) and default is None)
            for _, name, kind, notnull, default, _ in _held(conn, table)]
    return columns.compare(table, expected, held)


def _definitions(conn: sqlite3.Connection, table: str,
                 names: tuple[str, ...]) -> dict[str, str]:
    """A definition for each of the columns `names` of `table` that makes it again: its
    declared type, NOT NULL and default."""
    return {str(name): f"{q(str(name))} {kind}" + (" NOT NULL" if notnull else "")
            + (f" DEFAULT {default}" if default is not None else "")
            for _, name, kind, notnull, default, _ in _held(conn, table) if name in names}


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the database holds a table of that name (an older version may not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None
