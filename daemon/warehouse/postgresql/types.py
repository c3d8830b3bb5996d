"""PostgreSQL's column type for each kind of contract column.

The contract names a kind per column ("string", "integer", ...) and no backend's type;
this is the one place that says which native type PostgreSQL stores each kind in, for
the tables `schema` creates and checks (against the catalogs' names for them, which are
these) and the session's staging table.
"""

from __future__ import annotations

from filedrop_etl.config.contract import ColumnKind

_TYPES: dict[ColumnKind, str] = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "date": "date",
}


def column_type(kind: ColumnKind) -> str:
    """The PostgreSQL type a column of `kind` is declared with."""
    return _TYPES[kind]
