"""A feed's fact table against its declaration, and the DDL that brings it in line.

Read at every start (`schema.inspect`), from the catalogs: a column added to the
declaration is added to the table (`ALTER TABLE ... ADD COLUMN`, nullable or with its
declared default, which fills the rows already there), logged `table_columns_added`. A
declared column whose type differs from the table's, a column the table holds NOT NULL
that the declaration no longer has, or an added column that may not be absent (neither
nullable nor with a default) are refused while the table holds rows (`SchemaMismatch`,
naming the columns and what to do: restore the declaration, or move the table aside or
empty it), never dropped or cast; an empty table is made again as declared, logged
`table_recreated`. A column the table holds that the declaration does not, nullable or
with a default, is left alone with a warning (`columns.warn_extra`): a DBA's, or a
nullable column no longer declared, which the loads leave null. `upgrade` is the one
migration from the version before feeds (3): the ledger's `feed`, `drops` per feed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from filedrop_etl.config.contract import Column, Contract
from filedrop_etl.daemon.errors import SchemaMismatch
from filedrop_etl.daemon.warehouse import columns
from filedrop_etl.daemon.warehouse.columns import Held
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt
from filedrop_etl.daemon.warehouse.postgresql.shape import (
    DROPS_TABLE,
    FIRST_FEED,
    LEDGER,
    LEDGER_TABLE_NAME,
    column_definition,
    fact_definitions,
)
from filedrop_etl.daemon.warehouse.postgresql.types import declared_type
from filedrop_etl.daemon.warehouse.sql import q

log = structlog.get_logger("daemon.schema")


@dataclass(frozen=True)
class Change:
    """What a feed's existing fact table needs: columns added, or (empty) made again."""

    contract: Contract
    added: tuple[Column, ...] = ()
    recreate: str | None = None  # why


def plan(contract: Contract, held: Sequence[Held], extra_types: dict[str, str],
         holds_rows: Callable[[], bool]) -> tuple[Change | None, columns.Difference]:
    """The change the feed's table needs (None: none), and its columns' difference for
    the warning of extra columns; `SchemaMismatch` if a change would lose or recast
    data. `extra_types`: the types of `loaded_at` and `load_id`, canonical."""
    table = contract.fact_table
    found = {c.name: c for c in held}
    declared = {c.name: declared_type(c) for c in contract.columns}
    difference = columns.compare(table, {**declared, **extra_types}, held)
    if any(n not in found or found[n].type != t for n, t in extra_types.items()):
        raise columns.refusal(difference)  # not a fact table of this daemon's
    added = tuple(c for c in contract.columns if c.name not in found)
    changed = [f"{n} is {found[n].type} where the declaration says {t}"
               for n, t in declared.items() if n in found and found[n].type != t]
    dropped = [f"{n} (NOT NULL) is no longer declared" for n in difference.blocking]
    absent = [f"the added column {c.name} is neither nullable nor has a default"
              for c in added if not c.may_be_absent]
    problems = changed + dropped + absent
    if not problems:
        return (Change(contract, added) if added else None), difference
    if holds_rows():
        raise SchemaMismatch(
            f"feed {contract.name}: table {table} holds rows, and "
            + "; ".join(problems),
            hint=f"restore those columns' declaration as it was (a column added later "
            f"must be nullable = true or have a default), or move the table aside (ALTER "
            f"TABLE {q(table)} RENAME TO {q(table + '_old')}) or empty it (TRUNCATE "
            f"{q(table)}): an empty table is made again as declared")
    return Change(contract, recreate="; ".join(problems)), difference


def apply(conn: Connection, change: Change) -> None:
    """The change's DDL, inside the migration's transaction."""
    fact = q(change.contract.fact_table)
    if change.recreate is not None:
        conn.execute(stmt(f"DROP TABLE {fact}"))
        conn.execute(stmt(f"CREATE TABLE {fact} "
                          f"({', '.join(fact_definitions(change.contract))})"))
    elif change.added:
        conn.execute(stmt(f"ALTER TABLE {fact} " + ", ".join(
            f"ADD COLUMN {column_definition(c)}" for c in change.added)))


def logged(change: Change) -> None:
    """Say what the change did, once its transaction committed."""
    contract = change.contract
    if change.recreate is not None:
        log.warning("table_recreated", feed=contract.name, table=contract.fact_table,
                    reason=change.recreate, hint="the table was empty; it is made again "
                    "as the feed declares it")
    elif change.added:
        log.info("table_columns_added", feed=contract.name, table=contract.fact_table,
                 columns=[c.name for c in change.added])


def upgrade(conn: Connection, held: dict[str, list[Held]]) -> list[str]:
    """From version 3, in place: every ledger row and every watermark was the built-in
    feed's. Adding a column with a constant default rewrites no row (PostgreSQL 11 and
    later); the default then goes, as every insert names the feed. The steps taken."""
    steps = []
    ledger = held.get(LEDGER_TABLE_NAME)
    if ledger is not None and "feed" not in {c.name for c in ledger}:
        conn.execute(stmt(f"ALTER TABLE {LEDGER} ADD COLUMN \"feed\" text NOT NULL "
                          f"DEFAULT '{FIRST_FEED}'"))
        conn.execute(stmt(f'ALTER TABLE {LEDGER} ALTER COLUMN "feed" DROP DEFAULT'))
        steps.append(f"load_history.feed added ('{FIRST_FEED}' for every row)")
    if DROPS_TABLE in held and "feed" not in {c.name for c in held[DROPS_TABLE]}:
        drops = q(DROPS_TABLE)
        [(key,)] = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) "
            "AND contype = 'p'", (drops,)).fetchall()
        conn.execute(stmt(f"ALTER TABLE {drops} ADD COLUMN \"feed\" text NOT NULL "
                          f"DEFAULT '{FIRST_FEED}'"))
        conn.execute(stmt(f'ALTER TABLE {drops} ALTER COLUMN "feed" DROP DEFAULT, '
                          f'DROP CONSTRAINT {q(str(key))}, ADD PRIMARY KEY ("feed", "run_date")'))
        steps.append("drops keyed by feed and run date")
    return steps
