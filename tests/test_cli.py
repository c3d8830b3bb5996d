"""The command line: one entry point with subcommands, the old daemon argv unbroken.

The console script is the one `pip install` puts beside the interpreter; the daemon is
run as a real subprocess on real directories.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from config import Settings
from daemon import cli
from tests.conftest import ROOT, DaemonProcess, day_table, drop, write_parquet

Start = Callable[..., DaemonProcess]
SCRIPT = Path(sys.executable).with_name("filedrop-etl")
DAY = "2026-03-01"


def run_script(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_console_script_is_installed_and_lists_its_commands() -> None:
    top = run_script("--help")
    assert top.returncode == 0, top.stderr
    assert top.stdout.startswith("usage: filedrop-etl")
    for command in cli.COMMANDS:
        assert f"    {command} " in top.stdout
    run = run_script("run", "--help")
    assert run.returncode == 0
    for flag in ("--once", "--http HOST:PORT", "--observer {auto,polling}", "--poll-seconds",
                 "--stall-seconds", "--write-mode", "--db PATH"):
        assert flag in run.stdout
    version = run_script("--version")
    assert version.stdout.strip() == "filedrop-etl 0.1.0"


@pytest.mark.parametrize("argv", [[], ["--once"], ["--settle-seconds", "0.1"]])
def test_daemon_options_without_a_command_mean_run(argv: list[str]) -> None:
    """Command lines written before the subcommands existed still run the daemon."""
    assert cli._with_command(argv, cli.COMMANDS) == ["run", *argv]
    assert cli._with_command(["run", *argv], cli.COMMANDS) == ["run", *argv]
    assert cli._with_command(["--help"], cli.COMMANDS) == ["--help"]


@pytest.mark.parametrize("command", [(), ("run",)])
def test_the_script_runs_the_daemon_with_or_without_run(tmp_path: Path, settings: Settings,
                                                        command: tuple[str, ...]) -> None:
    drop(write_parquet(tmp_path / "out", day_table(DAY), f"transactions_{DAY}.parquet"),
         settings.inbox)
    done = run_script(*command, "--once", "--inbox", str(settings.inbox), "--processed",
                      str(settings.processed), "--failed", str(settings.failed),
                      "--db", str(settings.db))
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = [json.loads(text) for text in done.stdout.splitlines()
              if '"file_processed"' in text]
    assert (line["file"], line["rows"]) == (f"transactions_{DAY}.parquet", 25)


def test_the_polling_observer_finds_a_dropped_file_by_its_event(tmp_path: Path,
                                                               start_daemon: Start) -> None:
    """With the safety-net rescan an hour away, only the poller can find the file."""
    daemon = start_daemon("--observer", "polling", "--poll-seconds", "0.2",
                          "--rescan-seconds", "3600")
    [started] = daemon.matching("daemon_started")
    assert (started["observer"], started["poll_seconds"]) == ("polling", 0.2)
    drop(write_parquet(tmp_path / "out", day_table(DAY), f"transactions_{DAY}.parquet"),
         daemon.settings.inbox)
    [line] = daemon.wait_for("file_processed")
    assert line["rows"] == 25
    assert daemon.matching("file_detected", found_by="event")
    assert not daemon.matching("inbox_rescanned")
