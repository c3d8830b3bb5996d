"""The bookkeeping schema: where the daemon keeps its own tables on a PostgreSQL server,
and those tables' names as every statement writes them.

The fact tables and the `load_history` view (`analysts`) are what analysts see, in the
schema the session's search_path gives (its first that exists: `current_schema()`).
Everything else the daemon keeps (the version, the raw ledger, retries, daemons,
claims, the drops' watermarks, the built-in feed's staging table) lives in a schema of
its own, named by the `bookkeeping_schema` setting. Its default is derived from the
fact tables' schema, `filedrop` beside `public` and `<schema>_filedrop` beside any
other: two warehouses in one database (two fact schemas: the tests' own, one per test,
run in parallel; staging beside production) then never share claims or watermarks, and
a fixed name would make them. A session resolves it once, at connect (`resolve`), and
keeps it as `Books` on the connection; every statement on a bookkeeping table names it
schema-qualified from there (`Books.table`), so nothing depends on the search_path
finding it, and the view of the same name as the raw ledger can not be mistaken for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from filedrop_etl.daemon.warehouse.sql import (
    DAEMONS_TABLE,
    DISMISSALS_TABLE,
    LEDGER_TABLE,
    RETRIES_TABLE,
    q,
)

# The schema version's table, the claims and the drops' watermarks: PostgreSQL's alone.
VERSION_TABLE = "filedrop_schema"
CLAIMS_TABLE = "claims"
DROPS_TABLE = "drops"
# The default beside `public`, and the suffix of the default beside any other schema.
BESIDE_PUBLIC = "filedrop"
SUFFIX = "_filedrop"
# PostgreSQL's longest identifier: a longer one is cut short (with a NOTICE).
IDENTIFIER_BYTES = 63


def default_for(fact_schema: str | None) -> str:
    """The bookkeeping schema of a warehouse whose fact tables are in `fact_schema`
    (None: the search_path names no schema that exists, and nothing can be created)."""
    if fact_schema is None or fact_schema == "public":
        return BESIDE_PUBLIC
    name = fact_schema + SUFFIX
    if len(name.encode()) > IDENTIFIER_BYTES:
        # Cut as PostgreSQL would, but keeping the suffix, so that it stays apart.
        kept = fact_schema.encode()[:IDENTIFIER_BYTES - len(SUFFIX)]
        name = kept.decode(errors="ignore") + SUFFIX
    return name


@dataclass(frozen=True)
class Books:
    """The bookkeeping schema of one session, and its tables' names, quoted."""

    schema: str

    def table(self, name: str) -> str:
        """`"schema"."name"`: a bookkeeping table as a statement names it."""
        return f"{q(self.schema)}.{q(name)}"

    @property
    def quoted(self) -> str:
        return q(self.schema)

    @property
    def ledger(self) -> str:
        return self.table(LEDGER_TABLE)

    @property
    def retries(self) -> str:
        return self.table(RETRIES_TABLE)

    @property
    def daemons(self) -> str:
        return self.table(DAEMONS_TABLE)

    @property
    def claims(self) -> str:
        return self.table(CLAIMS_TABLE)

    @property
    def drops(self) -> str:
        return self.table(DROPS_TABLE)

    @property
    def dismissals(self) -> str:
        return self.table(DISMISSALS_TABLE)

    @property
    def version(self) -> str:
        return self.table(VERSION_TABLE)


def resolve(setting: str | None, fact_schema: str | None) -> Books:
    """The setting's schema, else the default beside `fact_schema`."""
    return Books(setting or default_for(fact_schema))
