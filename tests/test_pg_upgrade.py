"""PostgreSQL warehouses older releases wrote (versions 3 and 4), migrated in place (5).

`tests/data/release-4-postgresql/dump.sql` holds what the release before feeds left
(version 3), `tests/data/release-5-postgresql/dump.sql` what the release with feeds
left (version 4, two feeds, two nodes), each written by that release's own daemons
(README and the script beside each). Restored into a schema of the test's own and
migrated: every row as it was, the daemon's own tables moved into the bookkeeping
schema, the ledger readable as the `load_history` view (with `node`, null for the
loads before), the drops' watermarks as times to the same nanosecond, the tables,
view, indexes and comments as a new version-5 database has them, logged
`schema_migrated`; then loads go on. A migration that fails midway leaves the
database as it was, and the next one finishes it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from structlog.testing import capture_logs

from filedrop_etl.config.contract import TRANSACTIONS, Contract
from filedrop_etl.daemon.warehouse.api import LoadFilter, MergeCounts, Tally, Ticket
from filedrop_etl.daemon.warehouse.postgresql import doors, schema, upgrade, url_of
from filedrop_etl.daemon.warehouse.postgresql.connection import connect
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl
from filedrop_etl.generator.transactions import generate_table
from tests import backends
from tests.backends import books_of, load_settings
from tests.pg_feeds import ORDERS, load, one, opened, orders, rows, with_feeds

DATA = Path(__file__).parent / "data"
RELEASE_4 = DATA / "release-4-postgresql"  # schema version 3
RELEASE_5 = DATA / "release-5-postgresql"  # schema version 4
KEPT = ("load_history", "retries", "daemons", "claims", "drops", "filedrop_schema",
        "staging_transactions")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def restored(url: str, release: Path) -> str:
    """The release's dump restored into `url`'s schema; the schema's name."""
    dumped = "filedrop_" + release.name.removesuffix("-postgresql").replace("-", "_")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
        assert row is not None
        name = str(row[0])
        text = (release / "dump.sql").read_text()
        text = "\n".join(line for line in text.splitlines()
                         if not line.startswith("\\")  # psql's own commands
                         and not line.startswith(f"CREATE SCHEMA {dumped}")
                         and "set_config('search_path'" not in line)
        conn.execute(text.replace(f"{dumped}.", f'"{name}".').encode())
    return name


def contents(url: str, kept: str = "") -> dict[str, Any]:
    """What the tables hold, with plain SQL (any version): the daemon's own tables
    named with `kept` before them (the bookkeeping schema and a dot), or found through
    the search_path."""
    return {
        "fact": rows(url, "SELECT * FROM fact_transactions ORDER BY txn_id"),
        "ledger": rows(url, f"SELECT * FROM {kept}load_history ORDER BY id"),
        "retries": rows(url, f"SELECT * FROM {kept}retries ORDER BY id"),
        "daemons": rows(url, f"SELECT * FROM {kept}daemons ORDER BY node"),
        "drops": rows(url, f"SELECT * FROM {kept}drops ORDER BY 1, 2"),
        "version": rows(url, f"SELECT version FROM {kept}filedrop_schema")}


def stopped(daemons: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """`daemons` rows as the migration leaves those whose lease ran out: without their
    owner (a clean stop's mark), so that they read stopped, not lost."""
    owner = 8  # "owner", after node, pid, started_at, inbox, work, processed, failed, created
    assert all(r[owner] is not None for r in daemons)
    return [(*r[:owner], None, *r[owner + 1:]) for r in daemons]


def shape(url: str) -> dict[str, Any]:
    """The relations of both schemas (the fact tables' and the bookkeeping's, told apart
    by role, not name): columns, comments, constraints and indexes, from the catalogs."""
    books = books_of(url).schema
    where = ("c.relnamespace IN (current_schema()::regnamespace, to_regnamespace(%s)) "
             "AND c.relkind IN ('r', 'v')")
    role = "CASE WHEN c.relnamespace = current_schema()::regnamespace THEN 'facts' ELSE 'books' END"

    def of(query: str) -> list[tuple[Any, ...]]:
        return rows(url, query, (f'"{books}"',))
    return {
        "relations": of(f"SELECT {role}, c.relname, c.relkind, obj_description(c.oid, "
                        f"'pg_class') FROM pg_class c WHERE {where} ORDER BY 1, 2"),
        "columns": of(f"SELECT {role}, c.relname, a.attnum, a.attname, format_type(a.atttypid,"
                      " a.atttypmod), a.attnotnull, a.atthasdef, a.attidentity, "
                      "col_description(c.oid, a.attnum) FROM pg_class c JOIN pg_attribute a "
                      "ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped WHERE "
                      f"{where} ORDER BY 1, 2, 3"),
        "constraints": of(f"SELECT {role}, c.relname, k.conname, pg_get_constraintdef(k.oid) "
                          f"FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE "
                          f"{where} ORDER BY 1, 2, 3"),
        "indexes": of(f"SELECT {role}, c.relname, i.relname, regexp_replace(pg_get_indexdef("
                      "i.oid), ' ON \\S+', '') FROM pg_index x JOIN pg_class c ON c.oid = "
                      f"x.indrelid JOIN pg_class i ON i.oid = x.indexrelid WHERE {where} "
                      "ORDER BY 1, 2, 3")}


def fresh_shape(feeds: tuple[Contract, ...]) -> dict[str, Any]:
    """The shape of a new version-5 database of `feeds`."""
    with backends.scratch_schema(backends.server_url()) as fresh:
        with connect(PostgresUrl(fresh), 2.0) as conn:
            schema.migrate(conn, feeds)
        return shape(fresh)


def as_time(dropped_ns: int) -> tuple[datetime, int]:
    """A version-4 watermark as version 5 keeps it: the time, and its nanoseconds."""
    micros, nanos = divmod(dropped_ns, 1000)
    return EPOCH + timedelta(microseconds=micros), nanos


def migrated_from(url: str, feeds: tuple[Contract, ...],
                  version: int) -> MutableMapping[str, Any]:
    """Migrate, and its one `schema_migrated` line."""
    with capture_logs() as logs, connect(PostgresUrl(url), 2.0) as conn:
        assert schema.migrate(conn, feeds) == version
    [migrated] = [e for e in logs if e["event"] == "schema_migrated"]
    assert (migrated["from_version"], migrated["to_version"]) == (version, 5)
    assert migrated["duration_ms"] >= 0
    return migrated


def test_the_release_before_feeds_migrates_in_place_then_loads(
        pg_url: str, tmp_path: Path) -> None:
    name = restored(pg_url, RELEASE_4)
    before = contents(pg_url)
    assert before["version"] == [(3,)] and len(before["fact"]) == 590
    assert len(before["ledger"]) == 7 and len(before["drops"]) == 3
    migrated = migrated_from(pg_url, (TRANSACTIONS, ORDERS), 3)
    books = books_of(pg_url)
    assert migrated["steps"] == [
        "load_history.feed added ('transactions' for every row)",
        "drops keyed by feed and run date",
        f"bookkeeping moved to schema {name}_filedrop: load_history, retries, daemons, claims, "
        "drops, staging_transactions, filedrop_schema",
        "load_history.node added (null for the loads before)",
        "drops.dropped_ns became dropped_at (timestamptz) and dropped_nanos",
        "daemons: 1 whose lease had run out marked stopped",
        "schema version 3 -> 5"]
    after = contents(pg_url, books.quoted + ".")
    assert after == {
        "fact": before["fact"], "retries": before["retries"], "daemons": stopped(before["daemons"]),
        "version": [(5,)], "ledger": [(*r, "transactions", None) for r in before["ledger"]],
        "drops": [(day, at, "transactions", nanos) for day, ns in before["drops"]
                  for at, nanos in [as_time(ns)]]}
    # What analysts query: the view, the same rows.
    assert rows(pg_url, "SELECT * FROM load_history ORDER BY id") == after["ledger"]

    # The relations are as a new version-5 database has them.
    migrated_shape = shape(pg_url)
    assert migrated_shape == fresh_shape((TRANSACTIONS, ORDERS))
    assert ("books", "drops", "drops_pkey", "PRIMARY KEY (feed, run_date)") in \
        migrated_shape["constraints"]

    # Migrated once: the next start finds nothing to do, and logs no migration.
    with capture_logs() as logs, connect(PostgresUrl(pg_url), 2.0) as conn:
        assert schema.migrate(conn, (TRANSACTIONS, ORDERS)) == 5
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
    settings = with_feeds(pg_url, tmp_path, TRANSACTIONS, ORDERS)
    with doors.reading(url_of(settings), 2.0) as history:
        assert history.tally(feed="transactions") == Tally(3, 1, 8)
        assert history.tally(feed="orders") == Tally(1, 0, 1)
        assert [x.feed for x in history.recent_loads(LoadFilter(limit=3))] == [
            "orders", "transactions", "transactions"]
        assert [t.rows for t in history.day_totals(TRANSACTIONS)] == [300, 250, 40]
    assert rows(pg_url, "SELECT file_name, node FROM load_history WHERE id > 7 ORDER BY id") \
        == [("transactions_2026-03-03.parquet", settings.node),
            ("orders_2026-03-03.parquet", settings.node)]


def release_5_feeds(tmp_path: Path, url: str) -> Any:
    """The settings the release-5 daemons ran with (two feeds), on `url`."""
    return load_settings({"db": url, "inbox": str(tmp_path / "inbox")},
                         config_file=RELEASE_5 / "etl.toml", environ={})


def test_the_release_with_feeds_migrates_in_place_then_loads(
        pg_url: str, tmp_path: Path) -> None:
    name = restored(pg_url, RELEASE_5)
    settings = release_5_feeds(tmp_path, pg_url)
    feeds = settings.feeds.all
    before = contents(pg_url)
    assert before["version"] == [(4,)] and len(before["ledger"]) == 6
    assert len(before["drops"]) == 4 and len(before["daemons"]) == 2
    facts_before = rows(pg_url, "SELECT * FROM fact_orders ORDER BY order_date, order_id")
    migrated = migrated_from(pg_url, feeds, 4)
    assert migrated["steps"] == [
        f"bookkeeping moved to schema {name}_filedrop: load_history, retries, daemons, claims, "
        "drops, staging_transactions, filedrop_schema",
        "load_history.node added (null for the loads before)",
        "drops.dropped_ns became dropped_at (timestamptz) and dropped_nanos",
        "daemons: 2 whose lease had run out marked stopped",
        "schema version 4 -> 5"]
    books = books_of(pg_url)
    after = contents(pg_url, books.quoted + ".")
    assert after == {
        "fact": before["fact"], "retries": before["retries"], "daemons": stopped(before["daemons"]),
        "version": [(5,)], "ledger": [(*r, None) for r in before["ledger"]],
        "drops": [(day, at, feed, nanos) for day, ns, feed in before["drops"]
                  for at, nanos in [as_time(ns)]]}
    assert rows(pg_url, "SELECT * FROM fact_orders ORDER BY order_date, order_id") == \
        facts_before
    assert rows(pg_url, "SELECT * FROM load_history ORDER BY id") == after["ledger"]
    # The fact schema holds the fact tables and the view, nothing of the bookkeeping.
    assert rows(pg_url, "SELECT relname, relkind FROM pg_class WHERE relnamespace = "
                        "current_schema()::regnamespace AND relkind IN ('r', 'v', 'p') "
                        "ORDER BY 1") == [
        ("fact_orders", "r"), ("fact_transactions", "r"), ("load_history", "v")]
    assert shape(pg_url) == fresh_shape(feeds)

    # The watermarks order drops as they did, to the nanosecond: a drop a nanosecond
    # later than the recorded one wins, one a nanosecond earlier does not.
    [(day, recorded)] = [(d, ns) for d, ns, feed in before["drops"] if feed == "orders"
                         and d == date(2026, 3, 2)]
    with opened(pg_url, tmp_path, *feeds) as held:
        assert not held.latest_drop("orders", str(day), Ticket(1, 1, dropped_ns=recorded - 1))
        assert held.latest_drop("orders", str(day), Ticket(2, 1, dropped_ns=recorded + 1))
        assert load(held, TRANSACTIONS, generate_table(date(2026, 3, 3), 40, 0), "2026-03-03",
                    "new") == MergeCounts(40, 40, 0, 0, 0)
    assert one(pg_url, "SELECT node FROM load_history ORDER BY id DESC LIMIT 1") == \
        settings.node


@pytest.mark.parametrize("release,step", [(RELEASE_4, "from_v3"), (RELEASE_5, "from_v4")])
def test_a_migration_that_fails_midway_leaves_the_database_as_it_was(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: Path,
        step: str) -> None:
    restored(pg_url, release)
    feeds = release_5_feeds(tmp_path, pg_url).feeds.all
    before, tables = contents(pg_url), shape(pg_url)
    done = getattr(upgrade, step)

    def killed(*args: Any) -> list[str]:
        done(*args)
        raise RuntimeError("killed mid-migration")

    monkeypatch.setattr(upgrade, step, killed)
    with connect(PostgresUrl(pg_url), 2.0) as conn, pytest.raises(RuntimeError,
                                                                  match="mid-migration"):
        schema.migrate(conn, feeds)
    assert contents(pg_url) == before and shape(pg_url) == tables
    assert one(pg_url, "SELECT to_regnamespace(%s)", (books_of(pg_url).quoted,)) is None
    monkeypatch.setattr(upgrade, step, done)
    with connect(PostgresUrl(pg_url), 2.0) as conn:
        assert schema.migrate(conn, feeds) == before["version"][0][0]
    assert contents(pg_url, books_of(pg_url).quoted + ".")["version"] == [(5,)]
