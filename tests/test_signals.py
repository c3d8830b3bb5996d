"""Signals sent to the running daemon from outside, as an operator or a stray `kill` would.

Guards a found bug: SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT and SIGALRM ended the daemon without
a log line (and systemd counts a SIGHUP death as clean, so it did not restart it). Each
runs against a real daemon process; the stop signals (SIGTERM, SIGINT) have their own
tests beside the shutdown under load (`test_environment.py`).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from filedrop_etl.config import contract
from tests.conftest import DaemonProcess, day_table, drop, write_parquet

Start = Callable[..., DaemonProcess]
# No event and no periodic rescan will find a drop: only what a signal makes the daemon do.
DEAF = ("--observer", "polling", "--poll-seconds", "3600", "--rescan-seconds", "3600")


def prepared(tmp_path: Path, day: str) -> Path:
    return write_parquet(tmp_path / "outbox", day_table(day), run_date=day)


def loads_next(daemon: DaemonProcess, tmp_path: Path, day: str) -> None:
    """Alive, and loads a file dropped now (found by its event)."""
    drop(prepared(tmp_path, day), daemon.settings.inbox)
    daemon.wait_for("file_processed", file=contract.file_name_for(day))
    assert daemon.proc.poll() is None


def test_sighup_rescans_the_inbox_now_and_the_daemon_goes_on(
        tmp_path: Path, start_daemon: Start) -> None:
    daemon = start_daemon(*DEAF)
    drop(prepared(tmp_path, "2026-02-10"), daemon.settings.inbox)
    daemon.proc.send_signal(signal.SIGHUP)
    [line] = daemon.wait_for("signal_received")
    assert (line["signal"], line["action"], line["level"]) == ("SIGHUP", "rescan", "info")
    assert "restart" in line["hint"]
    daemon.wait_for("inbox_rescanned", reason="signal", found=1)
    daemon.wait_for("file_processed", file="transactions_2026-02-10.parquet")
    assert daemon.matching("file_detected", found_by="rescan")
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_sigusr1_logs_what_the_daemon_is_doing(tmp_path: Path, start_daemon: Start) -> None:
    daemon = start_daemon()
    loads_next(daemon, tmp_path, "2026-02-10")
    daemon.proc.send_signal(signal.SIGUSR1)
    [line] = daemon.wait_for("daemon_status")
    assert line["signal"] == "SIGUSR1" and line["file"] is None
    assert line["queue_depth"] == 0 and line["problems"] == []
    assert line["outcomes"]["processed"] == 1
    loads_next(daemon, tmp_path, "2026-02-11")
    assert daemon.stop() == 0


@pytest.mark.parametrize("sig", ["SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO",
                                 "SIGPWR"])
def test_a_signal_the_daemon_has_no_use_for_is_logged_and_ignored(
        tmp_path: Path, start_daemon: Start, sig: str) -> None:
    daemon = start_daemon()
    daemon.proc.send_signal(getattr(signal, sig))
    [line] = daemon.wait_for("signal_ignored")
    assert (line["signal"], line["level"]) == (sig, "warning") and line["hint"]
    loads_next(daemon, tmp_path, "2026-02-10")
    assert daemon.stop() == 0


def test_sigquit_says_where_each_thread_is_and_exits_at_once_non_zero(
        start_daemon: Start) -> None:
    daemon = start_daemon()
    daemon.proc.send_signal(signal.SIGQUIT)
    assert daemon.proc.wait(timeout=30) == 128 + signal.SIGQUIT
    [stopping] = daemon.matching("daemon_stopping")
    assert stopping["reason"] == "SIGQUIT" and "etl-worker" in stopping["threads"]
    assert any("watcher.py" in frame for frame in stopping["threads"]["etl-worker"])
    assert daemon.events()[-1]["event"] == "daemon_stopped"
    assert daemon.matching("daemon_stopped", reason="SIGQUIT")
