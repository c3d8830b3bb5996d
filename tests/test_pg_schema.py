"""The PostgreSQL schema beside running loads, and the two roles, with real processes.

A session holding an open transaction that wrote to the fact table stands in for a
running merge (it holds ROW EXCLUSIVE, as a merge of millions of rows does for minutes):
a daemon's start and `retry` on a current schema must not wait for it, and must not
queue a lock that the other loads then queue behind; a start that must migrate gives up
its lock wait at once (`database_busy`, retried) rather than hold the loads up. Then the
owner and runtime roles: `filedrop-etl migrate --grant` as the owner, the daemon and
`retry` as a role that may only read and write the tables, and the clear refusal that
role gets on a schema that is behind. PostgreSQL only: without a server these skip
(fail under CI).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from filedrop_etl.config import Settings, contract
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.errors import DatabaseUnavailable, SchemaMismatch
from filedrop_etl.daemon.warehouse.postgresql import books, schema
from filedrop_etl.daemon.warehouse.postgresql import roles as pg_roles
from filedrop_etl.daemon.warehouse.postgresql.connection import connect
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl
from tests import backends
from tests.backends import books_of, fact_rows_in
from tests.conftest import (
    ROOT,
    DaemonProcess,
    Daemons,
    day_table,
    replaced_at,
    settings_under,
    wait_until,
    write_parquet,
)
from tests.test_commands import SCRIPT, where

# The slow tier: starts daemons as the owner and the runtime role.
pytestmark = pytest.mark.slow

# Long enough that a lock wait of the busy timeout stands out from any hiccup of a busy
# machine, in the loads' latencies below.
BUSY = {"ETL_BUSY_TIMEOUT_SECONDS": "10"}
STALL_LIMIT_SECONDS = 5.0
FACT = contract.FACT_TABLE


@pytest.fixture
def settings(tmp_path: Path, pg_url: str) -> Settings:
    return settings_under(tmp_path, pg_url)


def url_of(settings: Settings) -> str:
    assert backends.on_postgresql(settings)
    return backends.server_of(settings)


def command(settings: Settings, *argv: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *argv, *where(settings)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def with_env(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ETL_")}, **extra}


def drained(daemons: Daemons, env: dict[str, str] | None = None,
            timeout: float = 30.0) -> DaemonProcess:
    """A `--once` daemon run to its end (its exit code in `proc.returncode`)."""
    daemon = daemons.start("--once", wait_started=False, env=env)
    daemon.proc.wait(timeout=timeout)
    return daemon


def bad_file(settings: Settings, run_date: str = "2026-03-03") -> None:
    """A file that fails its checks (a negative amount): at once, and again if retried.
    (Bytes that are not Parquet would wait to be sure the writer is done.)"""
    write_parquet(settings.inbox, replaced_at(day_table(run_date), "amount", 0, -1.0),
                  run_date=run_date)


@dataclass
class Loads:
    """Small loads into the fact table, one committed transaction each, on a session of
    their own, while something else happens: their slowest, and every lock another
    session of this schema waited for meanwhile (which a load would queue behind)."""

    url: str
    slowest: float = 0.0
    done: int = 0
    waits: list[tuple[str, str, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn, \
                psycopg.connect(self.url, autocommit=True) as watch:
            while not self.stop.is_set():
                started = time.monotonic()
                conn.execute(f'INSERT INTO "{FACT}" VALUES (%s, 1, 1.0, %s::date, now(), NULL)'
                             .encode(), (f"20270101-{self.done:06d}", "2027-01-01"))
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.done += 1
                self.waits += [(str(a), str(m), str(r)) for a, m, r in watch.execute(
                    "SELECT a.application_name, l.mode, c.relname FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid JOIN pg_class c "
                    "ON c.oid = l.relation WHERE NOT l.granted "
                    "AND c.relnamespace = current_schema()::text::regnamespace")]
                time.sleep(0.01)


@contextmanager
def loading(url: str) -> Iterator[Loads]:
    loads = Loads(url)
    thread = threading.Thread(target=loads.run, name="small-loads")
    thread.start()
    try:
        wait_until(lambda: loads.done > 0, "the first small load")
        yield loads
    finally:
        loads.stop.set()
        thread.join()


@contextmanager
def merge_running(url: str) -> Iterator[None]:
    """A session in a transaction that has written to the fact table, as a long merge
    is: it holds ROW EXCLUSIVE on the table until it ends (rolled back at the end)."""
    with psycopg.connect(url) as conn:
        conn.execute(f'INSERT INTO "{FACT}" VALUES (%s, 1, 1.0, %s::date, now(), NULL)'
                     .encode(),
                     ("20270102-0000", "2027-01-02"))
        yield
        conn.rollback()


def test_a_start_and_a_retry_on_a_current_schema_wait_for_no_running_merge(
        settings: Settings, tmp_path: Path) -> None:
    """Found: `CREATE INDEX IF NOT EXISTS` at every start and every `retry` took a SHARE
    lock before finding the index, so both waited on any running merge (`retry` exited 2
    after the busy timeout; a start waited as long as the merge) while the loads queued
    behind the lock they waited for."""
    daemons = Daemons(settings, tmp_path)
    try:
        bad_file(settings)
        assert drained(daemons).proc.returncode == 1  # migrated; one file failed
        with merge_running(url_of(settings)), loading(url_of(settings)) as loads:
            started = drained(daemons, env=BUSY)
            assert started.proc.returncode == 0, started.log_path.read_text()
            retried = command(settings, "retry", "--all", env=with_env(BUSY))
            assert retried.returncode == 0, retried.stderr
        assert loads.waits == []
        assert loads.slowest < STALL_LIMIT_SECONDS
        assert (settings.inbox / contract.file_name_for("2026-03-03")).exists()
    finally:
        daemons.close()


def test_a_start_that_must_migrate_gives_up_its_lock_wait_rather_than_hold_up_loads(
        settings: Settings, tmp_path: Path) -> None:
    assert backends.on_postgresql(settings)
    with connect(PostgresUrl(settings.db), 2.0) as conn:
        schema.migrate(conn, settings.feeds.all)
    daemons = Daemons(settings, tmp_path)
    try:
        index = f"{FACT}_run_date"
        with psycopg.connect(url_of(settings), autocommit=True) as conn:
            conn.execute(f'DROP INDEX "{index}"'.encode())
            conn.execute(f'UPDATE {books_of(url_of(settings)).version} SET "version" = 2'
                         .encode())
        with merge_running(url_of(settings)), loading(url_of(settings)) as loads:
            daemon = daemons.start(wait_started=False, env=BUSY)
            busy = daemon.wait_for("database_busy")[0]
            slowest = loads.slowest
        assert slowest < STALL_LIMIT_SECONDS
        assert "gave up after" in busy["reason"] and busy["attempt"] == 1
        daemon.wait_for("inbox_swept")  # the next attempt, the merge over, migrated
        with psycopg.connect(url_of(settings)) as conn:
            assert conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                (f'"{index}"',)).fetchone() == (True,)
            assert conn.execute(f'SELECT "version" FROM {books_of(url_of(settings)).version}'
                                .encode()).fetchall() == [(schema.SCHEMA_VERSION,)]
    finally:
        daemons.close()


def test_a_column_of_another_type_is_refused_by_the_catalogs_names(
        settings: Settings) -> None:
    assert backends.on_postgresql(settings)
    with connect(PostgresUrl(settings.db), 2.0) as conn:
        schema.migrate(conn, settings.feeds.all)
        conn.execute(f'ALTER TABLE "{FACT}" ALTER COLUMN "amount" TYPE numeric'.encode())
        with pytest.raises(SchemaMismatch, match=r"amount is numeric, expected double "
                           r"precision\)"):
            schema.migrate(conn, settings.feeds.all)
        with pytest.raises(SchemaMismatch, match="amount is numeric"):
            schema.require_current(conn, settings.feeds.all)


# --- two roles ----------------------------------------------------------------------

@dataclass(frozen=True)
class Roles:
    owner: str
    runtime: str
    schema: str

    @property
    def schemas(self) -> tuple[str, str]:
        return self.schema, books.default_for(self.schema)

    def url(self, server: str, role: str) -> str:
        parts = urlsplit(server)
        host = parts.netloc.rpartition("@")[2]
        query = f"options={quote(f'-csearch_path={self.schema}')}"
        return urlunsplit(parts._replace(netloc=f"{role}@{host}", query=query))


@pytest.fixture
def roles() -> Iterator[Roles]:
    """An owner role with a schema of its own, and a runtime role with no rights yet;
    both dropped at teardown, with all they own or were granted."""
    server = backends.server_url()
    tag = secrets.token_hex(5)
    made = Roles(f"t_owner_{tag}", f"t_runtime_{tag}", f"t_roles_{tag}")
    with psycopg.connect(server, autocommit=True) as conn:
        for role in (made.owner, made.runtime):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        # The fact tables' schema and the bookkeeping's beside it, as a DBA makes them
        # (the README's "Two roles"): the owner then needs no CREATE on the database.
        for name in made.schemas:
            conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(name), sql.Identifier(made.owner)))
    try:
        yield made
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            for name in made.schemas:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(name)))
            for role in (made.runtime, made.owner):
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_owner_migrates_and_grants_then_the_runtime_role_loads_and_retries(
        roles: Roles, tmp_path: Path) -> None:
    """Found: a role with every table privilege but not the tables' ownership was
    refused by the daemon and by `retry` (`must be owner of table fact_transactions`)."""
    server = backends.server_url()
    owner = settings_under(tmp_path, roles.url(server, roles.owner))
    runtime = settings_under(tmp_path, roles.url(server, roles.runtime))
    done = command(owner, "migrate", "--grant", roles.runtime, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) | {"db": None} == {
        "db": None, "found": None, "version": schema.SCHEMA_VERSION, "granted": roles.runtime,
        "notes": [], "granted_read": None, "migrated": True}
    with psycopg.connect(server) as conn:
        assert conn.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')",
                            (roles.runtime, roles.schema)).fetchone() == (False,)
    daemons = Daemons(runtime, tmp_path)
    try:
        write_parquet(runtime.inbox, day_table("2026-03-01"), run_date="2026-03-01")
        bad_file(runtime)
        loaded = drained(daemons)
        assert loaded.proc.returncode == 1, loaded.log_path.read_text()  # one failed
        assert loaded.matching("file_processed") and loaded.matching("file_failed")
        assert len(fact_rows_in(runtime)) == 25

        # A schema that is behind: the runtime role can not migrate it, and says what to run.
        with psycopg.connect(url_of(owner)) as conn:
            conn.execute(f'UPDATE {books_of(url_of(owner)).version} SET "version" = 2'
                         .encode())
        refused = drained(daemons)
        assert refused.proc.returncode == 2
        [line] = refused.matching("database_unavailable")
        assert "schema version 2" in line["reason"]
        assert f"role {roles.runtime} may not migrate it" in line["reason"]
        assert "must be owner" not in line["reason"]
        assert "filedrop-etl migrate" in line["hint"]
        retried = command(runtime, "retry", "--all")
        assert retried.returncode == 2
        [line] = [e for e in map(json.loads, retried.stderr.splitlines())
                  if e["event"] == "database_unavailable"]
        assert "`retry` does not migrate it" in line["reason"]
        assert "filedrop-etl migrate" in line["hint"]

        done = command(owner, "migrate")
        assert done.returncode == 0 and "migrated from version 2" in done.stdout, done.stderr
        retried = command(runtime, "retry", "--all")
        assert retried.returncode == 0, retried.stderr
        assert (runtime.inbox / contract.file_name_for("2026-03-03")).exists()
    finally:
        daemons.close()


def test_an_analysts_role_reads_the_facts_and_load_history_and_nothing_else(
        roles: Roles, tmp_path: Path) -> None:
    """`migrate --grant-read`: what an analyst queries, and none of the bookkeeping."""
    server = backends.server_url()
    owner = settings_under(tmp_path, roles.url(server, roles.owner))
    done = command(owner, "migrate", "--grant", roles.runtime, "--grant-read", roles.runtime)
    assert done.returncode == 0, done.stderr
    assert f"{roles.runtime}: USAGE on the fact tables' schema" in done.stdout
    daemons = Daemons(owner, tmp_path)
    try:
        write_parquet(owner.inbox, day_table("2026-03-01"), run_date="2026-03-01")
        assert drained(daemons).proc.returncode == 0
    finally:
        daemons.close()
    reader = roles.url(server, roles.runtime)
    revoke = "REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}"
    with psycopg.connect(url_of(owner), autocommit=True) as conn:
        # Only what --grant-read gave: the runtime grants on the bookkeeping taken back.
        conn.execute(sql.SQL(revoke).format(sql.Identifier(roles.schemas[1]),
                                            sql.Identifier(roles.runtime)))
        conn.execute(sql.SQL("REVOKE USAGE ON SCHEMA {} FROM {}").format(
            sql.Identifier(roles.schemas[1]), sql.Identifier(roles.runtime)))
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.execute("SELECT file_name, node FROM load_history").fetchall() == [
            (contract.file_name_for("2026-03-01"), owner.node)]
        assert conn.execute(f'SELECT count(*) FROM "{FACT}"'.encode()).fetchone() == (25,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT * FROM {books_of(reader).claims}".encode())


def test_a_runtime_role_without_its_grants_is_refused_naming_what_it_lacks(
        roles: Roles, tmp_path: Path) -> None:
    """Refused at the start, not file by file: a load that failed on a missing privilege
    would have sent a good file to failed/."""
    server = backends.server_url()
    owner = settings_under(tmp_path, roles.url(server, roles.owner))
    runtime = settings_under(tmp_path, roles.url(server, roles.runtime))
    assert command(owner, "migrate").returncode == 0
    daemons = Daemons(runtime, tmp_path)
    try:
        write_parquet(runtime.inbox, day_table("2026-03-01"), run_date="2026-03-01")
        with psycopg.connect(url_of(owner), autocommit=True) as conn:
            for name in roles.schemas:
                for grant in ("GRANT USAGE ON SCHEMA {} TO {}",
                              "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}"):
                    conn.execute(sql.SQL(grant).format(sql.Identifier(name),
                                                       sql.Identifier(roles.runtime)))
        refused = drained(daemons)
        assert refused.proc.returncode == 2
        [line] = refused.matching("database_unavailable")
        assert line["reason"].startswith(f"role {roles.runtime} lacks privileges the daemon "
                                         "needs: INSERT on load_history, UPDATE on load_history")
        assert f"filedrop-etl migrate --grant {roles.runtime}" in line["hint"]
        assert (runtime.inbox / contract.file_name_for("2026-03-01")).exists()
    finally:
        daemons.close()


def test_a_runtime_role_that_may_not_use_temporary_tables_is_told_what_to_grant(
        tmp_path: Path) -> None:
    """In a database of its own, where PUBLIC lost TEMPORARY (a hardened site's)."""
    server = backends.server_url()
    tag = secrets.token_hex(5)
    made = Roles(f"t_owner_{tag}", f"t_runtime_{tag}", "etl")
    database = f"t_temp_{tag}"
    ident = sql.Identifier
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident(database)))
        for role in (made.owner, made.runtime):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident(role)))
    here = urlunsplit(urlsplit(server)._replace(path=f"/{database}"))
    try:
        with psycopg.connect(here, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC")
                         .format(ident(database)))
            for name in made.schemas:
                conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                    ident(name), ident(made.owner)))
        owner = settings_under(tmp_path, made.url(here, made.owner))
        done = warehouse.migrate(owner, grant=made.runtime)
        [note] = done.notes
        assert f"GRANT TEMPORARY ON DATABASE \"{database}\" TO \"{made.runtime}\"" in note
        with connect(PostgresUrl(made.url(here, made.runtime)), 2.0) as conn, \
                pytest.raises(DatabaseUnavailable, match="may not create temporary tables"):
            pg_roles.check(conn, owner.feeds.all)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident(database)))
            for role in (made.runtime, made.owner):
                conn.execute(sql.SQL("DROP ROLE {}").format(ident(role)))
