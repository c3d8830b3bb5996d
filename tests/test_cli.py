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

from filedrop_etl.config import Settings
from filedrop_etl.daemon.app import cli
from tests.conftest import ROOT, DaemonProcess, day_table, drop, write_parquet

# The slow tier: runs the console script as a process.
pytestmark = pytest.mark.slow

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
    parser = cli.build_parser()
    assert cli._placed(argv, parser) == (["run", *argv], None)
    assert cli._placed(["run", *argv], parser) == (["run", *argv], None)
    assert cli._placed(["--help"], parser) == (["--help"], None)


def test_options_may_stand_before_the_command(settings: Settings) -> None:
    """`--db X status` ran the daemon's parser, which called `status` the stray word."""
    parser = cli.build_parser()
    assert cli._placed(["--db", "x.db", "status"], parser) == (["status", "--db", "x.db"], None)
    assert cli._placed(["--db=x.db", "--proc", "p", "history", "--limit", "3"], parser) \
        == (["history", "--db=x.db", "--proc", "p", "--limit", "3"], None)
    # A command's name as an option's value is that value: the daemon runs.
    assert cli._placed(["--inbox", "status"], parser) == (["run", "--inbox", "status"], None)
    done = run_script("--db", str(settings.db), "--inbox", str(settings.inbox), "status",
                      "--json")
    assert done.returncode == 2  # no database there yet, as status reports
    assert json.loads(done.stdout)["database"]["path"] == str(settings.db)


def test_a_mistyped_command_is_called_unknown_with_the_commands_there_are() -> None:
    done = run_script("stats")
    assert (done.returncode, done.stdout) == (2, "")
    [line] = [json.loads(text) for text in done.stderr.splitlines()]
    assert line["event"] == "usage_error"
    assert line["reason"] == ("unknown command 'stats' (choose from run, status, history, "
                              "show, retry, dismiss, report, feeds, migrate)")
    assert line["hint"] == "did you mean `filedrop-etl status`? see filedrop-etl --help"


@pytest.mark.parametrize(("argv", "reason", "hint"), [
    # `X` is the value of the mistyped option, not a command.
    (["--da", "X", "status"], "unknown option '--da'",
     "did you mean `--db`? see filedrop-etl --help"),
    (["--proccessed", "p"], "unknown option '--proccessed'",
     "did you mean `--processed`? see filedrop-etl --help"),
    (["status", "--proccessed", "p"], "unrecognized arguments: --proccessed p",
     "did you mean `--processed`? see filedrop-etl status --help"),
    (["run", "--settle-secs=2"], "unrecognized arguments: --settle-secs=2",
     "did you mean `--settle-seconds`? see filedrop-etl run --help"),
])
def test_a_mistyped_option_is_named_with_the_option_meant(
        argv: list[str], reason: str, hint: str) -> None:
    """Guards found gaps: `--da X status` was reported as an unknown command `X`, and a
    misspelt option got no suggestion."""
    done = run_script(*argv)
    assert done.returncode == 2
    # On stdout for the daemon (its log), on stderr for a command (stdout is its output).
    [line] = [json.loads(text) for text in (done.stdout + done.stderr).splitlines()]
    assert (line["event"], line["reason"], line["hint"]) == ("usage_error", reason, hint)


@pytest.mark.parametrize("option", ["--bogus", "--once"])
def test_an_unknown_option_of_a_command_points_at_that_commands_help(option: str) -> None:
    done = run_script("status", option)
    assert done.returncode == 2
    [line] = [json.loads(text) for text in done.stderr.splitlines()]
    assert line["reason"] == f"unrecognized arguments: {option}"
    assert line["hint"] == "see filedrop-etl status --help"


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


def test_every_help_text_names_both_warehouses() -> None:
    """`--help` said the files are loaded "into SQLite" well after PostgreSQL could take
    them (issue 24): no help text names one backend as if it were the only one."""
    parser = cli.build_parser()
    texts = [parser.format_help(), *(c.format_help() for c in cli._commands(parser).values())]
    flat = [" ".join(text.split()) for text in texts]
    assert not [text for text in flat if "into SQLite" in text
                and "into SQLite or PostgreSQL" not in text]
    assert "into SQLite or PostgreSQL" in flat[0]
    run = " ".join(cli._commands(parser)["run"].format_help().split())
    assert "Relative paths in a config file are relative to its folder" in run
