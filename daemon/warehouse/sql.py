"""SQL text both backends share: quoted identifiers and one contract's table names.

Identifiers come only from a `Contract` value and are always quoted; values are always
bound. Both SQLite and PostgreSQL quote identifiers with double quotes. A key may span
several columns: `key` lists them, `key_row` is the row value to compare as one, and
`joined` matches two tables' rows on every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from filedrop_etl.config.contract import LEDGER_TABLE_NAME, Contract

# The ledger every feed shares, on both backends.
LEDGER_TABLE = LEDGER_TABLE_NAME
# The feed of every load a ledger recorded before it had feeds (SQLite's version 5 and
# PostgreSQL's version 4 added `feed`): the one dataset the daemon knew then, now the
# built-in feed. Both backends' migrations write it into the rows they find.
EARLIEST_FEED = "transactions"
RETRIES_TABLE = "retries"
# Failed files an operator removed from failed/ without a retry (`filedrop-etl dismiss`).
DISMISSALS_TABLE = "dismissals"
DAEMONS_TABLE = "daemons"
# The fact table's rows per run date (`fact_transactions_days`), kept by each load.
DAYS_SUFFIX = "_days"


def date_range(column: str, since: str | None, until: str | None,
               mark: str) -> tuple[str, list[str]]:
    """A WHERE clause bounding `column` (both ends inclusive, each optional), with `mark`
    as the backend's placeholder for a date, and its values."""
    bounds = [(f"{column} {op} {mark}", v)
              for op, v in ((">=", since), ("<=", until)) if v is not None]
    return ("WHERE " + " AND ".join(c for c, _ in bounds) if bounds else "",
            [v for _, v in bounds if v is not None])


def q(identifier: str) -> str:
    """Quote an SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class Tables:
    """One contract's tables and columns, quoted for SQL."""

    contract: Contract

    @property
    def fact(self) -> str:
        return q(self.contract.fact_table)

    @property
    def days(self) -> str:
        return q(self.contract.fact_table + DAYS_SUFFIX)

    @property
    def ledger(self) -> str:
        return q(LEDGER_TABLE)

    @property
    def staging(self) -> str:
        return q(self.contract.staging_table)

    @property
    def key(self) -> str:
        """The key's columns, quoted and comma-separated (`"day", "sku"`)."""
        return ", ".join(map(q, self.contract.key))

    @property
    def lead(self) -> str:
        """The key's leading column, quoted: a date's key range is a range of it."""
        return q(self.contract.key[0])

    @property
    def key_row(self) -> str:
        """The key as one value: `"a"` for one column, the row value `("a", "b")` else."""
        key = self.contract.key
        return q(key[0]) if len(key) == 1 else f"({self.key})"

    def joined(self, left: str, right: str) -> str:
        """`left` and `right` (aliases) on the same key: every key column equal."""
        return " AND ".join(f"{left}.{q(n)} = {right}.{q(n)}" for n in self.contract.key)

    @property
    def date_index(self) -> str:
        """The fact's index on its date, where the key does not find a date's rows."""
        return q(f"{self.contract.fact_table}_{self.contract.date_column}")

    @property
    def date(self) -> str:
        if self.contract.date_column is None:
            raise ValueError(f"feed {self.contract.name} declares no date column")
        return q(self.contract.date_column)

    @property
    def retries(self) -> str:
        return q(RETRIES_TABLE)

    @property
    def daemons(self) -> str:
        return q(DAEMONS_TABLE)

    def columns(self, names: tuple[str, ...] | None = None, prefix: str = "") -> str:
        """`"a", "b"` (the contract's columns unless `names`), each after `prefix`."""
        return ", ".join(prefix + q(n) for n in (names or self.contract.column_names))
