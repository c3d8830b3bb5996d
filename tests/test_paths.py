"""Which folder a relative path is taken from, and how a message says so (`config.paths`).

Guards found bugs (issue 24): with `--config <folder>/etl.toml` holding `db = "data/etl.db"`
the data went under the daemon's working folder, and `status --config etl.toml` from the
file's own folder found no database; with only `--inbox srv/inbx --db srv/etl.db`,
processed/ and failed/ were made in the working folder; `ETL_INBX=<real inbox>` was one
warning line, and the daemon made and watched ./inbox.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from filedrop_etl.config import ConfigError
from filedrop_etl.config.paths import origin, shown
from filedrop_etl.daemon.app import cli
from tests.backends import load_settings

SCRIPT = Path(sys.executable).with_name("filedrop-etl")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def server(tmp_path: Path) -> Path:
    """A config file with relative paths, in a folder of its own: /srv/etl/etl.toml."""
    return write(tmp_path / "srv" / "etl" / "etl.toml",
                 'inbox = "inbox"\ndb = "data/etl.db"\nfailed = "../quarantine"\n')


def test_a_config_files_relative_paths_are_taken_from_its_folder(
        server: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # anywhere but the file's folder
    folder = server.parent
    s = load_settings(config_file=server, environ={})
    assert (s.inbox, s.db_file) == (folder / "inbox", folder / "data" / "etl.db")
    assert s.failed == tmp_path / "srv" / "quarantine"  # `..` folded
    assert s.processed == folder / "processed"  # beside the inbox
    assert s.work == folder / ".inbox.work"
    assert shown(s, "db") == f"{folder / 'data' / 'etl.db'} (db from config file {server}, " \
        "relative to its folder)"
    assert origin(s, "processed") == "processed by default beside the inbox"
    # A flag's or a variable's relative path is the working folder's, as before.
    s = load_settings({"db": "flagged.db"}, config_file=server, environ={"ETL_INBOX": "drop"})
    assert (s.inbox, s.db_file) == (tmp_path / "drop", tmp_path / "flagged.db")
    assert s.processed == tmp_path / "processed"
    assert origin(s, "db") == f"db from --db, relative to the working folder {tmp_path}"
    assert origin(s, "inbox") == f"inbox from ETL_INBOX, relative to the working folder " \
        f"{tmp_path}"
    absolute = load_settings({"db": str(tmp_path / "x.db")}, config_file=server, environ={})
    assert origin(absolute, "db") == "db from --db"


@pytest.mark.parametrize("url", ["postgresql://etl@db.example:5432/warehouse",
                                 "postgres://etl@db.example/warehouse"])
def test_a_url_in_a_config_file_is_left_as_written(tmp_path: Path, url: str) -> None:
    config = write(tmp_path / "conf" / "etl.toml", f'db = "{url}"\n')
    settings = load_settings(config_file=config, environ={})
    assert settings.db == url and "db" not in settings.bases


def test_processed_and_failed_default_beside_the_inbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--inbox srv/inbx --db srv/etl.db` made processed/ and failed/ in the working folder."""
    monkeypatch.chdir(tmp_path)
    s = load_settings({"inbox": "srv/inbx", "db": "srv/etl.db"}, environ={})
    assert (s.processed, s.failed) == (tmp_path / "srv" / "processed", tmp_path / "srv" / "failed")
    assert s.work == tmp_path / "srv" / ".inbx.work"
    assert (s.sources["processed"], s.sources["failed"]) == ("default", "default")


@pytest.mark.parametrize(("variable", "meant"), [
    ("ETL_INBX", "ETL_INBOX"), ("ETL_DATABASE", "ETL_DB"), ("ETL_SETTLE", "ETL_SETTLE_SECONDS"),
    ("ETL_CONFIG_", "ETL_CONFIG")])
def test_a_variable_like_a_settings_is_refused(tmp_path: Path, variable: str,
                                               meant: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={variable: str(tmp_path / "inbox")})
    assert f"environment variable {variable} (did you mean {meant}?) names no setting" \
        == refused.value.message
    assert "foreign_variables" in refused.value.hint
    assert refused.value.problems == ({"where": f"environment variable {variable}",
                                       "problem": "names no setting", "instead": meant},)


def test_a_foreign_variable_listed_is_neither_refused_nor_warned_of(tmp_path: Path) -> None:
    config = write(tmp_path / "etl.toml", 'foreign_variables = ["ETL_INBOX_OWNER"]\n')
    env = {"ETL_INBOX_OWNER": "alice", "ETL_FOO": "1"}
    s = load_settings(config_file=config, environ=env)
    assert s.foreign_variables == ("ETL_INBOX_OWNER",)
    assert dict(s.unknown_variables) == {"ETL_FOO": None}
    s = load_settings(environ={**env, "ETL_FOREIGN_VARIABLES": "ETL_INBOX_OWNER, ETL_X"})
    assert dict(s.unknown_variables) == {"ETL_FOO": None}
    with pytest.raises(ConfigError, match="expected ETL_ variable names, not INBOX_OWNER"):
        load_settings(environ={"ETL_FOREIGN_VARIABLES": "INBOX_OWNER"})


@pytest.mark.parametrize("command", ["run", "status", "history"])
def test_every_command_refuses_a_variable_like_a_settings(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`status` too: with ETL_INBX it would count the wrong inbox's files."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ETL_INBX", str(tmp_path / "real-inbox"))
    # `--once`: a daemon that would run, as before, drains the empty inbox and ends.
    once = ["--once"] if command == "run" else []
    assert cli.main([command, "--db", str(tmp_path / "etl.db"), *once]) == 2
    captured = capsys.readouterr()
    [line] = [json.loads(x) for x in (captured.out + captured.err).splitlines()]
    assert line["event"] == "config_invalid"
    assert "ETL_INBX (did you mean ETL_INBOX?)" in line["reason"]
    assert list(tmp_path.iterdir()) == []  # no ./inbox, no database, no lock


def cli_in(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real console script run from `cwd`, configured by `argv` alone."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([str(SCRIPT), *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.slow  # processes
def test_status_with_the_daemons_config_finds_its_database_from_any_folder(
        server: Path, tmp_path: Path) -> None:
    """The hint "give this command the same --db, ETL_DB or --config as the daemon" is
    true: the daemon started elsewhere and `status` from the file's folder and from a
    third folder all use the database beside the file."""
    started_in, elsewhere = tmp_path / "home", tmp_path / "cron"
    started_in.mkdir()
    elsewhere.mkdir()
    done = cli_in(started_in, "run", "--config", str(server), "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    database = server.parent / "data" / "etl.db"
    assert database.is_file() and list(started_in.iterdir()) == []
    for cwd, config in ((server.parent, "etl.toml"), (elsewhere, str(server))):
        status = cli_in(cwd, "status", "--config", config)
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"{database}" in status.stdout and "none yet" not in status.stdout
    missing = cli_in(started_in, "status", "--config", str(server), "--db", "other.db")
    assert missing.returncode == 2
    [line] = [json.loads(x) for x in missing.stderr.splitlines()]
    assert line["reason"] == f"there is no database at {started_in / 'other.db'} yet " \
        f"(db from --db, relative to the working folder {started_in})"

