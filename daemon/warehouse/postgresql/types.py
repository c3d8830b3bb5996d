"""PostgreSQL's column type for each kind of contract column.

The contract names a kind per column ("string", "integer", ...) and no backend's type;
this is the one place that says which native type PostgreSQL stores each kind in, for
the tables `schema` creates and checks (spelled as the catalogs' `format_type` names
them, so that a declared type compares with the held one as text) and the session's
staging tables. A decimal is `numeric(p,s)`, exact; a timestamp is `timestamptz` (UTC).
"""

from __future__ import annotations

from filedrop_etl.config.contract import Column, ColumnKind

_TYPES: dict[ColumnKind, str] = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "decimal": "numeric",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp with time zone",
}


def column_type(kind: ColumnKind) -> str:
    """The PostgreSQL type a column of `kind` is declared with (a decimal's without its
    precision and scale: `declared_type` gives those)."""
    return _TYPES[kind]


def declared_type(column: Column) -> str:
    """The type `column` is declared with, as `format_type` names it: `numeric(12,2)`."""
    if column.kind == "decimal":
        return f"numeric({column.precision},{column.scale or 0})"
    return column_type(column.kind)


def literal(value: str | int | float | bool, column: Column) -> str:
    """A declared default as SQL text, cast to the column's type (DDL takes no bound
    values): a quoted string under `standard_conforming_strings`, the server's default."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return "'" + text.replace("'", "''") + "'::" + declared_type(column)
