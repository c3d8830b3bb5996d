"""What a PostgreSQL database holds of the daemon's schema, read from its catalogs.

The recorded version and where the daemon's own tables are (`recorded`: the
bookkeeping schema, or, for version 4 and before, the fact tables' schema, through the
search_path), and every table of the settings' feeds against its definition (`inspect`:
the bookkeeping tables as the found version defined them, the fact tables against their
feeds' declarations, the `load_history` view there or not). No lock on any table: a
start on a current schema waits for no running load. Refuses (`SchemaMismatch`) a newer
version, a table that is not the daemon's, a feed's table its declaration can not be
brought to without losing data (`evolve.plan`), and a bookkeeping schema that is the
fact tables' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.errors import DatabaseUnavailable, SchemaMismatch
from filedrop_etl.daemon.warehouse import columns
from filedrop_etl.daemon.warehouse.postgresql import analysts, catalog, evolve
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.postgresql.shape import (
    FACT_EXTRA,
    SCHEMA_VERSION,
    VERSION_TABLE,
    bookkeeping_tables,
    fact_tables,
)
from filedrop_etl.daemon.warehouse.sql import q

GRANT_HINT = ("as the role that owns the daemon's tables, run `filedrop-etl migrate "
              "--grant {role}` (see the README's \"Two roles\"), then try again")


def recorded(conn: Connection) -> tuple[int | None, str | None]:
    """The recorded schema version (None where this daemon never migrated) and the
    schema the daemon's own tables are in: the bookkeeping schema, or None for the
    fact tables' (found through the search_path: version 4 and before)."""
    books = conn.books
    if not catalog.may_use(conn, books.schema):
        role = catalog.role(conn)
        raise DatabaseUnavailable(
            f"role {role} may not use schema {books.schema}, where the daemon keeps its "
            "own tables (the bookkeeping_schema setting)", hint=GRANT_HINT.format(role=role))
    for where, table in ((books.schema, books.version), (None, q(VERSION_TABLE))):
        if VERSION_TABLE not in catalog.existing(conn, [VERSION_TABLE], where):
            continue
        if catalog.lacking(conn, [VERSION_TABLE], ["SELECT"], where):
            raise DatabaseUnavailable(
                f"role {catalog.role(conn)} may not read {VERSION_TABLE}, the schema's "
                "version", hint=GRANT_HINT.format(role=catalog.role(conn)))
        row = conn.execute(stmt(f"SELECT max(version) FROM {table}")).fetchone()
        return None if row is None or row[0] is None else int(str(row[0])), where
    return None, books.schema


def version(conn: Connection) -> int | None:
    """The recorded schema version; None where this daemon never migrated."""
    return recorded(conn)[0]


@dataclass(frozen=True)
class Found:
    """What the database holds of the schema: its version, where the daemon's own tables
    are (`home`: None for the fact tables' schema, before version 5), the tables missing,
    the tables with extra columns the daemon accepts, the feeds' tables to change, and
    whether the fact schema has the `load_history` view."""

    version: int | None
    missing: tuple[str, ...]
    extra: tuple[columns.Difference, ...]
    changes: tuple[evolve.Change, ...] = ()
    held: dict[str, list[columns.Held]] | None = None
    home: str | None = None
    view: bool = True

    @property
    def behind(self) -> bool:
        return (self.version != SCHEMA_VERSION or not self.view
                or bool(self.missing or self.changes))


def inspect(conn: Connection, feeds: Sequence[Contract]) -> Found:
    """Read the schema from the catalogs; `SchemaMismatch` for a newer version, a table
    that is not the daemon's (columns missing, changed, or in the way) or a feed's table
    that its declaration can not be brought to without losing data (`evolve.plan`)."""
    found, home = recorded(conn)
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database has schema version {found}; this daemon knows {SCHEMA_VERSION}",
            hint="run the newer daemon that wrote it, or point --db at another database")
    facts = _apart(conn)
    # An older database's own tables are read as its version defined them; those it
    # lacks are made as this version defines them.
    kept = bookkeeping_tables(feeds, SCHEMA_VERSION if found is None or home is not None
                              else found)
    held = {**catalog.columns(conn, list(kept), home),
            **catalog.columns(conn, list(fact_tables(feeds)))}
    defined = {t: columns.declared(c) for t, c in {**kept, **fact_tables(feeds)}.items()}
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
    view = analysts.VIEW in catalog.views(conn, [analysts.VIEW], facts)
    if home is not None and not view and analysts.VIEW in catalog.existing(
            conn, [analysts.VIEW], facts):
        raise SchemaMismatch(
            f"schema {facts} holds a {analysts.VIEW} that is not filedrop-etl's view of "
            "its ledger (a table of another program's?)",
            hint="point --db at another schema, or move that table aside")
    return Found(found, tuple(t for t in defined if t not in held),
                 tuple(d for d in differences if d.extra), tuple(changes), held, home, view)


def _apart(conn: Connection) -> str | None:
    """The fact tables' schema; `SchemaMismatch` if the bookkeeping schema is it, as
    the view of the ledger would be the raw ledger's name there."""
    facts = catalog.schema(conn)
    if facts == conn.books.schema:
        raise SchemaMismatch(
            f"the bookkeeping schema is the fact tables' own ({facts}): the daemon keeps "
            "its tables apart from the ones analysts read",
            hint="set bookkeeping_schema to another schema's name, or leave it unset "
            "for the default")
    return facts


def _holds_rows(conn: Connection, table: str) -> bool:
    row = conn.execute(stmt(f"SELECT EXISTS (SELECT 1 FROM {q(table)})")).fetchone()
    return bool(row and row[0])


def _holds_null(conn: Connection, table: str, column: str) -> bool:
    row = conn.execute(stmt(f"SELECT EXISTS (SELECT 1 FROM {q(table)} "
                            f"WHERE {q(column)} IS NULL)")).fetchone()
    return bool(row and row[0])
