"""The data contract: table names, the key, the column schema and the declared checks.

This is data, not behaviour: a `Contract` value, passed to the warehouse backends (which
build their SQL from it), the reader and the checks (which interpret its `checks`); the
generator writes its `arrow_schema`. A column has a kind, never a database's type: each
backend maps kinds to its own (`daemon/warehouse/<backend>/types.py`). `TRANSACTIONS` is
the one feed declared today, chosen by the settings and handed down from there. Nothing
in this module touches files or databases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

ColumnKind = Literal["string", "integer", "float", "date"]
# A date travels as ISO text (`YYYY-MM-DD`), as producers' files and SQLite hold it.
_ARROW_TYPES: dict[ColumnKind, pa.DataType] = {
    "string": pa.string(), "integer": pa.int64(), "float": pa.float64(), "date": pa.string(),
}
CheckKind = Literal["not_null", "unique", "min", "finite", "equals_file_date", "file_date_prefix"]


@dataclass(frozen=True)
class Column:
    """One contract column: its name and its kind. Each backend stores a kind in a type of
    its own (its `types.column_type`); the reader accepts what producers may send for it."""

    name: str
    kind: ColumnKind

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type the reader casts the column to, and the generator writes."""
        return _ARROW_TYPES[self.kind]


@dataclass(frozen=True)
class Check:
    """One data-quality rule, run on a file's own rows before anything is merged."""

    kind: CheckKind
    column: str
    value: float | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.column}"


@dataclass(frozen=True)
class Contract:
    """One feed's contract as a value: its tables, key, columns, checks and file names.

    Passed to whatever needs it (the reader, the checks, each warehouse backend) rather
    than read from module globals, so that several feeds can be declared side by side.
    """

    name: str
    columns: tuple[Column, ...]
    key: str
    date_column: str
    checks: tuple[Check, ...]
    fact_table: str
    staging_table: str
    ledger_table: str
    # The run date is taken from the file name; use with `fullmatch` (`$` would also
    # accept a name ending in a newline).
    file_name_pattern: re.Pattern[str]
    file_name_example: str
    file_name_format: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The columns other than the key: those whose change makes an update."""
        return tuple(c.name for c in self.columns if c.name != self.key)

    @property
    def keys_carry_their_date(self) -> bool:
        """Whether the checks hold every row's key and date column to its file's date: a
        key can then only ever be found among the rows of its own date."""
        kinds = {(c.kind, c.column) for c in self.checks}
        return {("file_date_prefix", self.key), ("equals_file_date", self.date_column)} <= kinds

    def key_bounds(self, first: str, last: str) -> tuple[str, str]:
        """Keys of the run dates `first` to `last` (ISO, both included) lie in [low, high):
        where `keys_carry_their_date`, a date range is a key range, which the fact's own
        key index serves without an index on the date."""
        upper = key_prefix(last)
        return key_prefix(first), upper[:-1] + chr(ord(upper[-1]) + 1)

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=False) for c in self.columns])

    def file_name_for(self, run_date: str) -> str:
        """The name a producer gives the file holding `run_date`'s rows."""
        return self.file_name_format.format(run_date=run_date)


_COLUMNS: tuple[Column, ...] = (
    Column("txn_id", "string"),
    Column("customer_id", "integer"),
    Column("amount", "float"),
    Column("run_date", "date"),
)

TRANSACTIONS = Contract(
    name="transactions",
    columns=_COLUMNS,
    key="txn_id",
    date_column="run_date",
    checks=(
        *(Check("not_null", c.name) for c in _COLUMNS),
        Check("unique", "txn_id"),
        Check("min", "amount", 0.0),
        Check("finite", "amount"),
        Check("equals_file_date", "run_date"),
        # Keys are `YYYYMMDD-NNNN`: a key that names another day is a producer bug that
        # would otherwise let one day's file overwrite another day's rows.
        Check("file_date_prefix", "txn_id"),
    ),
    fact_table="fact_transactions",
    staging_table="staging_transactions",
    ledger_table="load_history",
    # An optional `~N` before `.parquet`, so that an archived name with a uniqueness
    # suffix (`transactions_2026-02-10~1.parquet`) still parses.
    file_name_pattern=re.compile(r"transactions_(?P<date>\d{4}-\d{2}-\d{2})(?:~\d+)?\.parquet"),
    file_name_example="transactions_YYYY-MM-DD.parquet",
    file_name_format="transactions_{run_date}.parquet",
)

# The default feed's parts under their first names, for the generator and the tests.
STAGING_TABLE = TRANSACTIONS.staging_table
FACT_TABLE = TRANSACTIONS.fact_table
LEDGER_TABLE = TRANSACTIONS.ledger_table
KEY = TRANSACTIONS.key
DATE_COLUMN = TRANSACTIONS.date_column
COLUMNS = TRANSACTIONS.columns
COLUMN_NAMES = TRANSACTIONS.column_names
ARROW_SCHEMA = TRANSACTIONS.arrow_schema
CHECKS = TRANSACTIONS.checks
FILE_NAME_PATTERN = TRANSACTIONS.file_name_pattern
FILE_NAME_EXAMPLE = TRANSACTIONS.file_name_example


def key_prefix(run_date: str) -> str:
    """The prefix every key of `run_date` (ISO, `YYYY-MM-DD`) starts with: `YYYYMMDD-`.

    From the ISO text, whose year always has four digits; `strftime("%Y")` drops the
    leading zeros of years below 1000 on glibc (`10101-` for 0001-01-01).
    """
    return run_date.replace("-", "") + "-"


def file_name_for(run_date: str) -> str:
    """The name a producer gives the file holding `run_date`'s transactions."""
    return TRANSACTIONS.file_name_for(run_date)
