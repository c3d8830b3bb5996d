"""The data contract of a feed: its columns, key, checks, tables and file names.

This is data, not behaviour: a `Contract` value per feed, passed to the warehouse
backends (which build their SQL from it), the reader and the checks (which interpret its
`checks`); the generator writes its `arrow_schema`. A column has a kind, never a
database's type: each backend maps kinds to its own (`daemon/warehouse/<backend>/types.py`).
`TRANSACTIONS` is the built-in feed, what a config without `[feeds]` gets; declared feeds
are read by `config.feeds`. How a feed's files are named, and the set of feeds a daemon
serves (`Feeds`), are `config.file_names`'. Nothing in this module touches files or
databases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import pyarrow as pa

from filedrop_etl.config import file_names
from filedrop_etl.config.file_names import ISO_DATE_FORMAT, name_pattern

ColumnKind = Literal["string", "integer", "float", "decimal", "boolean", "date", "timestamp"]
COLUMN_KINDS: tuple[ColumnKind, ...] = ("string", "integer", "float", "decimal", "boolean",
                                        "date", "timestamp")
WriteMode = Literal["merge", "replace"]
WRITE_MODES: tuple[WriteMode, ...] = ("merge", "replace")
# What a file's columns that its feed does not declare do: `ignore` (warned of, not read)
# or `fail` (the file goes to failed/).
UndeclaredPolicy = Literal["ignore", "fail"]
UNDECLARED_POLICIES: tuple[UndeclaredPolicy, ...] = ("ignore", "fail")
# The one ledger of every feed's loads.
LEDGER_TABLE_NAME = "load_history"
DEFAULT_TABLE_PREFIX = "fact_"
# Timestamps are kept in UTC, to the microsecond (Parquet's and PostgreSQL's precision).
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def _arrow_type(column: Column) -> pa.DataType:
    match column.kind:
        case "string":
            return pa.string()
        case "integer":
            return pa.int64()
        case "float":
            return pa.float64()
        case "decimal":
            assert column.precision is not None
            return pa.decimal128(column.precision, column.scale or 0)
        case "boolean":
            return pa.bool_()
        case "date":
            # A date travels as ISO text (`YYYY-MM-DD`), as producers' files and SQLite hold it.
            return pa.string()
        case "timestamp":
            return TIMESTAMP_TYPE


Scalar = str | int | float | bool


@dataclass(frozen=True)
class Column:
    """One contract column: its name, its kind, whether it may be null, and for a decimal
    its precision and scale. Each backend stores a kind in a type of its own (its
    `types.column_type`); the reader accepts what producers may send for it. `default`
    fills the column in rows of files that predate it (a column added to a declaration)."""

    name: str
    kind: ColumnKind
    nullable: bool = False
    precision: int | None = None
    scale: int | None = None
    default: Scalar | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type the reader casts the column to, and the generator writes."""
        return _arrow_type(self)

    @property
    def may_be_absent(self) -> bool:
        """Whether a file may lack the column: its rows then hold null or the default."""
        return self.nullable or self.default is not None


CheckKind = Literal["not_null", "unique", "min", "max", "finite", "one_of", "matches",
                    "max_length", "equals_file_date", "file_date_prefix"]
CHECK_KINDS: tuple[CheckKind, ...] = ("not_null", "unique", "min", "max", "finite", "one_of",
                                      "matches", "max_length", "equals_file_date",
                                      "file_date_prefix")


@dataclass(frozen=True)
class Check:
    """One data-quality rule, run on a file's own rows before anything is merged.

    `value` is the bound of `min`/`max` (a number, or ISO text for a date or a timestamp),
    the pattern of `matches` and the length of `max_length`; `values` the set of `one_of`.
    `unique` spans `over` (the key's columns); every other rule is on `column` alone.
    """

    kind: CheckKind
    column: str
    value: Scalar | None = None
    values: tuple[Scalar, ...] = ()
    over: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the rule reads."""
        return self.over or (self.column,)

    @property
    def name(self) -> str:
        """The rule's id, as the sidecar keeps it: `min:amount`, `unique:day+sku`."""
        return f"{self.kind}:{'+'.join(self.columns)}"


@dataclass(frozen=True)
class Totals:
    """What `report` and `show` total besides the rows, per day (and per group): each
    figure a label and the column it is taken from. The built-in feed's are its
    customers and amount; a declared feed's default is the sum of each float and
    decimal column."""

    # (label, column): the sum of the column's values.
    sums: tuple[tuple[str, str], ...] = ()
    # (label, column): how many distinct values the column holds.
    distinct: tuple[tuple[str, str], ...] = ()
    # `show`'s table of the largest groups by this column (customers, for transactions);
    # None: no such table. `group_rows` labels a group's row count there.
    group_by: str | None = None
    group_rows: str = "rows"


@dataclass(frozen=True)
class Contract:
    """One feed's contract as a value: its tables, key, columns, checks and file names.

    Passed to whatever needs it (the reader, the checks, each warehouse backend) rather
    than read from module globals: several feeds are declared side by side.
    """

    name: str
    columns: tuple[Column, ...]
    # One or more columns (a composite key), in the order the fact table's key is built.
    key: tuple[str, ...]
    # The column holding each row's date, which `replace` mode and the file-date checks
    # use; None for a feed whose rows carry no date.
    date_column: str | None
    checks: tuple[Check, ...]
    fact_table: str
    staging_table: str
    # The run date is taken from the file name; use with `fullmatch` (`$` would also
    # accept a name ending in a newline). Its group `date` is the date's text.
    file_name_pattern: re.Pattern[str]
    # The pattern as declared (`orders_{date}.parquet`) and the date's `strftime` format.
    file_name_template: str
    date_format: str = ISO_DATE_FORMAT
    # The feed's own write mode; None: the daemon's `write_mode` setting.
    write_mode: WriteMode | None = None
    undeclared_columns: UndeclaredPolicy = "ignore"
    # Whether this is the built-in transactions feed (its tables predate feeds).
    builtin: bool = False
    totals: Totals = Totals()
    # Keys reserved for later per-feed capabilities (`format`, `expect`, `retention`), as
    # declared; nothing reads them yet.
    reserved: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The columns other than the key's: those whose change makes an update."""
        return tuple(c.name for c in self.columns if c.name not in self.key)

    @property
    def file_name_example(self) -> str:
        """The pattern with its date spelled out: `orders_YYYY-MM-DD.parquet`."""
        shown = (self.date_format.replace("%Y", "YYYY").replace("%y", "YY")
                 .replace("%m", "MM").replace("%d", "DD").replace("%j", "DDD"))
        return self.file_name_template.replace("{date}", shown)

    @property
    def keys_carry_their_date(self) -> bool:
        """Whether the checks hold every row's leading key column to start with its file's
        date (`YYYYMMDD-`) and its date column to be the file's date: a key can then only
        ever be found among the rows of its own date, and a date is a key range."""
        kinds = {(c.kind, c.column) for c in self.checks}
        return (self.date_column is not None
                and {("file_date_prefix", self.key[0]),
                     ("equals_file_date", self.date_column)} <= kinds)

    @property
    def date_leads_key(self) -> bool:
        """Whether the key's leading column is the date column, held to the file's date:
        a date's rows are then the key's leading range, as for `keys_carry_their_date`."""
        return (self.date_column is not None and self.key[0] == self.date_column
                and Check("equals_file_date", self.date_column) in self.checks)

    @property
    def dated_keys(self) -> bool:
        """Whether a file's keys can only meet fact rows of the file's own date, found by
        the key's own index (no date index needed): the general fast path."""
        return self.keys_carry_their_date or self.date_leads_key

    def key_bounds(self, first: str, last: str) -> tuple[str, str]:
        """Leading key values of the run dates `first` to `last` (ISO, both included) lie
        in [low, high) where `keys_carry_their_date`: a date range is a key range, which
        the fact's own key index serves without an index on the date."""
        upper = key_prefix(last)
        return key_prefix(first), upper[:-1] + chr(ord(upper[-1]) + 1)

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable)
                          for c in self.columns])

    def file_name_for(self, run_date: str) -> str:
        """The name a producer gives the file holding `run_date`'s rows (ISO)."""
        return file_names.file_name_for(self.file_name_template, self.date_format, run_date)

    def run_date_of(self, name: str) -> str | None:
        """The ISO run date `name` carries if it matches this feed's pattern; `ValueError`
        when it matches but the date is not a calendar date; None when it does not match."""
        match = self.file_name_pattern.fullmatch(name)
        if match is None:
            return None
        return datetime.strptime(match["date"], self.date_format).date().isoformat()


_COLUMNS: tuple[Column, ...] = (
    Column("txn_id", "string"),
    Column("customer_id", "integer"),
    Column("amount", "float"),
    Column("run_date", "date"),
)

TRANSACTIONS = Contract(
    name="transactions",
    columns=_COLUMNS,
    key=("txn_id",),
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
    file_name_pattern=name_pattern("transactions_{date}.parquet"),
    file_name_template="transactions_{date}.parquet",
    builtin=True,
    totals=Totals(sums=(("amount", "amount"),), distinct=(("customers", "customer_id"),),
                  group_by="customer_id", group_rows="transactions"),
)

# The default feed's parts under their first names, for the generator and the tests.
STAGING_TABLE = TRANSACTIONS.staging_table
FACT_TABLE = TRANSACTIONS.fact_table
LEDGER_TABLE = LEDGER_TABLE_NAME
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
