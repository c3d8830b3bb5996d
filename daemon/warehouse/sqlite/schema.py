"""The database's shape kept right: the version, the migrations, each feed's evolution.

`init_schema` creates what is missing for every feed the daemon serves (the definitions
are `tables`'), migrates an older version forward in place, evolves a declared feed's
table as its declaration changed (`columns.evolve`), and refuses a database it did not
write (the prototype's tables, say: columns missing or of another type) or one of a
newer version, before any file could fail on it. Columns a DBA added to the built-in
feed's or the shared tables that the daemon's inserts can leave out are accepted with a
warning, and kept through the version-4 rebuild (`columns`). Identifiers come from the
contract values it is given.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

import structlog

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon import crashpoints
from filedrop_etl.daemon.errors import SchemaMismatch
from filedrop_etl.daemon.warehouse import columns
from filedrop_etl.daemon.warehouse.sql import (
    DAYS_SUFFIX,
    DISMISSALS_TABLE,
    EARLIEST_FEED,
    LEDGER_TABLE,
    RETRIES_TABLE,
    Tables,
    q,
)
from filedrop_etl.daemon.warehouse.sqlite import migrate
from filedrop_etl.daemon.warehouse.sqlite import tables as defs
from filedrop_etl.daemon.warehouse.sqlite.connection import transaction
from filedrop_etl.daemon.warehouse.sqlite.tables import has_table

log = structlog.get_logger("daemon.schema")

# 1: fact, staging and load_history. 2: `retries`. 3: `daemons`. 4: the fact table
# WITHOUT ROWID, `<fact>_days`. 5: declared feeds: the ledger's `feed`. 6: the ledger's
# `node` (see `init_schema` for the migrations). `dismissals` came without a version of
# its own: older releases ignore it, and every start creates it where it is missing.
SCHEMA_VERSION = 6
# The version that added the `retries` table, which `retry` writes.
RETRIES_VERSION = 2

def init_schema(conn: sqlite3.Connection, feeds: Contract | Iterable[Contract], *,
                chunk_rows: int = migrate.CHUNK_ROWS) -> None:
    """Create the tables of `feeds` (and the shared ones) if missing, evolve declared
    feeds' tables, then insist that existing ones are ours.

    Raises `SchemaMismatch` for a database written by another program (the prototype's
    tables, say), by a newer version, or whose declared feed's table holds rows its
    declaration no longer fits, before any file could fail on it.

    This is also the forward migration, in place and in one transaction: a failed or
    killed migration leaves the database as it was. From version 1 to 2 it is the
    `CREATE TABLE IF NOT EXISTS` of `retries`, and from 2 to 3 that of `daemons`. From
    3 to 4 the built-in feed's fact table is rebuilt (`migrate.rebuild_fact`, logged
    with its progress) and its rows per day counted; once that is committed, the file is
    compacted. From 4 to 5 the ledger gains `feed`, every earlier load the built-in
    feed's; from 5 to 6, `node` (null for every earlier load: not recorded then).
    """
    feeds = (feeds,) if isinstance(feeds, Contract) else tuple(feeds)
    started = time.monotonic()
    steps: list[str] = []
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the database has schema version {version}; this daemon knows {SCHEMA_VERSION}",
                hint="run the newer daemon that wrote it, or point --db at another file",
            )
        builtin = next((c for c in feeds if c.builtin), None)
        if 0 < version < 4 and builtin is None:
            raise SchemaMismatch(
                f"the database has schema version {version}, whose fact table is the "
                f"built-in {EARLIEST_FEED} feed's, which this daemon does not serve: it "
                "can not rebuild that table",
                hint=f"start once with the {EARLIEST_FEED} feed served too (declare "
                f"[feeds.{EARLIEST_FEED}] beside your feeds), then as you like")
        rebuild = builtin is not None and version < 4 and has_table(conn,
                                                                     builtin.fact_table)
        if has_table(conn, LEDGER_TABLE) and "feed" not in defs.names(conn, LEDGER_TABLE):
            conn.execute(f"ALTER TABLE {q(LEDGER_TABLE)} ADD COLUMN {defs.LEDGER_FEED}")
            steps.append(f"ledger: feed column added, every earlier load {EARLIEST_FEED}")
        if has_table(conn, LEDGER_TABLE) and "node" not in defs.names(conn, LEDGER_TABLE):
            conn.execute(f"ALTER TABLE {q(LEDGER_TABLE)} ADD COLUMN {defs.LEDGER_NODE}")
            steps.append("ledger: node column added, null for every earlier load")
        if has_table(conn, LEDGER_TABLE) and not has_table(conn, DISMISSALS_TABLE):
            steps.append(f"{DISMISSALS_TABLE}: table added")
        tables = defs.shared_tables()
        for table, defined in tables.items():
            conn.execute(defs.create(q(table), defined, False))
        evolved = [_evolve(conn, c) for c in feeds if not c.builtin]
        for contract in feeds:
            one_btree = defs.without_rowid(contract)
            for table, defined in defs.feed_tables(contract).items():
                conn.execute(defs.create(q(table), defined, table in one_btree))
                tables[table] = defined
        declared = {c.fact_table for c in feeds if not c.builtin}
        differences = [_difference(conn, table, defined) for table, defined in tables.items()
                       if table not in declared]
        for difference in differences:
            if difference.refused:
                raise columns.refusal(difference)
        migrated = None
        if rebuild:
            assert builtin is not None
            # A DBA's own columns go into the new table too, as they were declared.
            [extra] = [d.extra for d in differences if d.table == builtin.fact_table]
            kept = _definitions(conn, builtin.fact_table, extra)
            fact = (*tables[builtin.fact_table], *kept.values())
            migrated = migrate.rebuild_fact(
                conn, Tables(builtin), lambda name: defs.create(name, fact, True),
                from_version=version, to_version=SCHEMA_VERSION, chunk_rows=chunk_rows,
                extra=tuple(kept))
        elif steps:
            crashpoints.reached("during_migration")
        for contract in feeds:
            if contract.date_column is not None and not contract.dated_keys:
                # Replace mode deletes a date's missing keys, and a key range can not
                # find them.
                names = Tables(contract)
                conn.execute(f"CREATE INDEX IF NOT EXISTS {names.date_index} "
                             f"ON {names.fact} ({names.date})")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {q(LEDGER_TABLE + '_file_name')} "
                     f"ON {q(LEDGER_TABLE)} (\"file_name\")")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {q(LEDGER_TABLE + '_claim')} "
                     f"ON {q(LEDGER_TABLE)} (\"claim\")")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {q(RETRIES_TABLE + '_file_name')} "
                     f"ON {q(RETRIES_TABLE)} (\"file_name\")")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    columns.warn_extra(differences)
    for feed, evolution in evolved:
        _log_evolution(feed, evolution)
    if migrated is not None:
        assert builtin is not None
        grown = migrate.file_bytes(conn)
        compacted = migrate.compact(conn)
        log.info("schema_migrated", from_version=version, to_version=SCHEMA_VERSION,
                 table=builtin.fact_table, rows=migrated, file_bytes_before=grown,
                 file_bytes=migrate.file_bytes(conn) if compacted else grown,
                 steps=["fact table rebuilt WITHOUT ROWID",
                        *([] if not builtin.keys_carry_their_date else
                          ["run-date index dropped: keys carry their date"]),
                        f"rows per day counted into {builtin.fact_table + DAYS_SUFFIX}",
                        *steps, *(["file compacted (VACUUM)"] if compacted else [])],
                 duration_ms=round((time.monotonic() - started) * 1000))
    elif steps:
        log.info("schema_migrated", from_version=version, to_version=SCHEMA_VERSION,
                 steps=steps, duration_ms=round((time.monotonic() - started) * 1000))


def _evolve(conn: sqlite3.Connection, contract: Contract) -> tuple[str, columns.Evolution]:
    """A declared feed's fact table, if it exists, made to fit its declaration: columns
    added, or (empty) made again; `SchemaMismatch` where it holds rows that do not fit.
    Inside the caller's transaction; the caller logs what was done once committed."""
    table = contract.fact_table
    if not has_table(conn, table):
        return contract.name, columns.Evolution(table, recreate="created")
    defined = defs.fact_columns(contract)
    expected = {n: t.upper() for n, t in columns.declared(defined).items()}
    info = defs.held(conn, table)
    held = [columns.Held(str(name), str(kind).upper(), bool(notnull) and default is None,
                         bool(notnull)) for _, name, kind, notnull, default, _ in info]
    held_key = [str(row[1]) for row in sorted(info, key=lambda row: row[5]) if row[5]]
    addable = {c.name for c in contract.columns if c.may_be_absent}
    has_rows = bool(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {q(table)})").fetchone()[0])

    def holds_null(column: str) -> bool:
        return bool(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {q(table)} "
                                 f"WHERE {q(column)} IS NULL)").fetchone()[0])

    evolution = columns.evolve(contract.name, table, expected, held, key=contract.key,
                               held_key=held_key, addable=addable, has_rows=has_rows,
                               not_null=columns.not_null(defined, contract.key),
                               holds_null=holds_null)
    if evolution.refusal is not None:
        raise evolution.refusal
    by_name = {d.partition(" ")[0].strip('"'): d for d in defined}
    if evolution.recreate:
        for old in (table, table + DAYS_SUFFIX):
            conn.execute(f"DROP TABLE IF EXISTS {q(old)}")
    elif evolution.renulled:
        # Made again as declared, the added columns with it (their default, or null).
        migrate.reshape(conn, Tables(contract), lambda name: defs.create(name, defined, True),
                        tuple(c.name for c in held))
        return contract.name, evolution
    for name in evolution.added:
        conn.execute(f"ALTER TABLE {q(table)} ADD COLUMN {by_name[name]}")
    return contract.name, evolution


def _log_evolution(feed: str, evolution: columns.Evolution) -> None:
    if evolution.recreate == "created":
        log.info("table_created", feed=feed, table=evolution.table)
    elif evolution.recreate:
        log.info("table_recreated", feed=feed, table=evolution.table,
                 reason=evolution.recreate)
    for event, names in (("table_columns_added", evolution.added),
                         ("table_columns_relaxed", evolution.relaxed),
                         ("table_columns_tightened", evolution.tightened)):
        if names:
            log.info(event, feed=feed, table=evolution.table, columns=list(names))


def _difference(conn: sqlite3.Connection, table: str,
                defined: tuple[str, ...]) -> columns.Difference:
    """The table's columns against its definitions, declared types compared as SQLite
    keeps them, in any case. A NOT NULL column without a default fails every insert that
    leaves it out."""
    expected = {n: t.upper() for n, t in columns.declared(defined).items()}
    held = [columns.Held(str(name), str(kind).upper(), bool(notnull) and default is None)
            for _, name, kind, notnull, default, _ in defs.held(conn, table)]
    return columns.compare(table, expected, held)


def _definitions(conn: sqlite3.Connection, table: str,
                 names: tuple[str, ...]) -> dict[str, str]:
    """A definition for each of the columns `names` of `table` that makes it again: its
    declared type, NOT NULL and default."""
    return {str(name): f"{q(str(name))} {kind}" + (" NOT NULL" if notnull else "")
            + (f" DEFAULT {default}" if default is not None else "")
            for _, name, kind, notnull, default, _ in defs.held(conn, table) if name in names}
