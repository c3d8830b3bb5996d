"""What a PostgreSQL database holds, read from its catalogs, never from the tables.

Which of the daemon's tables and indexes exist, each table's columns, and what the
session's role may do: own (and so alter) them, create in the schema, read and write
them. Every question here is answered from `pg_catalog` and the privilege functions,
which lock no table of the daemon's: a start or a `retry` on a current schema asks
these and so waits for no running load (a `CREATE INDEX IF NOT EXISTS` would, for the
SHARE lock it takes before it looks). Names are bound as values and resolved by the
server through the session's `search_path`, as the daemon's statements resolve them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from filedrop_etl.daemon.warehouse.columns import Held
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection

# A relation of that name as the session's statements would find it.
_REL = "to_regclass(quote_ident(t.name))"


def existing(conn: Connection, names: Sequence[str]) -> set[str]:
    """Those of `names` (tables or indexes) that the session finds."""
    return {str(n) for n, in conn.execute(
        f"SELECT t.name FROM unnest(%s::text[]) AS t(name) WHERE {_REL} IS NOT NULL",
        (list(names),))}


def columns(conn: Connection, tables: Sequence[str]) -> dict[str, list[Held]]:
    """Each existing table's columns in order, with their types as `format_type` names
    them (with their modifiers: `numeric(12,2)`); a column is `required` if an insert
    that leaves it out fails, `not_null` if it may hold no null."""
    held: dict[str, list[Held]] = {}
    # One statement, so one snapshot: a table another session creates meanwhile is
    # either wholly here or not at all.
    for table, name, kind, required, not_null in conn.execute(
            "SELECT t.name, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
            "AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '', "
            "a.attnotnull "
            f"FROM unnest(%s::text[]) AS t(name) LEFT JOIN pg_attribute a ON a.attrelid = "
            f"{_REL} AND a.attnum > 0 AND NOT a.attisdropped WHERE {_REL} IS NOT NULL "
            "ORDER BY t.name, a.attnum", (list(tables),)):
        columns = held.setdefault(str(table), [])
        if name is not None:  # a table of no columns at all has one row of nulls
            columns.append(Held(str(name), str(kind), bool(required), bool(not_null)))
    return held


def primary_key(conn: Connection, table: str) -> list[str]:
    """The columns of the table's primary key, in the key's order."""
    return [str(n) for n, in conn.execute(
        "SELECT a.attname FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY "
        "AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = "
        "k.attnum WHERE i.indrelid = to_regclass(quote_ident(%s)) AND i.indisprimary "
        "ORDER BY k.n", (table,))]


def canonical(conn: Connection, types: Iterable[str]) -> dict[str, str]:
    """Each type as `format_type` names it (`timestamptz` is `timestamp with time zone`).
    A type with a modifier (`numeric(12,2)`) is given as `format_type` names it already
    (`types.declared_type`): a cast to `regtype` would drop the modifier."""
    wanted = sorted(set(types))
    plain = [t for t in wanted if "(" not in t]
    return {**{t: t for t in wanted if "(" in t}, **{str(t): str(c) for t, c in conn.execute(
        "SELECT t, format_type(t::regtype, NULL) FROM unnest(%s::text[]) AS t",
        (plain,))}}


def role(conn: Connection) -> str:
    row = conn.execute("SELECT current_user").fetchone()
    return str(row[0]) if row else "?"


def database(conn: Connection) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    return str(row[0]) if row else "?"


def schema(conn: Connection) -> str | None:
    """The schema new tables go in (the first usable one of the search_path), if any."""
    row = conn.execute("SELECT current_schema()").fetchone()
    return None if row is None or row[0] is None else str(row[0])


def search_path(conn: Connection) -> str:
    row = conn.execute("SELECT current_setting('search_path')").fetchone()
    return str(row[0]) if row else "?"


def not_owned(conn: Connection, names: Sequence[str]) -> list[str]:
    """Those of `names` that exist and that the session's role does not own (directly
    or as a member of the owning role): only an owner may alter them."""
    return [str(n) for n, in conn.execute(
        f"SELECT t.name FROM unnest(%s::text[]) AS t(name) JOIN pg_class c ON c.oid = {_REL} "
        "WHERE NOT pg_has_role(c.relowner, 'USAGE')", (list(names),))]


def may_create(conn: Connection) -> bool:
    """Whether the session's role may create tables in the schema they would go in."""
    row = conn.execute("SELECT current_schema() IS NOT NULL AND "
                       "has_schema_privilege(current_schema(), 'CREATE')").fetchone()
    return bool(row and row[0])


def lacking(conn: Connection, tables: Sequence[str],
            privileges: Sequence[str]) -> list[str]:
    """`PRIVILEGE on TABLE` for each privilege the session's role lacks on an existing
    table (each asked alone: a list of privileges asks whether it holds any of them)."""
    return [f"{p} on {t}" for t, p in conn.execute(
        "SELECT t.name, p.name FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, n), "
        f"unnest(%s::text[]) WITH ORDINALITY AS p(name, m) WHERE {_REL} IS NOT NULL "
        f"AND NOT has_table_privilege({_REL}, p.name) ORDER BY t.n, p.m",
        (list(tables), list(privileges)))]


def may_use_temp(conn: Connection, who: str | None = None) -> bool:
    """Whether a role (the session's by default) may create temporary tables here, as
    each load stages its rows in one (granted to PUBLIC unless revoked)."""
    if who is None:
        row = conn.execute(
            "SELECT has_database_privilege(current_database(), 'TEMP')").fetchone()
    else:
        row = conn.execute("SELECT has_database_privilege(%s, current_database(), 'TEMP')",
                           (who,)).fetchone()
    return bool(row and row[0])
