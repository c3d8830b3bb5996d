"""A PostgreSQL warehouse the last release wrote (version 3), migrated in place (4).

`tests/data/release-4-postgresql/dump.sql` holds what that release's own daemon left
(README beside it). Restored into a schema of the test's own and migrated: every row
as it was, the ledger's rows and the watermarks the built-in feed's, the tables as a new
version-4 database has them, logged `schema_migrated`; then a re-run of a loaded day
changes nothing, and a declared feed loads beside it. A migration that fails midway
leaves the database as it was, and the next one finishes it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from structlog.testing import capture_logs

from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon.warehouse.api import LoadFilter, MergeCounts, Tally, Ticket
from filedrop_etl.daemon.warehouse.postgresql import doors, evolve, schema, url_of
from filedrop_etl.daemon.warehouse.postgresql.connection import connect
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl
from filedrop_etl.generator.transactions import generate_table
from tests import backends
from tests.pg_feeds import ORDERS, load, one, opened, orders, rows, with_feeds

DUMP = Path(__file__).parent / "data" / "release-4-postgresql" / "dump.sql"
DUMPED_SCHEMA = "filedrop_release_4"
SHARED = ("load_history", "retries", "daemons", "claims", "drops", "filedrop_schema",
          "fact_transactions", "staging_transactions")


def restored(url: str) -> str:
    """The dump restored into `url`'s schema; the schema's name."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
        assert row is not None
        name = str(row[0])
        text = DUMP.read_text()
        text = "\n".join(line for line in text.splitlines()
                         if not line.startswith("\\")  # psql's own commands
                         and not line.startswith(f"CREATE SCHEMA {DUMPED_SCHEMA}")
                         and "set_config('search_path'" not in line)
        conn.execute(text.replace(f"{DUMPED_SCHEMA}.", f'"{name}".').encode())
    return name


def contents(url: str) -> dict[str, Any]:
    """What the tables hold, with plain SQL (any version)."""
    return {
        "fact": rows(url, "SELECT * FROM fact_transactions ORDER BY txn_id"),
        "ledger": rows(url, "SELECT * FROM load_history ORDER BY id"),
        "retries": rows(url, "SELECT * FROM retries ORDER BY id"),
        "drops": rows(url, "SELECT * FROM drops ORDER BY run_date"),
        "version": rows(url, "SELECT version FROM filedrop_schema")}


def shape(url: str) -> dict[str, Any]:
    """The tables' columns, constraints and indexes, as the catalogs hold them."""
    def of(query: str) -> list[tuple[Any, ...]]:
        return rows(url, query, (list(SHARED),))
    return {
        "columns": of("SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, "
                      "a.atttypmod), a.attnotnull, a.atthasdef, a.attidentity FROM pg_class c "
                      "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT "
                      "a.attisdropped WHERE c.relnamespace = current_schema()::regnamespace "
                      "AND c.relname = ANY(%s) ORDER BY 1, 2"),
        "constraints": of("SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM "
                          "pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE "
                          "c.relnamespace = current_schema()::regnamespace AND c.relname = "
                          "ANY(%s) ORDER BY 1, 2"),
        "indexes": of("SELECT tablename, indexname, regexp_replace(indexdef, ' ON \\S+', '') "
                      "FROM pg_indexes WHERE schemaname = current_schema() AND tablename = "
                      "ANY(%s) ORDER BY 1, 2")}


def test_the_last_releases_warehouse_migrates_in_place_then_loads(
        pg_url: str, tmp_path: Path) -> None:
    restored(pg_url)
    before = contents(pg_url)
    assert before["version"] == [(3,)] and len(before["fact"]) == 590
    assert len(before["ledger"]) == 7 and len(before["drops"]) == 3
    with capture_logs() as logs, connect(PostgresUrl(pg_url), 2.0) as conn:
        assert schema.migrate(conn, (TRANSACTIONS, ORDERS)) == 3
    [migrated] = [e for e in logs if e["event"] == "schema_migrated"]
    assert (migrated["from_version"], migrated["to_version"]) == (3, 4)
    assert migrated["steps"][:2] == ["load_history.feed added ('transactions' for every row)",
                                     "drops keyed by feed and run date"]
    assert migrated["duration_ms"] >= 0
    after = contents(pg_url)
    assert after == {"fact": before["fact"], "retries": before["retries"], "version": [(4,)],
                     "ledger": [(*r, "transactions") for r in before["ledger"]],
                     "drops": [(*r, "transactions") for r in before["drops"]]}

    # The tables are as a new version-4 database has them.
    with backends.scratch_schema(backends.server_url()) as fresh:
        with connect(PostgresUrl(fresh), 2.0) as conn:
            schema.migrate(conn, (TRANSACTIONS,))
        migrated_shape = shape(pg_url)
        assert migrated_shape == shape(fresh)
    assert len(migrated_shape["columns"]) == 60 and len(migrated_shape["indexes"]) == 12
    assert ("drops", "drops_pkey", "PRIMARY KEY (feed, run_date)") in migrated_shape[
        "constraints"]

    # Migrated once: the next start finds nothing to do, and logs no migration.
    with capture_logs() as logs, connect(PostgresUrl(pg_url), 2.0) as conn:
        assert schema.migrate(conn, (TRANSACTIONS, ORDERS)) == 4
    assert not [e for e in logs if e["event"] == "schema_migrated"]

    with opened(pg_url, tmp_path, TRANSACTIONS, ORDERS) as held:
        day = generate_table(date(2026, 3, 3), 40, 0)
        assert load(held, TRANSACTIONS, day, "2026-03-03", "again") == MergeCounts(
            40, 0, 0, 40, 0)
        assert load(held, ORDERS, orders("2026-03-03", 5), "2026-03-03", "o") == \
            MergeCounts(5, 5, 0, 0, 0)
        # The old release's watermark of the date holds for the built-in feed alone.
        assert not held.latest_drop("transactions", "2026-03-01", Ticket(1, 1, dropped_ns=1))
        assert held.latest_drop("orders", "2026-03-01", Ticket(1, 1, dropped_ns=1))
    with doors.reading(url_of(with_feeds(pg_url, tmp_path, TRANSACTIONS, ORDERS)),
                       2.0) as history:
        assert history.tally(feed="transactions") == Tally(3, 1, 8)
        assert history.tally(feed="orders") == Tally(1, 0, 1)
        assert [x.feed for x in history.recent_loads(LoadFilter(limit=3))] == [
            "orders", "transactions", "transactions"]
        assert [t.rows for t in history.day_totals(TRANSACTIONS)] == [300, 250, 40]


def test_a_migration_that_fails_midway_leaves_the_database_as_it_was(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    restored(pg_url)
    before, tables = contents(pg_url), shape(pg_url)
    upgrade = evolve.upgrade

    def killed(*args: Any) -> list[str]:
        upgrade(*args)
        raise RuntimeError("killed mid-migration")

    monkeypatch.setattr(evolve, "upgrade", killed)
    with connect(PostgresUrl(pg_url), 2.0) as conn, pytest.raises(RuntimeError,
                                                                  match="mid-migration"):
        schema.migrate(conn, (TRANSACTIONS, ORDERS))
    assert contents(pg_url) == before and shape(pg_url) == tables
    assert one(pg_url, "SELECT to_regclass('fact_orders')") is None
    monkeypatch.setattr(evolve, "upgrade", upgrade)
    with connect(PostgresUrl(pg_url), 2.0) as conn:
        assert schema.migrate(conn, (TRANSACTIONS, ORDERS)) == 3
    assert contents(pg_url)["version"] == [(4,)]
