"""A refused start leaves the tree as it found it: no folder, no lock file, no database.

Guards found bugs (issue 24): a second daemon refused for an inbox another daemon used
left processed/, failed/ and a lock file of its own behind; a mistyped inbox was made,
parents and all, and watched while files waited in the real one.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from filedrop_etl.config import Settings
from filedrop_etl.daemon.app import cli
from tests.conftest import DaemonProcess
from tools.harness import process

Start = Callable[..., DaemonProcess]


def tree(root: Path) -> set[str]:
    """Every file and folder under `root`, but the test's own daemon logs."""
    return {str(Path(folder, name).relative_to(root))
            for folder, dirs, names in os.walk(root) for name in dirs + names
            if not name.endswith(".log")}


def refused(cwd: Path, *argv: str) -> tuple[int, list[dict[str, object]]]:
    """A daemon started from `cwd` with `argv` alone that must not run: its exit code and
    log lines (killed at the deadline otherwise)."""
    done = subprocess.run(process.daemon_argv(*argv), cwd=cwd, env=process.clean_environ(),
                          capture_output=True, text=True, timeout=30, check=False)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("database", ["same", "own"])
def test_a_refused_second_daemon_leaves_the_tree_as_it_found_it(
        database: str, settings: Settings, tmp_path: Path, start_daemon: Start) -> None:
    start_daemon()
    elsewhere = tmp_path / "second"
    elsewhere.mkdir()
    before = tree(tmp_path)
    db = str(settings.db) if database == "same" else str(tmp_path / "own" / "etl.db")
    code, lines = refused(elsewhere, "--inbox", str(settings.inbox), "--db", db)
    assert code == 3
    assert [line["event"] for line in lines] == ["daemon_already_running"]
    assert tree(tmp_path) == before


def test_an_inbox_whose_parent_folder_is_missing_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--once", "--inbox", "srv/inbx/in", "--db", "etl.db"]) == 2
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["event"] == "config_invalid"
    assert line["reason"] == f"the inbox {tmp_path / 'srv' / 'inbx' / 'in'} (inbox from " \
        f"--inbox, relative to the working folder {tmp_path}) does not exist, nor does its " \
        f"parent folder {tmp_path / 'srv' / 'inbx'}"
    parent = tmp_path / "srv" / "inbx"
    assert line["hint"].startswith(f"create the parent folder (mkdir -p {parent})")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_whose_path_is_a_file_is_refused_before_anything_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "failed").write_text("a file, not a folder")
    assert cli.main(["run", "--once", "--inbox", "inbox", "--db", "data/etl.db"]) == 2
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["reason"] == f"the failed {tmp_path / 'failed'} (failed by default beside " \
        "the inbox) is not a folder"
    assert [p.name for p in tmp_path.iterdir()] == ["failed"]
