"""What analysts see on a PostgreSQL warehouse: the fact schema's tables, the
`load_history` view, and a comment on each of them and on each of their columns.

The fact schema (the search_path's first, `current_schema()`) holds each feed's fact
table and nothing of the daemon's bookkeeping (`books`) but one view: `load_history`,
every column of the raw ledger under the name it had when the ledger itself sat there
(so `SELECT ... FROM load_history` keeps working), `node` among them. A view runs with
its owner's privileges: a reader needs SELECT on it, never on the bookkeeping schema.
The comments (`COMMENT ON`, shown by psql's `\\d+` and every catalog browser) say what
each table holds and each column is: its kind, whether it may be null, its part in the
key, for a fact table from its feed's declaration. Written by the migration (`schema`),
as the owner, inside its transaction, whenever it runs: the fact tables it creates or
alters get theirs there.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from filedrop_etl.config.contract import Column, Contract
from filedrop_etl.daemon.warehouse.postgresql.books import Books
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.postgresql.types import declared_type
from filedrop_etl.daemon.warehouse.sql import LEDGER_TABLE, q

VIEW = LEDGER_TABLE
# The view's columns, in the raw ledger's order, and what each says.
VIEW_COLUMNS: dict[str, str] = {
    "id": "the attempt's number, in the order attempts began; fact rows' load_id",
    "file_name": "the file's name as dropped in the inbox",
    "sha256": "the file's SHA-256, hex (null: not read)",
    "bytes": "the file's size in bytes (null: not read)",
    "status": "processed (loaded) or failed (moved to failed/, its reason in error)",
    "write_mode": "merge (upsert by the feed's key) or replace (the file is its date's "
                  "whole truth)",
    "run_date": "the date from the file's name",
    "rows": "rows in the file (null: not read)",
    "inserted": "fact rows the load inserted",
    "updated": "fact rows the load changed",
    "unchanged": "fact rows the load found as they were",
    "deleted": "fact rows the load deleted (replace mode: the date's rows the file lacked)",
    "error": "why the attempt failed; for a processed file, a note (superseded by a "
             "later drop)",
    "started_at": "when the attempt began (timestamptz)",
    "finished_at": "when it committed or failed (timestamptz)",
    "claim": "the claim of the file the attempt was made under (the daemon's own id)",
    "feed": "the feed the file belongs to",
    "node": "the node whose daemon made the attempt (null: before version 5 recorded it)",
}
_VIEW_COMMENT = ("filedrop-etl's loads: one row per attempt at a file, processed or failed; "
                 "the fact rows a load last wrote carry its id as load_id")
_EXTRA = {"loaded_at": "when filedrop-etl last wrote this row (timestamptz)",
          "load_id": f"the load that last wrote this row: {LEDGER_TABLE}.id"}


def create_view(conn: Connection, books: Books) -> None:
    """The `load_history` view in the fact schema (made again: its columns may only
    grow), and its comments."""
    names = ", ".join(map(q, VIEW_COLUMNS))
    conn.execute(stmt(f"CREATE OR REPLACE VIEW {q(VIEW)} AS SELECT {names} "
                      f"FROM {books.ledger}"))
    _comment(conn, "VIEW", q(VIEW), _VIEW_COMMENT)
    for name, text in VIEW_COLUMNS.items():
        _comment(conn, "COLUMN", f"{q(VIEW)}.{q(name)}", text)


def describe_facts(conn: Connection, feeds: Sequence[Contract]) -> None:
    """A comment on each feed's fact table and on each of its columns."""
    for contract in feeds:
        fact = q(contract.fact_table)
        _comment(conn, "TABLE", fact, table_comment(contract))
        for column in contract.columns:
            _comment(conn, "COLUMN", f"{fact}.{q(column.name)}",
                     column_comment(contract, column))
        for name, text in _EXTRA.items():
            _comment(conn, "COLUMN", f"{fact}.{q(name)}", text)


def table_comment(contract: Contract) -> str:
    key = ", ".join(contract.key)
    return (f"feed {contract.name}: the rows of the files named "
            f"{contract.file_name_example}, loaded by filedrop-etl; one row per "
            f"{'key' if len(contract.key) == 1 else 'combination of the key'} ({key})")


def column_comment(contract: Contract, column: Column) -> str:
    parts = [f"{column.kind} ({declared_type(column)})",
             "may be null" if column.nullable else "never null"]
    if column.name in contract.key:
        place = contract.key.index(column.name) + 1
        parts.append("the key" if len(contract.key) == 1
                     else f"key column {place} of {len(contract.key)}")
    if column.name == contract.date_column:
        parts.append("the row's date")
    if column.default is not None:
        parts.append(f"default {column.default!r} for rows of files without the column")
    return ", ".join(parts)


def _comment(conn: Connection, kind: str, target: str, text: str) -> None:
    # COMMENT takes a literal, not a parameter: psycopg quotes the text as one.
    conn.execute(stmt(f"COMMENT ON {kind} {target} IS {sql.Literal(text).as_string(conn)}"))
