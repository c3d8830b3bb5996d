"""The PostgreSQL warehouse's schema: its version, its reading, the migration.

The tables (`shape`) are SQLite's, in native types, plus `claims` for daemons sharing
the work, for every feed of the settings. `migrate` first reads what the database holds
from its catalogs (`catalog`: no lock on any table, so a start waits for no running
load), refuses tables that are not ours (columns missing or of another type) or a newer
version, accepts extra columns a DBA added that the daemon's inserts can leave out, with
a warning (`columns`), and reads each feed's fact table against its declaration
(`evolve`). Only when the version is behind, a table is missing or a declaration
changed does it run DDL: in one transaction, under a transaction-scoped advisory lock
so that daemons starting together do not race, creating only what is missing and
altering a version-3 database in place (`evolve.upgrade`, logged `schema_migrated`),
with a lock timeout short enough that a lock it must queue for (behind a long merge)
never holds up the running loads for more than a moment: it gives up (`WarehouseBusy`,
which the start waits out) instead. Only the tables' owner, with CREATE on the schema,
may do that; any other role is refused, told to have the owner run `filedrop-etl
migrate`. `require_current` is the same reading for `retry`, which never migrates. No
superuser and no extension needed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import structlog
from psycopg import errors

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.errors import DatabaseUnavailable, SchemaMismatch
from filedrop_etl.daemon.warehouse import columns
from filedrop_etl.daemon.warehouse.api import WarehouseBusy
from filedrop_etl.daemon.warehouse.postgresql import catalog, evolve
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt, transaction
from filedrop_etl.daemon.warehouse.postgresql.shape import (
    BEFORE_FEEDS,
    CLAIMS_TABLE,
    DROPS_TABLE,
    FACT_EXTRA,
    SCHEMA_VERSION,
    VERSION_TABLE,
    indexes,
    tables,
)
from filedrop_etl.daemon.warehouse.sql import LEDGER_TABLE, q

__all__ = ["CLAIMS_TABLE", "DROPS_TABLE", "LOCK_SPACE", "SCHEMA_VERSION", "VERSION_TABLE",
           "check", "indexes", "migrate", "require_current", "tables"]
log = structlog.get_logger("daemon.schema")
# The first key of every advisory lock this backend takes (the second names what).
LOCK_SPACE = 0x45544C  # "ETL"
MIGRATION_LOCK = 0
# How long the migration's DDL waits for a table lock (`CREATE INDEX` takes SHARE). While
# it waits, every load that asks for the table queues behind it; a merge of millions of
# rows can hold the table for minutes. Giving up this soon costs the start a retry with
# backoff, and the loads at most this moment.
DDL_LOCK_TIMEOUT_MS = 500

_GRANT_HINT = ("as the role that owns the daemon's tables, run `filedrop-etl migrate "
               "--grant {role}` (see the README's \"Two roles\"), then try again")


def version(conn: Connection) -> int | None:
    """The recorded schema version; None where this daemon never migrated."""
    if VERSION_TABLE not in catalog.existing(conn, [VERSION_TABLE]):
        return None
    if catalog.lacking(conn, [VERSION_TABLE], ["SELECT"]):
        raise DatabaseUnavailable(
            f"role {catalog.role(conn)} may not read {VERSION_TABLE}, the schema's version",
            hint=_GRANT_HINT.format(role=catalog.role(conn)))
    row = conn.execute(stmt(f"SELECT max(version) FROM {q(VERSION_TABLE)}")).fetchone()
    return None if row is None or row[0] is None else int(str(row[0]))


def check(conn: Connection) -> int:
    """The schema version; `SchemaMismatch` unless this program can read the database."""
    found = version(conn)
    if found is None:
        raise SchemaMismatch(f"the database has no {LEDGER_TABLE} table",
                             hint="point --db at the daemon's database")
    if found > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database has schema version {found}; this program knows {SCHEMA_VERSION}",
            hint="use the newer filedrop-etl that wrote it")
    return found


@dataclass(frozen=True)
class Found:
    """What the database holds of the schema: its version, the tables missing, the
    tables with extra columns the daemon accepts, and the feeds' tables to change."""

    version: int | None
    missing: tuple[str, ...]
    extra: tuple[columns.Difference, ...]
    changes: tuple[evolve.Change, ...] = ()
    held: dict[str, list[columns.Held]] | None = None

    @property
    def behind(self) -> bool:
        return self.version != SCHEMA_VERSION or bool(self.missing or self.changes)


def inspect(conn: Connection, feeds: Sequence[Contract]) -> Found:
    """Read the schema from the catalogs; `SchemaMismatch` for a newer version, a table
    that is not the daemon's (columns missing, changed, or in the way) or a feed's table
    that its declaration can not be brought to without losing data (`evolve.plan`)."""
    found = version(conn)
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database has schema version {found}; this daemon knows {SCHEMA_VERSION}",
            hint="run the newer daemon that wrote it, or point --db at another database")
    held = catalog.columns(conn, list(tables(feeds)))
    # A version-3 database is read as version 3 defined its tables (those not altered
    # yet: `evolve.upgrade` alters each it finds without `feed`).
    before = tables(feeds, BEFORE_FEEDS) if found is not None and found <= BEFORE_FEEDS else {}
    defined = {t: columns.declared(
                   before[t] if t in before and "feed" not in {c.name for c in held.get(t, [])}
                   else c) for t, c in tables(feeds).items()}
    names = catalog.canonical(conn, (k for d in defined.values() for k in d.values()))
    declared = {c.fact_table: c for c in feeds if not c.builtin}
    extra_types = {n: names[k] for n, k in columns.declared(FACT_EXTRA).items()}
    differences, changes = [], []
    for table in (t for t in defined if t in held):
        if table in declared:
            change = evolve.plan(declared[table], held[table],
                                 catalog.primary_key(conn, table), extra_types,
                                 partial(_holds_rows, conn, table),
                                 partial(_holds_null, conn, table))
            changes += [change] if change is not None else []
            continue
        difference = columns.compare(
            table, {c: names[k] for c, k in defined[table].items()}, held[table])
        if difference.refused:
            raise columns.refusal(difference)
        differences.append(difference)
    return Found(found, tuple(t for t in defined if t not in held),
                 tuple(d for d in differences if d.extra), tuple(changes), held)


def _holds_rows(conn: Connection, table: str) -> bool:
    row = conn.execute(stmt(f"SELECT EXISTS (SELECT 1 FROM {q(table)})")).fetchone()
    return bool(row and row[0])


def _holds_null(conn: Connection, table: str, column: str) -> bool:
    row = conn.execute(stmt(f"SELECT EXISTS (SELECT 1 FROM {q(table)} "
                            f"WHERE {q(column)} IS NULL)")).fetchone()
    return bool(row and row[0])


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
            hint="start a daemon of this release on it (it migrates at its start), or run "
            "`filedrop-etl migrate` as the role that owns the tables; then retry again")
    return SCHEMA_VERSION


def _behind(found: Found) -> str:
    missing = f" (tables missing: {', '.join(found.missing)})" if found.missing else ""
    changed = (f" (tables whose feed's declaration changed: "
               f"{', '.join(c.contract.fact_table for c in found.changes)})"
               if found.changes else "")
    at = ("records no schema version" if found.version is None else
          f"is at schema version {found.version}")
    return (f"the database {at}{missing}{changed}; this filedrop-etl needs version "
            f"{SCHEMA_VERSION}")


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
    why = []
    others = catalog.not_owned(conn, [*tables(feeds), VERSION_TABLE])
    if others:
        why.append(f"it does not own {', '.join(others)}")
    if (found.missing or VERSION_TABLE not in catalog.existing(conn, [VERSION_TABLE])) \
            and not catalog.may_create(conn):
        where = catalog.schema(conn)
        why.append(f"it may not create tables in schema {where}" if where else
                   f"no schema of its search_path ({catalog.search_path(conn)}) exists, "
                   "or it lacks USAGE on it")
    if why:
        raise SchemaMismatch(
            f"{_behind(found)}, and role {catalog.role(conn)} may not migrate it: "
            + "; ".join(why),
            hint="run `filedrop-etl migrate` once with the --db of the role that owns the "
            "tables (add `--grant ROLE` to give this role what it needs), then start "
            "this daemon again")


def _create(conn: Connection, feeds: Sequence[Contract], found: Found) -> list[str]:
    """The DDL: a version-3 database altered, the tables and indexes missing, the feeds'
    tables changed, and the version; the steps of a version's migration, if it was one."""
    steps = []
    if not catalog.existing(conn, [VERSION_TABLE]):
        conn.execute(stmt(f"CREATE TABLE {q(VERSION_TABLE)} (version int NOT NULL)"))
    if found.version is not None and found.version <= BEFORE_FEEDS:
        steps += evolve.upgrade(conn, found.held or {})
    defined = tables(feeds)
    for table in found.missing:
        conn.execute(stmt(f"CREATE TABLE {q(table)} ({', '.join(defined[table])})"))
    for change in found.changes:
        evolve.apply(conn, change)
    wanted = indexes(feeds)
    for name in sorted(set(wanted) - catalog.existing(conn, list(wanted))):
        conn.execute(stmt(wanted[name]))
    if found.version != SCHEMA_VERSION:
        conn.execute(stmt(f"DELETE FROM {q(VERSION_TABLE)}"))
        conn.execute(stmt(f'INSERT INTO {q(VERSION_TABLE)} ("version") VALUES (%s)'),
                     (SCHEMA_VERSION,))
    if found.version is not None and found.version != SCHEMA_VERSION:
        steps.append(f"schema version {found.version} -> {SCHEMA_VERSION}")
        return steps
    return []
