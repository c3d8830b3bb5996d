"""The commands that `status`, `show`, `retry` and the status page suggest, run as copied.

Guards issue 24's audit: a `retry` copied from the page or from `status` and run from
another folder said "refused ... is not in failed/", when there was no database nor
failed/ there at all; `status` without a database said "failed 0 waiting for a retry"
of a failed/ that does not exist. Each suggested command carries the options that find
the same daemon from any folder (`config.invocation`), and is run here as a shell would
run it, from another folder, by the real program.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from filedrop_etl.config import Settings, load_settings
from filedrop_etl.config.invocation import CommandLine, command_line, options
from filedrop_etl.daemon.app import cli
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.ops import page
from filedrop_etl.daemon.warehouse import registry
from tests.conftest import day_table, replaced_at, write_parquet
from tests.test_commands import restored_logging, where
from tools.bench.page import Quiet

__all__ = ["restored_logging"]  # the autouse fixture, imported to apply here too

SCRIPT = Path(sys.executable).with_name("filedrop-etl")
NAME = "transactions_2026-03-01.parquet"


@pytest.fixture(autouse=True)
def _no_etl_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands run here read the settings as the tests give them, no stray variable."""
    for name in list(os.environ):
        if name.startswith("ETL_"):
            monkeypatch.delenv(name)


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any `ETL_` variable, and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
    return {**env, **extra}


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def _copied(command: str) -> list[str]:
    """A suggested command as a shell splits it, run by this checkout's program."""
    words = shlex.split(command)
    assert words[0] == "filedrop-etl", command
    return [str(SCRIPT), *words[1:]]


def _failed_once(srv: Path, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """A daemon run once in `srv` with `argv`, on an inbox holding one file that fails;
    its `file_failed` line."""
    inbox = srv / "inbox"
    inbox.mkdir(parents=True)
    (inbox / NAME).write_bytes(b"not parquet")
    done = _run([str(SCRIPT), "run", "--once", *argv], srv, env)
    assert done.returncode == 1, done.stderr  # 1: a file failed
    assert (srv / "failed" / NAME).exists()
    lines: list[dict[str, Any]] = [json.loads(x) for x in done.stdout.splitlines()]
    [failed] = [line for line in lines if line["event"] == "file_failed"]
    return failed


def _retried_from_elsewhere(command: str, elsewhere: Path, srv: Path) -> None:
    """`command` run from a folder holding nothing of the daemon's, without ETL_ variables:
    it finds the daemon's failed/ and database, and sends the file back."""
    done = _run([*_copied(command), "--json"], elsewhere, _clean_env())
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    [result] = json.loads(done.stdout)
    assert (result["failed_as"], result["outcome"]) == (NAME, "retried")
    assert (srv / "inbox" / NAME).exists() and not (srv / "failed" / NAME).exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # created nothing there


@pytest.mark.slow  # processes
def test_the_retry_status_suggests_runs_from_another_folder(tmp_path: Path) -> None:
    srv, elsewhere = tmp_path / "srv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = srv / "etl.toml"
    srv.mkdir()
    config.write_text("".join(f'{name} = "{srv / path}"\n' for name, path in (
        ("inbox", "inbox"), ("processed", "processed"), ("failed", "failed"),
        ("db", "etl.db"))), encoding="utf-8")
    env = _clean_env()
    logged = _failed_once(srv, ["--config", "etl.toml"], env)

    done = _run([str(SCRIPT), "status", "--config", "etl.toml"], srv, env)
    assert done.returncode == 1, done.stderr
    fixed = f"filedrop-etl retry --config {config} {NAME}"
    steps = dict(re.split(r"\s{2,}", x, maxsplit=1) for x in done.stdout.splitlines()[-3:])
    assert steps == {"the whole story": f"filedrop-etl show --config {config} {NAME}",
                     "once the cause is fixed": fixed,
                     "or every failed file": f"filedrop-etl retry --all --config {config}"}
    document = json.loads(_run([str(SCRIPT), "status", "--config", "etl.toml", "--json"],
                               srv, env).stdout)
    [failed] = document["failed"]["files"]
    assert failed["retry"] == fixed
    assert failed["show"] == f"filedrop-etl show --config {config} {NAME}"
    # The daemon's own line for the failure says it too (journalctl, a log search).
    assert logged["retry"] == fixed

    # `show`, copied from status, tells the whole story from elsewhere, with the same retry.
    shown = _run(_copied(failed["show"]), elsewhere, _clean_env())
    assert shown.returncode == 0, shown.stderr
    assert f"retry      `{fixed}` sends it back as {NAME}" in shown.stdout

    # The status page of that daemon suggests the same command.
    settings = registry.place(load_settings(config_file=config, environ={}))
    status_page = page.source(settings, Quiet(), "t")
    try:
        assert f"<code>{fixed}</code>" in status_page()
    finally:
        status_page.close()

    _retried_from_elsewhere(fixed, elsewhere, srv)


@pytest.mark.slow  # processes
def test_a_daemon_set_by_etl_variables_is_suggested_by_the_equivalent_flags(
        tmp_path: Path) -> None:
    srv, elsewhere = tmp_path / "srv", tmp_path / "elsewhere"
    srv.mkdir()
    elsewhere.mkdir()
    # Relative, as the variables of a unit's Environment= often are: the working folder's.
    env = _clean_env(ETL_DB="etl.db", ETL_INBOX="inbox", ETL_FAILED="failed",
                     ETL_PROCESSED="processed")
    logged = _failed_once(srv, [], env)
    document = json.loads(_run([str(SCRIPT), "status", "--json"], srv, env).stdout)
    [failed] = document["failed"]["files"]
    command = failed["retry"]
    assert command.startswith(f"filedrop-etl retry --db {srv / 'etl.db'} --inbox {srv / 'inbox'}")
    assert command.endswith(f" {NAME}") and "ETL_" not in command
    assert logged["retry"] == command
    _retried_from_elsewhere(command, elsewhere, srv)


def test_retry_where_there_is_no_database_says_so_as_status_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """It said "refused: ... is not in failed/", sending the operator to look in a failed/
    that was not the daemon's."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["status"]) == 2
    [said] = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    for argv in (["retry", NAME], ["retry", "--all"], ["retry", "--all", "--dry-run"]):
        assert cli.main(argv) == 2
        out, err = capsys.readouterr()
        [line] = [json.loads(x) for x in err.splitlines()]
        assert out == ""
        assert {k: line[k] for k in ("event", "db", "reason", "hint")} == {
            k: said[k] for k in ("event", "db", "reason", "hint")}
        assert line["reason"].startswith(f"there is no database at {tmp_path / 'etl.db'} yet")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_status_never_counts_the_files_of_a_folder_that_is_not_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """It printed `failed 0 waiting for a retry (.../failed)` of a failed/ that did not
    exist, as the README promises it never does."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["status", "--db", "etl.db"]) == 2
    lines = dict(x.split(None, 1) for x in capsys.readouterr().out.splitlines())
    # Each with the rule that gave its path (`config.paths.shown`, as every message has it).
    assert lines["inbox"] == (f"{tmp_path / 'inbox'} (inbox from the default, relative to the "
                              f"working folder {tmp_path}) does not exist: nothing can wait "
                              "there")
    assert lines["failed"] == (f"{tmp_path / 'failed'} (failed by default beside the inbox) "
                               "does not exist: no file can wait there for a retry")
    assert cli.main(["status", "--db", "etl.db", "--json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["inbox"] == {"path": str(tmp_path / "inbox"), "exists": False,
                                 "waiting": None, "in_flight": None,
                                 "work": str(tmp_path / ".inbox.work"), "work_exists": False}
    assert {k: document["failed"][k] for k in ("path", "exists", "files")} == {
        "path": str(tmp_path / "failed"), "exists": False, "files": []}

    # The inbox there, its work directory not yet: what waits is counted, not what is in flight.
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / NAME).write_bytes(b"x")
    (tmp_path / "failed").mkdir()
    assert cli.main(["status", "--db", "etl.db", "--inbox", "inbox"]) == 2
    lines = dict(x.split(None, 1) for x in capsys.readouterr().out.splitlines())
    assert lines["inbox"] == (f"1 waiting, none in flight: the work directory "
                              f"{tmp_path / '.inbox.work'} (work by default beside the inbox) "
                              f"does not exist ({tmp_path / 'inbox'})")
    assert lines["failed"] == f"0 waiting for a retry ({tmp_path / 'failed'})"


def _options(tmp_path: Path, overrides: Mapping[str, object] | None = None,
              env: dict[str, str] | None = None, config: Path | None = None) -> list[str]:
    settings = load_settings(overrides, config_file=config, environ=env or {})
    return options(registry.place(settings))


def test_the_options_follow_where_each_setting_came_from(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    srv = tmp_path / "srv"
    # The defaults, in the working folder: the database, the rest recorded by the daemon.
    assert _options(tmp_path) == ["--db", str(tmp_path / "etl.db")]
    # Flags and variables alike, made absolute; a folder the others give is left out.
    flags = {"db": "srv/etl.db", "inbox": "srv/in", "work": "srv/.in.work"}
    assert _options(tmp_path, flags) == ["--db", str(srv / "etl.db"), "--inbox",
                                          str(srv / "in")]
    assert _options(tmp_path, env={"ETL_DB": "srv/etl.db", "ETL_INBOX": "srv/in",
                                    "ETL_FAILED": "srv/bad", "ETL_NODE": "n1"}) == [
        "--db", str(srv / "etl.db"), "--inbox", str(srv / "in"), "--failed",
        str(srv / "bad"), "--node", "n1"]
    # A config file says it all, but what a flag or a variable set over it.
    config = tmp_path / "etl.toml"
    config.write_text(f'db = "{srv / "etl.db"}"\ninbox = "{srv / "in"}"\n', encoding="utf-8")
    assert _options(tmp_path, config=config) == ["--config", str(config)]
    assert _options(tmp_path, {"failed": "elsewhere"}, config=config) == [
        "--config", str(config), "--failed", str(tmp_path / "elsewhere")]
    assert _options(tmp_path, env={"ETL_CONFIG": str(config), "ETL_DB": "other.db"}) == [
        "--config", str(config), "--db", str(tmp_path / "other.db")]


def test_a_servers_password_is_never_written_into_a_suggested_command(tmp_path: Path) -> None:
    url = "postgresql://etl:s3cret@db.example:5432/etl"
    written = _options(tmp_path, {"db": url, "inbox": tmp_path / "inbox"})
    assert written[:2] == ["--db", "postgresql://etl:***@db.example:5432/etl"]
    assert "s3cret" not in " ".join(written)


def test_each_word_is_quoted_as_a_shell_reads_it() -> None:
    line = CommandLine("filedrop-etl", ("--db", "/srv/my data/etl.db"))
    assert line("retry", files=["transactions_2026-03-01~1.parquet"]) == (
        "filedrop-etl retry --db '/srv/my data/etl.db' transactions_2026-03-01~1.parquet")
    hostile = ["-x.parquet", "$(rm -rf ~).parquet", "~1.parquet"]
    written = line("retry", files=hostile)
    assert shlex.split(written) == ["filedrop-etl", "retry", "--db", "/srv/my data/etl.db",
                                    "--", *hostile]
    assert command_line(registry.place(load_settings({"db": "/srv/etl.db"}, environ={})),
                        "python -m filedrop_etl")("status") == (
        "python -m filedrop_etl status --db /srv/etl.db")


def _suggested(text: str) -> list[str]:
    """The commands a message suggests: its backticked spans."""
    return re.findall(r"`([^`]+)`", text)


def _all_find_the_daemon(text: str, db: Path) -> None:
    """Every command `text` suggests is the program's, with the options that find the
    daemon of the database `db` from any folder; there is at least one."""
    commands = _suggested(text)
    assert commands, text
    for command in commands:
        assert command.startswith("filedrop-etl ") and f" --db {db} " in command, (command, text)


def test_every_command_a_message_suggests_finds_the_daemon_from_any_folder(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 24, item 4: the extra line `status` prints under a misnamed file, `show`'s
    "instead", `retry`'s hints for a misnamed, a superseded and a taken name, `dismiss`'s
    refusals and the name failure's sidecar suggested bare commands (`retry X --as Y`)
    that run from the daemon's folder only."""
    day, later, misnamed = "2026-03-05", "2026-03-06", "Transactions_2026-03-07.parquet"
    name, other = f"transactions_{day}.parquet", f"transactions_{later}.parquet"
    bad = replaced_at(day_table(day), "amount", 0, -5.0)
    for table_, file in ((day_table("2026-03-07"), misnamed), (bad, name),
                         (day_table(day), name), (bad, other)):
        pipeline.process(write_parquet(settings.work, table_, file))
    capsys.readouterr()
    db = settings.db_file
    assert db is not None
    sidecar = json.loads((settings.failed / f"{misnamed}.error.json").read_text())
    _all_find_the_daemon(sidecar["hint"], db)

    def run(*argv: str) -> tuple[str, str]:
        cli.main([*argv, *where(settings)])
        return capsys.readouterr()

    status = run("status")[0]
    [line] = [x for x in status.splitlines() if x.startswith(f"{misnamed} cannot be retried")]
    _all_find_the_daemon(line, db)
    _all_find_the_daemon(run("show", misnamed)[0].split("\ninstead")[1], db)
    _all_find_the_daemon(run("show", name)[0].split("\ninstead")[1], db)
    (settings.inbox / other).write_bytes(b"waiting")
    for asked in ([misnamed], [name], [other], ["nothing.parquet"]):
        [result] = json.loads(run("retry", *asked, "--json")[0])
        _all_find_the_daemon(result["hint"], db)
    for asked in ([other], ["nothing.parquet"]):
        [result] = json.loads(run("dismiss", *asked, "--json")[0])
        _all_find_the_daemon(result["hint"], db)
    [usage] = [json.loads(x) for x in run("retry", name, other, "--as", name)[1].splitlines()]
    _all_find_the_daemon(usage["hint"], db)
