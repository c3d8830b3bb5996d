"""The data contract: table names, the key, the column schema and the declared checks.

This is data, not behaviour: the daemon's store builds its SQL from it, the checks module
interprets `CHECKS`, and the generator writes `ARROW_SCHEMA`. Changing a column here changes
all three together. Nothing in this module touches files or databases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

ColumnKind = Literal["string", "integer", "float", "date"]
CheckKind = Literal["not_null", "unique", "min", "finite", "equals_file_date", "file_date_prefix"]


@dataclass(frozen=True)
class Column:
    """One contract column: its name, what producers may send, and how it is stored."""

    name: str
    kind: ColumnKind
    arrow_type: pa.DataType
    sql_type: str


@dataclass(frozen=True)
class Check:
    """One data-quality rule, run on a file's own rows before anything is merged."""

    kind: CheckKind
    column: str
    value: float | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.column}"


STAGING_TABLE = "staging_transactions"
FACT_TABLE = "fact_transactions"
LEDGER_TABLE = "load_history"
KEY = "txn_id"
DATE_COLUMN = "run_date"

COLUMNS: tuple[Column, ...] = (
    Column("txn_id", "string", pa.string(), "TEXT"),
    Column("customer_id", "integer", pa.int64(), "INTEGER"),
    Column("amount", "float", pa.float64(), "REAL"),
    Column("run_date", "date", pa.string(), "TEXT"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
ARROW_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type, nullable=False) for c in COLUMNS])

CHECKS: tuple[Check, ...] = (
    *(Check("not_null", c.name) for c in COLUMNS),
    Check("unique", KEY),
    Check("min", "amount", 0.0),
    Check("finite", "amount"),
    Check("equals_file_date", DATE_COLUMN),
    # Keys are `YYYYMMDD-NNNN`: a key that names another day is a producer bug that would
    # otherwise let one day's file overwrite another day's rows.
    Check("file_date_prefix", KEY),
)

# The run date is taken from the file name, which is this and nothing else but for an
# optional `~N` before `.parquet`, so that an archived name with a uniqueness suffix
# (`transactions_2026-02-10~1.parquet`) still parses.
# Use with `fullmatch`: `$` would also accept a name ending in a newline.
FILE_NAME_PATTERN = re.compile(r"transactions_(?P<date>\d{4}-\d{2}-\d{2})(?:~\d+)?\.parquet")
FILE_NAME_EXAMPLE = "transactions_YYYY-MM-DD.parquet"


def key_prefix(run_date: str) -> str:
    """The prefix every key of `run_date` (ISO, `YYYY-MM-DD`) starts with: `YYYYMMDD-`.

    From the ISO text, whose year always has four digits; `strftime("%Y")` drops the
    leading zeros of years below 1000 on glibc (`10101-` for 0001-01-01).
    """
    return run_date.replace("-", "") + "-"


def file_name_for(run_date: str) -> str:
    """The name a producer gives the file holding `run_date`'s transactions."""
    return f"transactions_{run_date}.parquet"
