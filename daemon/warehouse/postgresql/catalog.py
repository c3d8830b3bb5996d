"""What a PostgreSQL database holds, read from its catalogs, never from the tables.

Which of the daemon's tables and indexes exist, each table's columns, and what the
session's role may do: own (and so alter) them, create in the schema, read and write
them. Every question here is answered from `pg_catalog` and the privilege functions,
which lock no table of the daemon's: a start or a `retry` on a current schema asks
these and so waits for no running load (a `CREATE INDEX IF NOT EXISTS` would, for the
SHARE lock it takes before it looks). Names are bound as values and resolved by the
server through the session's `search_path`, as the daemon's statements resolve the fact
tables, or in the schema given (`schema`: the bookkeeping's, `books`), as they name
the daemon's own tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from filedrop_etl.daemon.warehouse.columns import Held
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection
from filedrop_etl.daemon.warehouse.sql import q

# A relation of the name `t.name` as the session's statements would find it: `t.rel`,
# the name quoted, qualified by the schema where one is given (`_named`).
_REL = "to_regclass(t.rel)"
_NAMED = "unnest(%s::text[], %s::text[])"


def _named(names: Sequence[str], schema: str | None) -> tuple[list[str], list[str]]:
    """The names, and each as a relation's text: `"name"`, or `"schema"."name"`."""
    return list(names), [q(n) if schema is None else f"{q(schema)}.{q(n)}" for n in names]


def existing(conn: Connection, names: Sequence[str], schema: str | None = None) -> set[str]:
    """Those of `names` (tables, views or indexes) that the session finds (in `schema`)."""
    return {str(n) for n, in conn.execute(
        f"SELECT t.name FROM {_NAMED} AS t(name, rel) WHERE {_REL} IS NOT NULL",
        _named(names, schema))}


def views(conn: Connection, names: Sequence[str], schema: str | None = None) -> set[str]:
    """Those of `names` that the session finds (in `schema`) as views."""
    return {str(n) for n, in conn.execute(
        f"SELECT t.name FROM {_NAMED} AS t(name, rel) JOIN pg_class c ON c.oid = {_REL} "
        "WHERE c.relkind = 'v'", _named(names, schema))}


def columns(conn: Connection, tables: Sequence[str],
            schema: str | None = None) -> dict[str, list[Held]]:
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
            f"FROM {_NAMED} AS t(name, rel) LEFT JOIN pg_attribute a ON a.attrelid = "
            f"{_REL} AND a.attnum > 0 AND NOT a.attisdropped WHERE {_REL} IS NOT NULL "
            "ORDER BY t.name, a.attnum", _named(tables, schema)):
        columns = held.setdefault(str(table), [])
        if name is not None:  # a table of no columns at all has one row of nulls
            columns.append(Held(str(name), str(kind), bool(required), bool(not_null)))
    return held


def primary_key(conn: Connection, table: str) -> list[str]:
    """The columns of the (fact) table's primary key, in the key's order."""
    return [str(n) for n, in conn.execute(
        "SELECT a.attname FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY "
        "AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = "
        "k.attnum WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
        "ORDER BY k.n", (q(table),))]


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


def not_owned(conn: Connection, names: Sequence[str],
              schema: str | None = None) -> list[str]:
    """Those of `names` that exist (in `schema`) and that the session's role does not
    own (directly or as a member of the owning role): only an owner may alter them."""
    return [str(n) for n, in conn.execute(
        f"SELECT t.name FROM {_NAMED} AS t(name, rel) JOIN pg_class c ON c.oid = {_REL} "
        "WHERE NOT pg_has_role(c.relowner, 'USAGE')", _named(names, schema))]


def may_create(conn: Connection, schema: str | None = None) -> bool:
    """Whether the session's role may create tables in `schema` (by default the one
    they would go in); in a schema that does not exist yet, whether it may create it
    (CREATE on the database)."""
    if schema is None:
        row = conn.execute("SELECT current_schema() IS NOT NULL AND "
                           "has_schema_privilege(current_schema(), 'CREATE')").fetchone()
    else:
        row = conn.execute(
            "SELECT CASE WHEN to_regnamespace(%s) IS NULL THEN has_database_privilege("
            "current_database(), 'CREATE') ELSE has_schema_privilege(to_regnamespace(%s), "
            "'CREATE') END", (q(schema), q(schema))).fetchone()
    return bool(row and row[0])


def schema_exists(conn: Connection, schema: str) -> bool:
    row = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (q(schema),)).fetchone()
    return bool(row and row[0])


def lacking(conn: Connection, tables: Sequence[str], privileges: Sequence[str],
            schema: str | None = None) -> list[str]:
    """`PRIVILEGE on TABLE` for each privilege the session's role lacks on an existing
    table (in `schema`; each asked alone: a list of privileges asks whether it holds any
    of them); or `USAGE on schema SCHEMA` alone if it lacks that, without which it may
    not even look for a table there."""
    if schema is not None and not may_use(conn, schema):
        return [f"USAGE on schema {schema}"]
    names, rels = _named(tables, schema)
    return [f"{p} on {t}" for t, p in conn.execute(
        "SELECT t.name, p.name FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS "
        "t(name, rel, n), unnest(%s::text[]) WITH ORDINALITY AS p(name, m) WHERE "
        f"{_REL} IS NOT NULL AND NOT has_table_privilege({_REL}, p.name) ORDER BY t.n, p.m",
        (names, rels, list(privileges)))]


def may_use(conn: Connection, schema: str) -> bool:
    """Whether the session's role may look in `schema` (USAGE); True where it does not
    exist (there is nothing to find, and asking for a table there is no error)."""
    row = conn.execute("SELECT coalesce(has_schema_privilege(to_regnamespace(%s), 'USAGE'), "
                       "true)", (q(schema),)).fetchone()
    return bool(row and row[0])


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
