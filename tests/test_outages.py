"""The daemon on PostgreSQL through outages: a connection refused while it runs, a
black-holed network, a session left dead by a cut, an unknown host, and the timeouts
that bound every wait on the server.

The daemons are real processes; the network between them and the server is
`tests.tcp_proxy` (pass, refuse, black-hole, cut), and a refused login is a real
`REVOKE CONNECT` on a database and a role made for the test (dropped after). Timeouts
are shortened by the settings, never slept through. PostgreSQL only: without a server
these skip (fail under CI).
"""

from __future__ import annotations

import secrets
import select
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from filedrop_etl.config import contract
from filedrop_etl.daemon.errors import DatabaseUnavailable
from filedrop_etl.daemon.warehouse.api import WarehouseUnavailable
from filedrop_etl.daemon.warehouse.postgresql import connection
from filedrop_etl.daemon.warehouse.postgresql.faults import fault_of, translated
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl
from tests import backends
from tests.conftest import (
    DaemonProcess,
    Daemons,
    day_table,
    drop,
    settings_under,
    wait_until,
    write_parquet,
)
from tests.http_client import request, url_of
from tests.tcp_proxy import TcpProxy

# The slow tier: waits out network timeouts and outages.
pytestmark = pytest.mark.slow

# Short enough for the tests, long enough for a busy machine's round trips.
NETWORK_TIMEOUT = "2"


def dropped(tmp_path: Path, inbox: Path, run_date: str) -> str:
    """Drop a small file of `run_date` into `inbox`; its name."""
    name = contract.file_name_for(run_date)
    drop(write_parquet(tmp_path / "outbox", day_table(run_date, 10), name), inbox)
    return name


def logged_at(line: dict[str, Any]) -> float:
    """When the daemon wrote a log line, in seconds since the epoch."""
    return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()


def unavailable(retry: dict[str, Any]) -> bool:
    """Whether a `file_retry_scheduled` line names `WarehouseUnavailable` (a claim's
    retry names the fault as its `error_type`, a load's as its `fault`)."""
    return "WarehouseUnavailable" in (retry.get("fault"), retry["error_type"])


def refused(daemon: DaemonProcess, name: str) -> bool:
    """Whether `daemon` scheduled a retry of `name` because its connection was refused."""
    return any("permission denied" in r["reason"]
               for r in daemon.matching("file_retry_scheduled", file=name))


@dataclass(frozen=True)
class Refusable:
    """A database only `role` may connect to, and the server's admin URL."""

    admin: str
    database: str
    role: str
    url: str

    def revoke(self) -> None:
        """Refuse the role's connections, and end the sessions it has."""
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
                sql.Identifier(self.database), sql.Identifier(self.role)))
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = %s", (self.role,))

    def grant(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(self.database), sql.Identifier(self.role)))


@contextmanager
def refusable() -> Iterator[Refusable]:
    """A database and a login role of this test's own (the role owns the schema the
    daemon's tables go in), both dropped after."""
    admin = backends.server_url()
    suffix = secrets.token_hex(5)
    database, role = f"filedrop_o_{suffix}", f"filedrop_r_{suffix}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    parts = urlsplit(admin)
    try:
        in_database = urlunsplit(parts._replace(path="/" + database))
        with psycopg.connect(in_database, autocommit=True) as conn:
            # PUBLIC's CONNECT would let the role in whatever is revoked from it.
            conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(database)))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(role)))
            # With the bookkeeping schema beside it: the role may not create schemas.
            for schema in ("etl", "etl_filedrop"):
                conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                    sql.Identifier(schema), sql.Identifier(role)))
        netloc = f"{role}@{parts.hostname}:{parts.port or 5432}"
        url = urlunsplit(parts._replace(netloc=netloc, path="/" + database,
                                        query="options=" + quote("-csearch_path=etl")))
        yield Refusable(admin, database, role, url)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# --- a connection refused for good, while the daemon runs -----------------------------


def test_a_connection_refused_while_running_is_waited_out_and_the_file_kept(
        tmp_path: Path) -> None:
    """Item 2 and 3 of issue 21: REVOKE CONNECT and the role's sessions ended. The file
    dropped meanwhile waits (not failed at stage `name`), the daemon stays up, and loads
    it by itself once CONNECT is granted again."""
    with refusable() as server:
        settings = settings_under(tmp_path, server.url)
        daemons = Daemons(settings, tmp_path)
        try:
            daemon = daemons.start("--network-timeout-seconds", NETWORK_TIMEOUT,
                                   "--http", "127.0.0.1:0")
            base = url_of(daemon)
            first = dropped(tmp_path, settings.inbox, "2026-09-01")
            daemon.wait_for("file_processed", file=first)
            server.revoke()
            second = dropped(tmp_path, settings.inbox, "2026-09-02")
            # The first attempt may yet meet the ended session's last words; the refused
            # reconnect follows, and so would a failure at stage `name`, had it come.
            wait_until(lambda: refused(daemon, second) or bool(daemon.matching("file_failed"))
                       or daemon.proc.poll() is not None, "a retry saying CONNECT was refused")
            assert daemon.matching("file_failed") == [] and daemon.proc.poll() is None
            assert all(unavailable(r) for r in daemon.matching("file_retry_scheduled"))
            daemon.wait_for("heartbeat_failed")
            # /healthz says why, with the server's words, while the refusal lasts.
            health = request(base + "/healthz")
            assert health.status == 503 and "permission denied" in health.text, health.text
            server.grant()
            daemon.wait_for("file_processed", file=second)
            daemon.wait_for("heartbeat_restored")
            wait_until(lambda: request(base + "/healthz").status == 200, "/healthz ok again")
            assert daemon.matching("file_failed") == []
            assert not daemon.matching("worker_crashed")
            assert daemon.proc.poll() is None, "the daemon exited"
            assert daemon.stop() == 0
        finally:
            daemons.close()


def test_a_refusal_at_start_is_still_final(tmp_path: Path) -> None:
    """Refusing to start on a refused login stays right: exit 2 with the server's words."""
    with refusable() as server:
        server.revoke()
        settings = settings_under(tmp_path, server.url)
        daemons = Daemons(settings, tmp_path)
        try:
            daemon = daemons.start(wait_started=False)
            assert daemon.proc.wait(timeout=30) == 2
            [refused] = daemon.matching("database_unavailable")
            assert "permission denied for database" in refused["reason"]
        finally:
            daemons.close()


# --- a host the resolver does not know --------------------------------------------------


def test_an_unknown_host_is_a_typo_at_start_and_a_silent_name_server_is_waited_for(
        tmp_path: Path) -> None:
    """Item 17: psycopg resolves the name itself ("failed to resolve host"). A name the
    resolver says does not exist is refused at start (exit 2); a resolver that does not
    answer now is the environment's, waited for."""
    host = "no-such-host.invalid"  # RFC 6761: never resolves
    try:
        socket.getaddrinfo(host, 5432)
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            pytest.skip(f"this machine's resolver does not say NXDOMAIN here: {exc}")
    settings = settings_under(tmp_path, f"postgresql://etl@{host}:5432/warehouse")
    daemons = Daemons(settings, tmp_path)
    try:
        daemon = daemons.start(wait_started=False)
        assert daemon.proc.wait(timeout=30) == 2
        [refused] = daemon.matching("database_unavailable")
        assert "failed to resolve host" in refused["reason"], refused
    finally:
        daemons.close()
    later = psycopg.OperationalError(
        f"failed to resolve host '{host}': [Errno -3] Temporary failure in name resolution")
    assert isinstance(fault_of(later), WarehouseUnavailable)
    libpq = psycopg.OperationalError(
        f'could not translate host name "{host}" to address: Name or service not known')
    assert fault_of(libpq) is None


# --- every connection's timeouts ---------------------------------------------------------


def test_every_connection_keeps_tcp_keepalives_a_user_timeout_and_the_statement_timeout(
        pg_url: str) -> None:
    url = PostgresUrl(pg_url, network_timeout_seconds=6.0, statement_timeout_seconds=7.5)
    conn = connection.connect(url, 5.0)
    try:
        with socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 6000
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 2
        assert conn.execute("SHOW statement_timeout").fetchone() == ("7500ms",)
    finally:
        conn.close()
    # Off by default: a large load may rightly take minutes.
    plain = connection.connect(PostgresUrl(pg_url), 5.0)
    try:
        assert plain.execute("SHOW statement_timeout").fetchone() == ("0",)
    finally:
        plain.close()


def test_a_statement_longer_than_the_network_timeout_is_waited_on_while_the_server_works(
        pg_url: str) -> None:
    """The server, asked on a second connection, says the session is at work: a long
    merge is never given up for taking long."""
    url = PostgresUrl(pg_url, network_timeout_seconds=1.0)
    conn = connection.connect(url, 5.0)
    try:
        started = time.monotonic()
        assert conn.execute("SELECT pg_sleep(2.5), 1").fetchone() == ("", 1)
        assert time.monotonic() - started >= 2.5
    finally:
        conn.close()


def test_a_black_holed_connection_is_given_up_within_about_the_network_timeout(
        tcp_proxy: TcpProxy, pg_url: str) -> None:
    url = PostgresUrl(tcp_proxy.url(pg_url), network_timeout_seconds=2.0)
    conn = connection.connect(url, 5.0)
    try:
        tcp_proxy.set_mode("blackhole")
        started = time.monotonic()
        with pytest.raises(WarehouseUnavailable, match="did not answer"), translated():
            conn.execute("SELECT 1")
        # Half the timeout's wait, then the second connection's (libpq's 2 s at least).
        assert time.monotonic() - started < 10
        assert conn.closed
    finally:
        conn.close()


# --- a black-holed network, and a stop meanwhile -----------------------------------------


def test_a_black_holed_server_is_logged_within_the_timeout_outlived_and_stops_in_bound(
        tmp_path: Path, tcp_proxy: TcpProxy, pg_url: str) -> None:
    """Item 12: nothing answers, nothing is refused. The file waits with a fault logged
    and the heartbeat says it failed, both within about the network timeout; once the
    network passes again the file loads; a SIGTERM during a black hole ends the daemon
    within a bound."""
    settings = settings_under(tmp_path, tcp_proxy.url(pg_url))
    daemons = Daemons(settings, tmp_path)
    try:
        daemon = daemons.start("--network-timeout-seconds", NETWORK_TIMEOUT)
        daemon.wait_for("file_processed", file=dropped(tmp_path, settings.inbox, "2026-09-01"))
        tcp_proxy.set_mode("blackhole")
        second = dropped(tmp_path, settings.inbox, "2026-09-02")
        [retry, *_] = daemon.wait_for("file_retry_scheduled", file=second)
        [detected] = daemon.matching("file_detected", file=second)
        # By the daemon's own clock, from its finding the file: a test process the machine
        # has kept waiting does not count.
        noticed = logged_at(retry) - logged_at(detected)
        assert unavailable(retry), retry
        daemon.wait_for("heartbeat_failed")
        # 2 s without an answer, 2 s for the second connection's, a busy machine.
        assert noticed < 12, f"the black hole was noticed after {noticed:.1f} s"
        tcp_proxy.set_mode("pass")
        daemon.wait_for("file_processed", file=second)
        daemon.wait_for("heartbeat_restored")

        tcp_proxy.set_mode("blackhole")
        third = dropped(tmp_path, settings.inbox, "2026-09-03")
        daemon.wait_for("file_claimed", file=third)
        stopping = time.monotonic()
        assert daemon.stop(signal.SIGTERM, timeout=30) == 0
        took = time.monotonic() - stopping
        assert took < 15, f"SIGTERM took {took:.1f} s"
        assert daemon.matching("daemon_stopped")
    finally:
        daemons.close()


# --- a session left dead by an outage ----------------------------------------------------


def test_after_an_outage_the_first_file_loads_at_once_on_a_new_session(
        tmp_path: Path, tcp_proxy: TcpProxy, pg_url: str) -> None:
    """Item 13: every connection was cut and new ones refused for a while. The worker's
    session died with them; the file dropped once the server is back loads on a new
    session at once, not after a failed attempt and a backoff step."""
    settings = settings_under(tmp_path, tcp_proxy.url(pg_url))
    daemons = Daemons(settings, tmp_path)
    try:
        daemon = daemons.start("--network-timeout-seconds", NETWORK_TIMEOUT)
        daemon.wait_for("file_processed", file=dropped(tmp_path, settings.inbox, "2026-09-01"))
        tcp_proxy.set_mode("refuse")
        tcp_proxy.cut()
        daemon.wait_for("heartbeat_failed")
        tcp_proxy.set_mode("pass")
        daemon.wait_for("heartbeat_restored")
        second = dropped(tmp_path, settings.inbox, "2026-09-02")
        daemon.wait_for("file_processed", file=second)
        assert daemon.matching("file_retry_scheduled") == []
        assert daemon.stop() == 0
    finally:
        daemons.close()


def test_a_suspected_session_is_checked_and_replaced_before_use(
        tcp_proxy: TcpProxy, pg_url: str) -> None:
    """`Session.suspect` (the server was out of reach since the last use): one round
    trip before the next use, and a new session if it does not answer, even where the
    old one's socket shows nothing (its server gone silently)."""
    url = PostgresUrl(tcp_proxy.url(pg_url), network_timeout_seconds=2.0)
    session = connection.Session(url, 5.0, connection.connect(url, 5.0))
    try:
        old = session.conn
        tcp_proxy.set_mode("blackhole")
        tcp_proxy.set_mode("pass")  # the black-holed connection is closed as it leaves
        wait_until(lambda: bool(select.select([old.fileno()], [], [], 0)[0]),
                   "the proxy's close to reach the session's socket")
        assert session.conn is not old  # closed by the proxy: seen without a round trip
        quiet = session.conn
        session.suspect()
        assert session.conn is quiet  # it answers: kept
        assert quiet.execute("SELECT 1").fetchone() == (1,)
    finally:
        session.close()


def test_a_session_that_connected_once_waits_out_a_refusal(pg_url: str) -> None:
    """The same refusal is final for the start's first connection and a fault to wait
    out for a session that connected before (the daemon runs)."""
    url = PostgresUrl(pg_url)
    session = connection.Session(url, 5.0)
    session.conn.close()
    gone = PostgresUrl(urlunsplit(urlsplit(pg_url)._replace(
        path="/no_such_db_" + secrets.token_hex(4))))
    session.url = gone
    with pytest.raises(WarehouseUnavailable, match="does not exist") as caught:
        _ = session.conn
    assert "retries until access is restored" in str(caught.value.hint)
    first = connection.Session(gone, 5.0)
    with pytest.raises(DatabaseUnavailable, match="does not exist"), translated("check"):
        _ = first.conn
