"""SQLite's column type for each kind of contract column.

The contract names a kind per column ("string", "integer", ...) and no backend's type;
this is the one place that says how SQLite stores each kind, for the tables `schema`
creates and checks and the file `staging` writes. A date is ISO text: SQLite has no date
type, and ISO text sorts and compares as dates do.
"""

from __future__ import annotations

from filedrop_etl.config.contract import ColumnKind

_TYPES: dict[ColumnKind, str] = {
    "string": "TEXT",
    "integer": "INTEGER",
    "float": "REAL",
    "date": "TEXT",
}


def column_type(kind: ColumnKind) -> str:
    """The SQLite type a column of `kind` is declared with."""
    return _TYPES[kind]
