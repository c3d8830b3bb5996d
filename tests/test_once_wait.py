"""`run --once` waits a bounded time for a database out of reach (issue 24, item 7).

A cron job's `run --once` against a PostgreSQL server that refused or never answered
retried for ever, so the job hung and the next ones piled up behind it. It now gives up
after `once_wait_seconds` with exit code 75 (EX_TEMPFAIL: try again later) and a
`once_gave_up` line saying what it waited for and what to do; an outage shorter than
the wait is waited out as before, and the daemon without `--once` keeps waiting. The
daemons are real processes; a port nothing listens on refuses, `tests.tcp_proxy`
black-holes or refuses for a while.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from filedrop_etl.config.setting_values import DEFAULTS, PARSERS
from tests.conftest import Daemons, day_table, drop, settings_under, write_parquet
from tests.tcp_proxy import TcpProxy

# The slow tier: each test waits out a (short) bound.
pytestmark = pytest.mark.slow

DAY = "2026-11-21"
NAME = f"transactions_{DAY}.parquet"


def unused_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def refused_url() -> str:
    return f"postgresql://etl@127.0.0.1:{unused_port()}/warehouse"


def test_the_setting_defaults_to_a_minute_and_may_be_off() -> None:
    parse = PARSERS["once_wait_seconds"]
    assert parse(DEFAULTS["once_wait_seconds"]) == 60.0
    assert parse("off") is None and parse("2.5") == 2.5
    with pytest.raises(ValueError, match="positive number of seconds"):
        parse("-1")


def test_once_gives_up_on_a_refused_server_with_exit_75(tmp_path: Path) -> None:
    settings = settings_under(tmp_path, refused_url())
    drop(write_parquet(tmp_path / "out", day_table(DAY), NAME), settings.inbox)
    daemons = Daemons(settings, tmp_path)
    try:
        began = time.monotonic()
        daemon = daemons.start("--once", "--once-wait-seconds", "2", wait_started=False)
        assert daemon.proc.wait(timeout=60) == 75
        took = time.monotonic() - began
        [gave_up] = daemon.matching("once_gave_up")
        # The bound, not a retry step more: a last attempt at the deadline, then the end.
        assert 2 <= gave_up["waited_seconds"] < 4, gave_up
        assert took < 30, f"--once took {took:.1f} s to give up on a 2 s bound"
        assert (gave_up["level"], gave_up["waited_for"], gave_up["exit_code"]) == (
            "error", "database_unavailable", 75)
        assert gave_up["once_wait_seconds"] == 2.0 and gave_up["attempts"] >= 2
        assert "Connection refused" in gave_up["reason"]
        assert "check that the server runs" in gave_up["hint"]
        assert "raise once_wait_seconds" in gave_up["hint"]
        waits = daemon.matching("database_unavailable")
        assert waits and all(w["gives_up_in_seconds"] <= 2 for w in waits)
        [stopped] = daemon.matching("daemon_stopped")
        assert stopped["reason"] == "once_gave_up"
        # Nothing was taken: the next run finds the file where the producer left it.
        assert [p.name for p in settings.inbox.iterdir()] == [NAME]
    finally:
        daemons.close()


def test_once_gives_up_on_a_black_holed_server_within_the_bound_and_a_timeout(
        tmp_path: Path) -> None:
    """Nothing answers, nothing is refused: each attempt ends at the network timeout."""
    proxy = TcpProxy(("127.0.0.1", unused_port()))
    try:
        proxy.set_mode("blackhole")
        settings = settings_under(tmp_path, f"postgresql://etl@127.0.0.1:{proxy.port}/warehouse")
        daemons = Daemons(settings, tmp_path)
        try:
            daemon = daemons.start("--once", "--once-wait-seconds", "2",
                                   "--network-timeout-seconds", "2", wait_started=False)
            assert daemon.proc.wait(timeout=60) == 75
            [gave_up] = daemon.matching("once_gave_up")
            # At most the bound and one attempt under way, on a busy machine.
            assert 2 <= gave_up["waited_seconds"] < 8, gave_up
        finally:
            daemons.close()
    finally:
        proxy.close()


def test_the_daemon_without_once_keeps_waiting_past_the_bound(tmp_path: Path) -> None:
    settings = settings_under(tmp_path, refused_url())
    daemons = Daemons(settings, tmp_path)
    try:
        daemon = daemons.start("--once-wait-seconds", "1", wait_started=False)
        # Attempt 3 comes after 1 + 2 s of backoff: past the bound, still waiting.
        [third] = daemon.wait_for("database_unavailable", attempt=3)
        assert "gives_up_in_seconds" not in third
        assert daemon.proc.poll() is None and daemon.matching("once_gave_up") == []
        assert daemon.stop(signal.SIGTERM) == 0
    finally:
        daemons.close()


def test_once_waits_out_an_outage_shorter_than_the_bound(
        tmp_path: Path, tcp_proxy: TcpProxy, pg_url: str) -> None:
    tcp_proxy.set_mode("refuse")
    settings = settings_under(tmp_path, tcp_proxy.url(pg_url))
    drop(write_parquet(tmp_path / "out", day_table(DAY), NAME), settings.inbox)
    daemons = Daemons(settings, tmp_path)
    try:
        daemon = daemons.start("--once", "--once-wait-seconds", "60", wait_started=False)
        daemon.wait_for("database_unavailable")
        tcp_proxy.set_mode("pass")
        assert daemon.proc.wait(timeout=60) == 0
        assert daemon.matching("file_processed", file=NAME)
        assert daemon.matching("once_gave_up") == []
    finally:
        daemons.close()
