"""Each table's definitions: the shared ones, and those of each feed.

The column definitions `schema` creates tables from and checks them against (the first
word of each is its column's name): the ledger, `retries` and `daemons` that every feed
shares, and a feed's fact table (its columns in SQLite's types, NOT NULL unless declared
nullable, its declared defaults, its key) and rows per date; for the built-in feed, the
staging table of record that version 1 defined. Also the catalog's few answers those
need. It creates nothing itself.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.warehouse.sql import (
    DAEMONS_TABLE,
    DAYS_SUFFIX,
    DISMISSALS_TABLE,
    EARLIEST_FEED,
    LEDGER_TABLE,
    RETRIES_TABLE,
    Tables,
    q,
)
from filedrop_etl.daemon.warehouse.sqlite.types import column_type, literal

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
    # Version 5: the feed the file belonged to.
    '"feed" TEXT NOT NULL',
    # Version 6: the node whose daemon made the attempt (the `node` setting); null for
    # the attempts before, which did not record it.
    '"node" TEXT',
)
# Version 5 adds the column to a ledger that exists: every load before was the built-in
# feed's (SQLite adds a NOT NULL column only with a default).
LEDGER_FEED = f""""feed" TEXT NOT NULL DEFAULT '{EARLIEST_FEED}'"""
LEDGER_NODE = '"node" TEXT'


# One row per failed file an operator dismissed: removed from failed/ without a retry,
# most often as superseded, a later drop of its feed's run date having loaded since
# (`daemon.ops.dismissals`). A table older releases ignore, so no version of its own:
# every start creates it if missing, and so does the first dismissal.
DISMISSALS = (
    '"id" INTEGER PRIMARY KEY',
    '"file_name" TEXT NOT NULL',  # the name it was dropped under
    '"failed_as" TEXT NOT NULL',  # its name in failed/
    '"feed" TEXT',  # its feed and run date, as its sidecar or its name says
    '"run_date" TEXT',
    '"sha256" TEXT',  # of the file removed
    '"reason" TEXT',  # the sidecar's one-line reason for the failure
    '"sidecar" TEXT',  # the whole sidecar, which the dismissal removes
    '"superseded_by" INTEGER',  # the ledger's id of the load that stands for its date
    '"why" TEXT NOT NULL',  # why it was dismissed, in words
    '"dismissed_by" TEXT',  # the OS user
    '"node" TEXT NOT NULL',
    '"dismissed_at" TEXT NOT NULL',
)


def shared_tables() -> dict[str, tuple[str, ...]]:
    """The tables every feed shares, each with its column definitions, in order."""
    return {
        LEDGER_TABLE: _LEDGER_COLUMNS,
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
        DISMISSALS_TABLE: DISMISSALS,
    }



def fact_columns(contract: Contract) -> tuple[str, ...]:
    """The fact table's definitions: the feed's columns (NOT NULL unless declared
    nullable, and every key column), who loaded each row, and the key. A one-column key
    is declared on its column, as the built-in feed's always was."""
    key = contract.key
    defined = []
    for c in contract.columns:
        definition = f"{q(c.name)} {column_type(c)}"
        if c.name in key or not c.nullable:
            definition += " NOT NULL"
        if c.default is not None:
            definition += f" DEFAULT {literal(c, c.default)}"
        if key == (c.name,):
            definition += " PRIMARY KEY"
        defined.append(definition)
    return (*defined, '"loaded_at" TEXT NOT NULL',
            f'"load_id" INTEGER REFERENCES {q(LEDGER_TABLE)} ("id")',
            *([f"PRIMARY KEY ({Tables(contract).key})"] if len(key) > 1 else []))


def feed_tables(contract: Contract) -> dict[str, tuple[str, ...]]:
    """A feed's own tables, each with its column definitions, in order."""
    tables = {}
    if contract.builtin:
        # The schema of record for staging, kept as version 1 defined it so that older
        # databases open unchanged. It stays empty: each load stages its rows in a table
        # of this name in its own staging database (see `daemon.warehouse.sqlite.staging`).
        # A declared feed has none: staging is never in the daemon's database.
        tables[contract.staging_table] = (
            *(f"{q(c.name)} {column_type(c)}" + (" PRIMARY KEY" if c.name == contract.key[0]
                                                 else "") for c in contract.columns),
            '"occurrences" INTEGER NOT NULL DEFAULT 1',
        )
    tables[contract.fact_table] = fact_columns(contract)
    if contract.date_column is not None:
        # Version 4: the fact's rows per date, written by each load in its own
        # transaction, so that the page and `report` need not count the fact table.
        tables[contract.fact_table + DAYS_SUFFIX] = (
            f"{q(contract.date_column)} TEXT PRIMARY KEY",
            '"rows" INTEGER NOT NULL',
        )
    return tables


def without_rowid(contract: Contract) -> frozenset[str]:
    # Version 4: the fact's rows live in its key's B-tree, not in a rowid table beside a
    # key index: one B-tree written per row instead of two, and a third of the size.
    return frozenset({contract.fact_table, contract.fact_table + DAYS_SUFFIX})


def create(table: str, columns: tuple[str, ...], without_rowid: bool) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)})"
            + (" WITHOUT ROWID" if without_rowid else ""))


def names(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in held(conn, table)}


def held(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    # cid, name, declared type, notnull, default, pk: one row per column, in order.
    return list(conn.execute(f"PRAGMA table_info({q(table)})"))


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the database holds a table of that name (an older version may not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None
