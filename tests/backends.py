"""Both warehouse backends as the tests reach them: settings for each, rows read back.

PostgreSQL comes from `FILEDROP_TEST_POSTGRES` (a URL to a database the tests may create
schemas in; `.ci/run` makes a scratch database and drops it after). Each test gets a
schema of its own (the URL's `search_path`), dropped at teardown with the bookkeeping
schema its daemons made beside it. Without the variable
the PostgreSQL cases skip with the reason, unless `FILEDROP_REQUIRE_POSTGRES` is set (CI):
then they fail. Rows are read back in the SQLite forms (dates and times as the ledger's
text), so one assertion holds for both backends. Which backend a test's settings are on
is the registry's to say (`on_postgresql`), as it is for the daemon.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from filedrop_etl import config
from filedrop_etl.config import Settings, contract
from filedrop_etl.daemon.warehouse import registry
from filedrop_etl.daemon.warehouse.postgresql import books

POSTGRES_ENV = "FILEDROP_TEST_POSTGRES"
REQUIRE_ENV = "FILEDROP_REQUIRE_POSTGRES"
BACKENDS = ("sqlite", "postgresql")
_TIME = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def server_url() -> str:
    """The test server's URL, or skip (fail under CI) saying how to give one."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    reason = (f"no PostgreSQL server for the tests: set {POSTGRES_ENV}=postgresql://USER@HOST"
              ":PORT/DBNAME (`.ci/run` does, with a scratch database)")
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def scratch_schema(url: str) -> Iterator[str]:
    """A new schema in the server's database, and a URL whose tables land in it."""
    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    joiner = "&" if "?" in url else "?"
    try:
        yield f"{url}{joiner}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            # With the bookkeeping schema the daemon made beside it (`books.default_for`).
            for schema in (name, books.default_for(name)):
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)))


def books_of(url: str) -> books.Books:
    """The bookkeeping schema of the warehouse at `url`, as its daemons resolve it (the
    default beside the URL's schema), for a test's own statements on the daemon's tables:
    `books_of(url).claims` is `"t_..._filedrop"."claims"`."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
    return books.resolve(None, None if row is None else str(row[0]))


def load_settings(overrides: Mapping[str, object | None] | None = None, *,
                  config_file: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """`config.load_settings`, placed by the backend its `db` names, as the daemon's are."""
    return registry.place(config.load_settings(overrides, config_file=config_file,
                                               environ=environ))


def on_postgresql(settings: Settings) -> bool:
    """Whether `settings` name a PostgreSQL server (as the registry picks the backend)."""
    return registry.backend_of(settings).name == "postgresql"


def server_of(settings: Settings) -> str:
    """The URL of the server `settings` name, secrets and all, for a test's own session."""
    assert on_postgresql(settings), settings
    return settings.db


def db_arg(settings: Settings) -> str:
    """The database as a command line gives it."""
    return settings.db


def _pg_rows(settings: Settings, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(server_of(settings), row_factory=dict_row) as conn:
        return list(conn.execute(query.encode()))


def fact_rows_in(settings: Settings) -> list[tuple[Any, ...]]:
    """Every fact row in key order, as SQLite returns them (dates and times as text)."""
    if not on_postgresql(settings):
        conn = sqlite3.connect(settings.db_file)
        try:
            return conn.execute(f'SELECT * FROM "{contract.FACT_TABLE}" '
                                f'ORDER BY "{contract.KEY}"').fetchall()
        finally:
            conn.close()
    rows = _pg_rows(settings, (
        'SELECT "txn_id", "customer_id", "amount", to_char("run_date", \'YYYY-MM-DD\') AS d, '
        f'{_TIME.format(chr(34) + "loaded_at" + chr(34))} AS t, "load_id" '
        f'FROM "{contract.FACT_TABLE}" ORDER BY "txn_id" COLLATE "C"'))
    return [tuple(r.values()) for r in rows]


def ledger_in(settings: Settings) -> list[dict[str, Any]]:
    """Every `load_history` row, oldest first, as SQLite returns them."""
    if not on_postgresql(settings):
        conn = sqlite3.connect(settings.db_file)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(
                f'SELECT * FROM "{contract.LEDGER_TABLE}" ORDER BY "id"')]
        finally:
            conn.close()
    rows = _pg_rows(settings, f'SELECT * FROM "{contract.LEDGER_TABLE}" ORDER BY "id"')
    for row in rows:
        for name in ("started_at", "finished_at"):
            row[name] = row[name].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if row["run_date"] is not None:
            row["run_date"] = row["run_date"].isoformat()
    return rows
