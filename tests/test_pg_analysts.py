"""What an analyst sees of a PostgreSQL warehouse the real daemon loaded (issue 24's
item 14): in the fact schema, the fact tables and the `load_history` view alone, each
of them and each of their columns commented; the daemon's bookkeeping in a schema of
its own (the `bookkeeping_schema` setting, or beside the fact schema by default);
`load_history` says which node loaded each file; `drops` keeps its watermark as a time.
Found: `\\dt` listed 8 tables in one schema (claims, daemons, drops, filedrop_schema, an
always-empty staging table beside the fact table), none with a comment. PostgreSQL
only: without a server these skip (fail under CI).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from filedrop_etl.config import Settings
from tests import backends
from tests.conftest import ROOT, Daemons, settings_under
from tests.pg_feeds import rows
from tools.harness import process

EXAMPLE = ROOT / "config" / "feeds.example.toml"
NODE = "analysts-node"
# psql's `\dt` and `\dv` of the search_path's schema: its tables and views.
LISTED = ("SELECT c.relname, c.relkind FROM pg_class c WHERE c.relnamespace = "
          "{}::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1")


def generate(settings: Settings, feed: str, day: str) -> None:
    subprocess.run([sys.executable, "-m", "filedrop_etl.generator", "--feed", feed,
                    "--config", str(EXAMPLE), "--date", day, "--rows", "20",
                    "--inbox", str(settings.inbox), "--no-progress"],
                   cwd=ROOT, check=True, capture_output=True)


def loaded(settings: Settings, tmp_path: Path, *extra: str) -> None:
    """Both feeds' files of a day, loaded by the daemon (`--once`) as node `NODE`."""
    for feed in ("transactions", "orders"):
        generate(settings, feed, "2026-03-01")
    daemon = Daemons(settings, tmp_path).start(
        "--once", "--config", str(EXAMPLE), "--node", NODE, *extra, wait_started=False)
    assert daemon.proc.wait(timeout=60) == 0, daemon.log_path.read_text()


def uncommented(url: str, schema: str) -> list[tuple[Any, ...]]:
    """The tables, views and columns of `schema` without a comment."""
    return rows(url, (
        "SELECT c.relname, NULL FROM pg_class c WHERE c.relnamespace = %s::regnamespace "
        "AND c.relkind IN ('r', 'v') AND coalesce(obj_description(c.oid, 'pg_class'), '') = '' "
        "UNION ALL SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON "
        "a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped WHERE c.relnamespace = "
        "%s::regnamespace AND c.relkind IN ('r', 'v') AND "
        "coalesce(col_description(c.oid, a.attnum), '') = ''"), (schema, schema))


def test_analysts_see_the_fact_tables_and_a_commented_load_history_view(
        tmp_path: Path, pg_url: str) -> None:
    settings = settings_under(tmp_path, pg_url)
    loaded(settings, tmp_path)
    [(facts,)] = rows(pg_url, "SELECT current_schema()")
    kept = backends.books_of(pg_url)
    assert kept.schema == f"{facts}_filedrop"
    # `\dt` and `\dv` of the analysts' schema: the fact tables and the view, nothing else.
    assert rows(pg_url, LISTED.format("current_schema()")) == [
        ("fact_orders", "r"), ("fact_transactions", "r"), ("load_history", "v")]
    assert rows(pg_url, LISTED.format("%s"), (kept.schema,)) == [
        ("claims", "r"), ("daemons", "r"), ("dismissals", "r"), ("drops", "r"),
        ("filedrop_schema", "r"), ("load_history", "r"), ("retries", "r"),
        ("staging_transactions", "r")]
    assert uncommented(pg_url, facts) == []
    assert rows(pg_url, "SELECT col_description('fact_orders'::regclass, 2), "
                        "obj_description('fact_orders'::regclass, 'pg_class')") == [(
        "integer (bigint), never null, key column 2 of 2",
        "feed orders: the rows of the files named orders_YYYY-MM-DD.parquet, loaded by "
        "filedrop-etl; one row per combination of the key (order_date, order_id)")]

    # The ledger as analysts query it, as documented: every column it had, and the node.
    ledger = rows(pg_url, "SELECT file_name, status, rows, feed, node, "
                          "pg_typeof(finished_at)::text FROM load_history ORDER BY id")
    assert sorted(ledger) == [
        ("orders_2026-03-01.parquet", "processed", 20, "orders", NODE,
         "timestamp with time zone"),
        ("transactions_2026-03-01.parquet", "processed", 20, "transactions", NODE,
         "timestamp with time zone")]
    # The later-drop watermark is a time (and the nanoseconds a time can not hold).
    drops = rows(pg_url, f"SELECT feed, pg_typeof(dropped_at)::text, dropped_nanos "
                         f"BETWEEN 0 AND 999, dropped_at > now() - interval '1 hour' "
                         f"FROM {kept.drops} ORDER BY feed")
    assert drops == [("orders", "timestamp with time zone", True, True),
                     ("transactions", "timestamp with time zone", True, True)]


def test_the_bookkeeping_schema_is_the_settings(tmp_path: Path, pg_url: str) -> None:
    settings = settings_under(tmp_path, pg_url)
    [(facts,)] = rows(pg_url, "SELECT current_schema()")
    named = f"{facts}_books"
    try:
        loaded(settings, tmp_path, "--bookkeeping-schema", named)
        assert rows(pg_url, "SELECT count(*) FROM load_history") == [(2,)]
        assert rows(pg_url, f'SELECT count(*) FROM "{named}"."load_history"') == [(2,)]
        assert rows(pg_url, "SELECT to_regnamespace(%s)", (f'"{facts}_filedrop"',)) == [
            (None,)]
        # The commands find it by the same setting, from the environment here.
        history = subprocess.run(
            process.daemon_argv("history", "--json", "--db", pg_url),
            cwd=ROOT, env=process.clean_environ({"ETL_BOOKKEEPING_SCHEMA": named}),
            capture_output=True, text=True, check=False)
        assert history.returncode == 0, history.stderr
        assert sorted(load["file_name"] for load in json.loads(history.stdout)) == [
            "orders_2026-03-01.parquet", "transactions_2026-03-01.parquet"]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(named)))


def test_a_bookkeeping_schema_that_is_the_fact_schema_is_refused(
        tmp_path: Path, pg_url: str) -> None:
    settings = settings_under(tmp_path, pg_url)
    [(facts,)] = rows(pg_url, "SELECT current_schema()")
    daemon = Daemons(settings, tmp_path).start("--once", "--bookkeeping-schema", facts,
                                                wait_started=False)
    assert daemon.proc.wait(timeout=60) == 2
    [line] = daemon.matching("database_unavailable")
    assert f"the bookkeeping schema is the fact tables' own ({facts})" in line["reason"]
    assert "bookkeeping_schema" in line["hint"]


@pytest.mark.parametrize("fact_schema,expected", [
    ("public", "filedrop"), ("etl", "etl_filedrop"), (None, "filedrop"),
    ("x" * 63, "x" * 54 + "_filedrop")])
def test_the_default_bookkeeping_schema_sits_beside_the_fact_schema(
        fact_schema: str | None, expected: str) -> None:
    from filedrop_etl.daemon.warehouse.postgresql import books

    assert books.default_for(fact_schema) == expected
