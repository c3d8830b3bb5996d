"""The roles on a PostgreSQL warehouse: the owner that migrates, the runtime that loads,
the readers that query.

The owner creates and migrates the tables (`schema.migrate`, by a daemon's start or by
`filedrop-etl migrate`): CREATE on the fact schema, and on the database to create the
bookkeeping schema (or on that schema, made beforehand by a DBA). The runtime role,
which the daemons and `retry` may connect as once the schema is current, needs no more
than this: USAGE on both schemas, and SELECT, INSERT, UPDATE and DELETE on the daemon's
tables and the fact tables (SELECT alone on `filedrop_schema`). A reader (an analyst)
needs USAGE on the fact schema and SELECT on the fact tables and the `load_history`
view (which reads the raw ledger with its owner's rights): nothing of the bookkeeping
schema (`grant_reader`).
Identity columns need no grant on their sequences (the server does not check them for
a column's own default), and each load's staging table is TEMPORARY, which needs the
TEMP privilege on the database, granted to PUBLIC unless revoked. `grant` gives a role
exactly that; `check` refuses a start whose role lacks any of it, naming what to run,
before a file could fail on a missing privilege.
"""

from __future__ import annotations

from collections.abc import Sequence

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.errors import DatabaseUnavailable
from filedrop_etl.daemon.warehouse.postgresql import analysts, catalog
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt, transaction
from filedrop_etl.daemon.warehouse.postgresql.shape import (
    VERSION_TABLE,
    bookkeeping_tables,
    fact_tables,
)
from filedrop_etl.daemon.warehouse.sql import q

RUNTIME_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


def _temp_hint(conn: Connection, role: str) -> str:
    return (f"as the database's owner or a superuser: GRANT TEMPORARY ON DATABASE "
            f"{q(catalog.database(conn))} TO {q(role)} (each load stages its rows in a "
            "temporary table)")


def check(conn: Connection, feeds: Sequence[Contract]) -> None:
    """`DatabaseUnavailable` unless the session's role may do all a daemon does."""
    books = conn.books.schema
    lacking = list(dict.fromkeys([
        *catalog.lacking(conn, list(bookkeeping_tables(feeds)), RUNTIME_PRIVILEGES, books),
        *catalog.lacking(conn, list(fact_tables(feeds)), RUNTIME_PRIVILEGES),
        *catalog.lacking(conn, [VERSION_TABLE], ["SELECT"], books)]))
    role = catalog.role(conn)
    if lacking:
        shown = ", ".join(lacking[:6]) + (f" and {len(lacking) - 6} more"
                                          if len(lacking) > 6 else "")
        raise DatabaseUnavailable(
            f"role {role} lacks privileges the daemon needs: {shown}",
            hint=f"as the role that owns the tables, run `filedrop-etl migrate --grant "
            f"{role}` (see the README's \"Two roles\"), then start again")
    if not catalog.may_use_temp(conn):
        raise DatabaseUnavailable(f"role {role} may not create temporary tables here",
                                  hint=_temp_hint(conn, role))


def grant(conn: Connection, feeds: Sequence[Contract], role: str) -> list[str]:
    """Grant `role` what a daemon and `retry` need (see the module), in one transaction;
    what is left for someone else to grant, in words (the TEMP privilege)."""
    where, books = _schema(conn, role), conn.books
    who = q(role)
    with transaction(conn):
        conn.execute(stmt(f"GRANT USAGE ON SCHEMA {q(where)}, {books.quoted} TO {who}"))
        named = ", ".join([*map(books.table, bookkeeping_tables(feeds)),
                           *map(q, fact_tables(feeds))])
        conn.execute(stmt(f"GRANT {', '.join(RUNTIME_PRIVILEGES)} ON TABLE {named} TO {who}"))
        conn.execute(stmt(f"GRANT SELECT ON TABLE {books.version} TO {who}"))
    if not catalog.may_use_temp(conn, role):
        return [f"role {role} may not create temporary tables here: "
                + _temp_hint(conn, role)]
    return []


def grant_reader(conn: Connection, feeds: Sequence[Contract], role: str) -> None:
    """Grant `role` what an analyst needs to query the warehouse (see the module), in
    one transaction."""
    where, who = _schema(conn, role), q(role)
    with transaction(conn):
        conn.execute(stmt(f"GRANT USAGE ON SCHEMA {q(where)} TO {who}"))
        named = ", ".join(map(q, [*fact_tables(feeds), analysts.VIEW]))
        conn.execute(stmt(f"GRANT SELECT ON TABLE {named} TO {who}"))


def _schema(conn: Connection, role: str) -> str:
    """The fact schema; `DatabaseUnavailable` if there is no role `role` or no schema."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        raise DatabaseUnavailable(f"there is no role named {role!r}",
                                  hint=f"create it first: CREATE ROLE {q(role)} LOGIN")
    where = catalog.schema(conn)
    if where is None:
        raise DatabaseUnavailable("no schema of the search_path exists to grant on",
                                  hint="give --db the URL the daemons use")
    return where
