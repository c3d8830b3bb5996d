"""A declared feed's fact table against its declaration, and the DDL that brings it in line.

Read at every start (`holdings.inspect`), from the catalogs; the decision is
`columns.evolve`'s, shared with SQLite: a column added to the declaration is added to
the table (`ALTER TABLE ... ADD COLUMN`, nullable or with its declared default, which
fills the rows already there), logged `table_columns_added`; a column declared
nullable that the table holds NOT NULL loses its NOT NULL (`table_columns_relaxed`), and
one declared NOT NULL that the table holds nullable gains it if it holds no null
(`table_columns_tightened`); a declared column retyped, nulls where none are declared,
a column the table holds that the declaration does not, a changed key, or an added
column that may not be absent (neither nullable nor with a default) are refused while
the table holds rows (`SchemaMismatch`, naming the columns and what to do: restore the
declaration, or move the table aside or empty it), never dropped or cast; an empty
table is made again as declared, logged `table_recreated`. The built-in feed's table
keeps the rule it had before feeds (a DBA's extra nullable columns accepted, with a
warning: `columns.compare`). The migrations from older versions are `upgrade`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from filedrop_etl.config.contract import Column, Contract
from filedrop_etl.daemon.warehouse import columns
from filedrop_etl.daemon.warehouse.columns import Held
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.postgresql.shape import column_definition, fact_definitions
from filedrop_etl.daemon.warehouse.postgresql.types import declared_type
from filedrop_etl.daemon.warehouse.sql import q

log = structlog.get_logger("daemon.schema")


@dataclass(frozen=True)
class Change:
    """What a feed's fact table needs: columns added, their NOT NULL dropped (`relaxed`)
    or set (`tightened`), or the table made (again) as declared."""

    contract: Contract
    added: tuple[Column, ...] = ()
    recreate: str | None = None  # why: "created" for a table that was not there
    relaxed: tuple[str, ...] = ()
    tightened: tuple[str, ...] = ()


def plan(contract: Contract, held: Sequence[Held], held_key: Sequence[str],
         extra_types: dict[str, str], holds_rows: Callable[[], bool],
         holds_null: Callable[[str], bool]) -> Change | None:
    """The change the feed's existing table needs (None: none); `SchemaMismatch` if
    one would lose or recast data. `extra_types`: the canonical types of `loaded_at`
    and `load_id`; `holds_rows` and `holds_null(column)` are asked only where the
    answer matters."""
    table = contract.fact_table
    expected = {**{c.name: declared_type(c) for c in contract.columns}, **extra_types}
    addable = {c.name for c in contract.columns if c.may_be_absent}
    not_null = columns.not_null(fact_definitions(contract), contract.key)

    def evolution(has_rows: bool) -> columns.Evolution:
        return columns.evolve(contract.name, table, expected, held, key=contract.key,
                              held_key=held_key, addable=addable, has_rows=has_rows,
                              not_null=not_null, holds_null=holds_null)

    found = evolution(True)
    # An empty table is made again rather than altered, as on SQLite.
    if (found.refusal is not None or found.renulled) and not holds_rows():
        found = evolution(False)
    if found.refusal is not None:
        raise found.refusal
    added = tuple(contract.column(n) for n in found.added if n not in extra_types)
    if len(added) != len(found.added):
        raise columns.refusal(columns.compare(table, expected, held))  # not the daemon's
    if found.recreate is not None or added or found.renulled:
        return Change(contract, added, found.recreate, found.relaxed, found.tightened)
    return None


def apply(conn: Connection, change: Change) -> None:
    """The change's DDL, inside the migration's transaction."""
    fact = q(change.contract.fact_table)
    if change.recreate is not None:
        conn.execute(stmt(f"DROP TABLE IF EXISTS {fact}"))
        conn.execute(stmt(f"CREATE TABLE {fact} "
                          f"({', '.join(fact_definitions(change.contract))})"))
    elif change.added or change.relaxed or change.tightened:
        # One statement: SET NOT NULL scans the table once, for all its columns.
        conn.execute(stmt(f"ALTER TABLE {fact} " + ", ".join((
            *(f"ADD COLUMN {column_definition(c)}" for c in change.added),
            *(f"ALTER COLUMN {q(n)} DROP NOT NULL" for n in change.relaxed),
            *(f"ALTER COLUMN {q(n)} SET NOT NULL" for n in change.tightened)))))


def logged(change: Change) -> None:
    """Say what the change did, once its transaction committed."""
    contract = change.contract
    if change.recreate == "created":
        log.info("table_created", feed=contract.name, table=contract.fact_table)
    elif change.recreate is not None:
        log.info("table_recreated", feed=contract.name, table=contract.fact_table,
                 reason=change.recreate)
    for event, names in (("table_columns_added", tuple(c.name for c in change.added)),
                         ("table_columns_relaxed", change.relaxed),
                         ("table_columns_tightened", change.tightened)):
        if names:
            log.info(event, feed=contract.name, table=contract.fact_table,
                     columns=list(names))
