"""Columns a DBA added to the daemon's tables by hand, on both backends, with real daemons.

A nullable column (or one with a default) is harmless: every statement the daemon
writes names its columns, so the column stays null (or takes its default) and the
daemon starts and loads as before, with one warning (`table_columns_extra`) per table
at its start. A NOT NULL column without a default would fail every insert: the start is
refused, saying which column and what to do; so is a missing column or a changed type.
SQLite's version-4 rebuild of the fact table keeps such a column and its values
(`test_upgrade`).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.errors import SchemaMismatch
from filedrop_etl.daemon.warehouse import columns
from tests import backends
from tests.backends import fact_rows_in
from tests.conftest import (
    DaemonProcess,
    Daemons,
    day_table,
    on_both_backends,
    replaced_at,
    write_parquet,
)

# The slow tier: starts a daemon on an altered table.
pytestmark = pytest.mark.slow

FACT, LEDGER = contract.FACT_TABLE, contract.LEDGER_TABLE


def execute(settings: Settings, *statements: str) -> None:
    """DDL by hand, as a DBA would type it, on either backend."""
    if backends.on_postgresql(settings):
        with psycopg.connect(backends.server_of(settings), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())
        return
    with closing(sqlite3.connect(settings.db_file, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


def named(settings: Settings, table: str) -> str:
    """`table` as a statement names it: on PostgreSQL, the ledger and the other tables
    of the daemon's own in their bookkeeping schema."""
    if backends.on_postgresql(settings) and table in (LEDGER, "retries"):
        return backends.books_of(backends.server_of(settings)).table(table)
    return f'"{table}"'


def values_of(settings: Settings, table: str, column: str) -> set[object]:
    query = f'SELECT DISTINCT "{column}" FROM {named(settings, table)}'
    if backends.on_postgresql(settings):
        with psycopg.connect(backends.server_of(settings)) as conn:
            return {v for v, in conn.execute(query.encode())}
    with closing(sqlite3.connect(settings.db_file)) as conn:
        return {v for v, in conn.execute(query)}


def drained(settings: Settings, tmp_path: Path, *days: str) -> DaemonProcess:
    """The days dropped, then a `--once` daemon run to its end."""
    for day in days:
        write_parquet(settings.inbox, day_table(day), run_date=day)
    daemon = Daemons(settings, tmp_path).start("--once", wait_started=False,
                                               log_name=f"daemon-{'-'.join(days)}.log")
    try:
        daemon.proc.wait(timeout=60)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    return daemon


@on_both_backends
def test_a_nullable_column_added_by_hand_is_accepted_with_a_warning(
        settings: Settings, tmp_path: Path) -> None:
    """Found: `ALTER TABLE fact_transactions ADD COLUMN note text` kept every daemon from
    restarting (`table fact_transactions has columns [... 'note'], expected [...]`)."""
    assert drained(settings, tmp_path, "2026-03-01").proc.returncode == 0
    execute(settings, f'ALTER TABLE "{FACT}" ADD COLUMN "note" text',
            f'ALTER TABLE {named(settings, LEDGER)} ADD COLUMN "reviewed" integer DEFAULT 0')
    # A new day, and the first again with one amount changed: inserts and an update.
    write_parquet(settings.inbox, replaced_at(day_table("2026-03-01"), "amount", 0, 1.5),
                  run_date="2026-03-01")
    daemon = drained(settings, tmp_path, "2026-03-02")
    assert daemon.proc.returncode == 0, daemon.log_path.read_text()
    warned = {(e["table"], tuple(e["columns"])): e for e in daemon.matching("table_columns_extra")}
    assert set(warned) == {(FACT, ("note",)), (LEDGER, ("reviewed",))}
    assert all(e["level"] == "warning" and e["hint"] for e in warned.values())
    assert [e["updated"] for e in daemon.matching("file_processed")
            if e["run_date"] == "2026-03-01"] == [1]
    assert len(fact_rows_in(settings)) == 50
    assert values_of(settings, FACT, "note") == {None}
    assert values_of(settings, LEDGER, "reviewed") == {0}


def add_required_column(settings: Settings, table: str) -> None:
    """A NOT NULL column without a default on a table that holds rows (PostgreSQL takes
    one only with a default, dropped after; SQLite only by rebuilding the table)."""
    if backends.on_postgresql(settings):
        execute(settings, f'ALTER TABLE "{table}" ADD COLUMN "must" text NOT NULL DEFAULT \'x\'',
                f'ALTER TABLE "{table}" ALTER COLUMN "must" DROP DEFAULT')
        return
    with closing(sqlite3.connect(settings.db_file, isolation_level=None)) as conn:
        [(create,)] = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,))
        head, paren, tail = str(create).rpartition(")")
        conn.execute(f'ALTER TABLE "{table}" RENAME TO "before"')
        conn.execute(f'{head}, "must" TEXT NOT NULL{paren}{tail}')
        conn.execute(f"INSERT INTO \"{table}\" SELECT *, 'x' FROM \"before\"")
        conn.execute('DROP TABLE "before"')


@on_both_backends
def test_an_extra_not_null_column_without_a_default_is_refused(
        settings: Settings, tmp_path: Path) -> None:
    warehouse.migrate(settings)
    execute(settings, f'INSERT INTO "{FACT}" ("txn_id", "customer_id", "amount", "run_date", '
            f"\"loaded_at\") VALUES ('20260301-0000', 1, 1.0, '2026-03-01', "
            "'2026-03-01T00:00:00Z')")
    add_required_column(settings, FACT)
    daemon = drained(settings, tmp_path, "2026-03-02")
    assert daemon.proc.returncode == 2
    [line] = daemon.matching("database_unavailable")
    assert FACT in line["reason"] and "'must'" in line["reason"]
    assert "NOT NULL without a default" in line["reason"]
    assert "SET DEFAULT" in line["hint"] and "DROP NOT NULL" in line["hint"]
    assert (settings.inbox / contract.file_name_for("2026-03-02")).exists()  # not touched


@on_both_backends
def test_a_missing_column_is_still_refused_by_name(settings: Settings) -> None:
    warehouse.migrate(settings)
    execute(settings, f'ALTER TABLE {named(settings, "retries")} DROP COLUMN "sidecar"')
    with pytest.raises(SchemaMismatch, match=r"retries lacks the columns \['sidecar'\]") as info:
        warehouse.migrate(settings)
    assert "Tables" in info.value.hint


def test_a_changed_type_is_named_with_the_type_expected() -> None:
    difference = columns.compare(
        "fact", {"amount": "double precision", "note": "text"},
        [columns.Held("amount", "numeric", False), columns.Held("note", "text", False)])
    assert difference.refused and difference.changed == (
        "amount is numeric, expected double precision",)
    assert "has changed types (amount is numeric" in columns.refusal(difference).message


def test_the_declared_types_are_read_from_the_definitions() -> None:
    assert columns.declared(['"id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY',
                             '"amount" double precision NOT NULL', '"note" text',
                             'UNIQUE ("node", "name")']) == {
        "id": "bigint", "amount": "double precision", "note": "text"}
