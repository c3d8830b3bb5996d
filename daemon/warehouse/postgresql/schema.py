"""The PostgreSQL warehouse's schema: its version, its reading, the migration.

The tables (`shape`) are SQLite's, in native types, plus `claims` for daemons sharing
the work, for every feed of the settings: the daemon's own in the bookkeeping schema
(`books`), the fact tables and the `load_history` view in the fact schema (`analysts`).
`migrate` first reads what the database holds from its catalogs (`holdings`: no lock
on any table, so a start waits for no running load), which refuses tables that are not
ours (columns missing or of another type) or a newer version, accepts extra columns a
DBA added that the daemon's inserts can leave out, with a warning (`columns`), and
reads each feed's fact table against its declaration (`evolve`). Only when the version is
behind, a table or the view is missing or a declaration changed does it run DDL: in one
transaction, under a transaction-scoped advisory lock so that daemons starting together
do not race, creating only what is missing, altering an older database in place
(`upgrade`, logged `schema_migrated`: a version-4 database's bookkeeping moves out of
the fact schema) and writing the comments analysts read, with a lock timeout short
enough that a lock it must queue for (behind a long merge) never holds up the running
loads for more than a moment: it gives up (`WarehouseBusy`, which the start waits out)
instead. Only the tables' owner, with CREATE on both schemas (or on the database, for a
bookkeeping schema not made yet), may do that; any other role is refused, told to have
the owner run `filedrop-etl migrate`. `require_current` is the same reading for
`retry`, which never migrates; `check`, the read side's, refuses a database whose
daemon's tables are not in the bookkeeping schema yet, where its questions are asked.
No superuser and no extension needed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from psycopg import errors

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.errors import SchemaMismatch
from filedrop_etl.daemon.warehouse import columns
from filedrop_etl.daemon.warehouse.api import WarehouseBusy
from filedrop_etl.daemon.warehouse.postgresql import analysts, catalog, evolve, upgrade
from filedrop_etl.daemon.warehouse.postgresql.books import Books
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt, transaction
from filedrop_etl.daemon.warehouse.postgresql.holdings import Found, inspect, recorded
from filedrop_etl.daemon.warehouse.postgresql.shape import (
    BEFORE_FEEDS,
    BESIDE_FACTS,
    CLAIMS_TABLE,
    DROPS_TABLE,
    SCHEMA_VERSION,
    VERSION_TABLE,
    bookkeeping_indexes,
    bookkeeping_tables,
    fact_indexes,
    fact_tables,
    tables,
)
from filedrop_etl.daemon.warehouse.sql import LEDGER_TABLE, q

__all__ = ["CLAIMS_TABLE", "DROPS_TABLE", "LOCK_SPACE", "SCHEMA_VERSION", "VERSION_TABLE",
           "check", "migrate", "require_current", "tables"]
log = structlog.get_logger("daemon.schema")
# The first key of every advisory lock this backend takes (the second names what).
LOCK_SPACE = 0x45544C  # "ETL"
MIGRATION_LOCK = 0
# How long the migration's DDL waits for a table lock (`CREATE INDEX` takes SHARE). While
# it waits, every load that asks for the table queues behind it; a merge of millions of
# rows can hold the table for minutes. Giving up this soon costs the start a retry with
# backoff, and the loads at most this moment.
DDL_LOCK_TIMEOUT_MS = 500

def check(conn: Connection) -> int:
    """The schema version; `SchemaMismatch` unless this program can read the database:
    the read side asks its questions of the bookkeeping schema, where an older version
    (4 and before) did not keep its tables."""
    found, home = recorded(conn)
    if found is None:
        raise SchemaMismatch(f"the database has no {LEDGER_TABLE} table",
                             hint="point --db at the daemon's database (and "
                             "--bookkeeping-schema at its bookkeeping, if it was set)")
    if found > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database has schema version {found}; this program knows {SCHEMA_VERSION}",
            hint="use the newer filedrop-etl that wrote it")
    if home is None:
        raise SchemaMismatch(
            f"the database is at schema version {found}, whose daemon's tables sit beside "
            f"the fact tables; this filedrop-etl reads version {SCHEMA_VERSION}, which keeps "
            f"them in schema {conn.books.schema}", hint=_MIGRATE_HINT)
    return found


_MIGRATE_HINT = ("start a daemon of this release on it (it migrates at its start), or run "
                 "`filedrop-etl migrate` as the role that owns the tables")


def require_current(conn: Connection, feeds: Sequence[Contract]) -> int:
    """The schema version, if it is this program's; else `SchemaMismatch` saying how to
    migrate it (for `retry`, which never does: DDL waits on running loads)."""
    found = inspect(conn, feeds)
    if found.version is None and len(found.missing) == len(tables(feeds)):
        raise SchemaMismatch(f"the database has no {LEDGER_TABLE} table",
                             hint="point --db at the daemon's database")
    if found.behind:
        raise SchemaMismatch(
            f"{_behind(found)}; `retry` does not migrate it",
            hint=f"{_MIGRATE_HINT}; then retry again")
    return SCHEMA_VERSION


def _behind(found: Found) -> str:
    what = [f"tables missing: {', '.join(found.missing)}"] if found.missing else []
    if found.changes:
        what.append("tables whose feed's declaration changed: "
                    + ", ".join(c.contract.fact_table for c in found.changes))
    if not found.view and found.home is not None:
        what.append(f"the {analysts.VIEW} view missing")
    at = ("records no schema version" if found.version is None else
          f"is at schema version {found.version}")
    said = f" ({'; '.join(what)})" if what else ""
    return f"the database {at}{said}; this filedrop-etl needs version {SCHEMA_VERSION}"


def migrate(conn: Connection, feeds: Sequence[Contract]) -> int | None:
    """Bring the schema to this version and the feeds' tables to their declarations
    (see the module); the version found before it, None for a database without one.
    Warns of extra columns."""
    found = inspect(conn, feeds)
    if found.behind:
        started, locked, steps = time.monotonic(), False, []
        try:
            with transaction(conn):
                # Waited for as long as the busy timeout: another daemon's migration.
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                             (LOCK_SPACE, MIGRATION_LOCK))
                found = inspect(conn, feeds)  # it may have migrated meanwhile
                if found.behind:
                    _may_migrate(conn, feeds, found)
                    conn.execute(stmt(f"SET LOCAL lock_timeout = {DDL_LOCK_TIMEOUT_MS}"))
                    locked = True
                    steps = _create(conn, feeds, found)
        except errors.LockNotAvailable as exc:
            if not locked:
                raise
            raise WarehouseBusy(
                f"the migration to schema version {SCHEMA_VERSION} needs a table lock that "
                f"another session holds (a running load?); it gave up after "
                f"{DDL_LOCK_TIMEOUT_MS} ms so as not to hold up the loads",
                hint="a start tries again with backoff; to migrate at once, run `filedrop-etl "
                "migrate` while no load runs (the daemons of the old release stopped)") from exc
        created = [evolve.Change(c, recreate="created") for c in feeds
                   if not c.builtin and c.fact_table in found.missing]
        for change in (*created, *found.changes):
            evolve.logged(change)
        if steps:
            log.info("schema_migrated", from_version=found.version, to_version=SCHEMA_VERSION,
                     steps=steps, duration_ms=round((time.monotonic() - started) * 1000))
    columns.warn_extra(found.extra)
    return found.version


def _may_migrate(conn: Connection, feeds: Sequence[Contract], found: Found) -> None:
    """`SchemaMismatch` unless the session's role may run the migration's DDL."""
    why, hint = [], ""
    books, role = conn.books, catalog.role(conn)
    others = [*catalog.not_owned(conn, [*bookkeeping_tables(feeds), VERSION_TABLE],
                                 found.home),
              *catalog.not_owned(conn, list(fact_tables(feeds)))]
    if others:
        why.append(f"it does not own {', '.join(others)}")
    facts = set(fact_tables(feeds))
    if ((facts & set(found.missing)) or not found.view) and not catalog.may_create(conn):
        where = catalog.schema(conn)
        why.append(f"it may not create tables in schema {where}" if where else
                   f"no schema of its search_path ({catalog.search_path(conn)}) exists, "
                   "or it lacks USAGE on it")
    if (set(found.missing) - facts or found.home is None or found.version is None) \
            and not catalog.may_create(conn, books.schema):
        made = catalog.schema_exists(conn, books.schema)
        why.append(f"it may not create tables in schema {books.schema}" if made else
                   f"it may not create schema {books.schema}, where the daemon keeps its "
                   "own tables (CREATE on the database)")
        # The owner of the fact schema alone, as before version 5: make it the schema.
        hint = "" if made else (
            f"as the database's owner or a superuser: CREATE SCHEMA {books.quoted} "
            f"AUTHORIZATION {q(role)} (or set bookkeeping_schema to a schema where this "
            "role may create tables); or ")
    if why:
        raise SchemaMismatch(
            f"{_behind(found)}, and role {role} may not migrate it: " + "; ".join(why),
            hint=hint + "run `filedrop-etl migrate` once with the --db of the role that "
            "owns the tables (add `--grant ROLE` to give this role what it needs), then "
            "start this daemon again")


def _create(conn: Connection, feeds: Sequence[Contract], found: Found) -> list[str]:
    """The DDL: an older database altered (its bookkeeping moved), the tables, indexes
    and view missing, the feeds' tables changed, the comments, and the version; the
    steps of a version's migration, if it was one."""
    books, held = conn.books, found.held or {}
    steps = []
    if not catalog.schema_exists(conn, books.schema):
        # Not IF NOT EXISTS: that asks for CREATE on the database even where a DBA made
        # the schema for the owner beforehand.
        conn.execute(stmt(f"CREATE SCHEMA {books.quoted}"))
    if found.home is None:
        if found.version is not None and found.version <= BEFORE_FEEDS:
            steps += upgrade.from_v3(conn, held)
        kept = [t for t in bookkeeping_tables(feeds, BESIDE_FACTS) if t in held]
        steps += upgrade.relocate(conn, books, [*kept, VERSION_TABLE])
        steps += upgrade.from_v4(conn, books, held)
    elif not catalog.existing(conn, [VERSION_TABLE], books.schema):
        conn.execute(stmt(f"CREATE TABLE {books.version} (version int NOT NULL)"))
    kept_now = bookkeeping_tables(feeds)
    defined = {**kept_now, **fact_tables(feeds)}
    for table in found.missing:
        name = books.table(table) if table in kept_now else q(table)
        conn.execute(stmt(f"CREATE TABLE {name} ({', '.join(defined[table])})"))
    for change in found.changes:
        evolve.apply(conn, change)
    _indexes(conn, books, feeds)
    analysts.create_view(conn, books)
    analysts.describe_facts(conn, feeds)
    if found.version != SCHEMA_VERSION:
        conn.execute(stmt(f"DELETE FROM {books.version}"))
        conn.execute(stmt(f'INSERT INTO {books.version} ("version") VALUES (%s)'),
                     (SCHEMA_VERSION,))
    if found.version is not None and found.version != SCHEMA_VERSION:
        steps.append(f"schema version {found.version} -> {SCHEMA_VERSION}")
        return steps
    return []


def _indexes(conn: Connection, books: Books, feeds: Sequence[Contract]) -> None:
    """The indexes missing, each in its table's schema."""
    for wanted, where in ((bookkeeping_indexes(books), books.schema),
                          (fact_indexes(feeds), None)):
        for name in sorted(set(wanted) - catalog.existing(conn, list(wanted), where)):
            conn.execute(stmt(wanted[name]))
