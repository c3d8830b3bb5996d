"""The operator's commands on databases and directories filled by real loads.

`cli.main` runs them in-process where the output is the point; the console script runs
them as a subprocess where the process is (exit codes, stderr, a live daemon beside).
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog

from filedrop_etl.config import Settings
from filedrop_etl.daemon import clock
from filedrop_etl.daemon.app import cli
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.ops.commands import feeds, migrate, report, retry, status, table
from filedrop_etl.daemon.ops.commands import history as history_command
from filedrop_etl.daemon.ops.commands import show as show_command
from filedrop_etl.daemon.warehouse.postgresql import schema as pg_schema
from filedrop_etl.daemon.warehouse.sqlite import schema as sqlite_schema
from tests import backends
from tests.backends import fact_rows_in
from tests.conftest import ROOT, day_table, on_both_backends, replaced_at, write_parquet

SCRIPT = Path(sys.executable).with_name("filedrop-etl")
DAYS = ("2026-03-01", "2026-03-02")
BAD_DAY = "2026-03-03"
BAD = f"transactions_{BAD_DAY}.parquet"


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """`cli.main` configures logging for the process (onto pytest's captured stderr):
    put it back as it was, so that later tests do not log into a closed stream."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook,
             sys.unraisablehook)
    yield
    logging.captureWarnings(False)
    (root.handlers[:], level, sys.excepthook, threading.excepthook, sys.unraisablehook) = saved
    root.setLevel(level)
    structlog.reset_defaults()


def where(settings: Settings) -> list[str]:
    return ["--inbox", str(settings.inbox), "--processed", str(settings.processed),
            "--failed", str(settings.failed), "--db", backends.db_arg(settings)]


def script(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *argv, *where(settings)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def command(settings: Settings, capsys: pytest.CaptureFixture[str],
            *argv: str) -> tuple[int, str]:
    code = cli.main([*argv, *where(settings)])
    return code, capsys.readouterr().out


def as_json(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out = command(settings, capsys, *argv, "--json")
    assert code in (0, 1), out
    return json.loads(out)


@pytest.fixture
def history(settings: Settings, pipeline: Pipeline) -> Settings:
    """Two days loaded and one file failed (a negative amount), through the pipeline."""
    for day in DAYS:
        path = write_parquet(settings.work, day_table(day), run_date=day)
        assert pipeline.process(path).status == "processed"
    bad = replaced_at(day_table(BAD_DAY), "amount", 3, -1.0)
    assert pipeline.process(write_parquet(settings.work, bad, run_date=BAD_DAY)).status == "failed"
    settings.inbox.mkdir(exist_ok=True)
    return settings


@pytest.mark.slow  # a process
def test_every_command_has_help_with_examples_and_exit_codes() -> None:
    for name in ("status", "history", "show", "retry", "report", "feeds", "migrate"):
        done = subprocess.run([str(SCRIPT), name, "--help"], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: filedrop-etl {name}")
        assert "examples:\n  filedrop-etl " + name in done.stdout
        assert "exit codes: 0" in done.stdout and "--db PATH" in done.stdout


def test_descriptions_wrap_to_the_terminal_and_epilogs_keep_their_lines(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The audit found each description printed as one line of 200 characters."""
    monkeypatch.setenv("COLUMNS", "60")
    epilogs = {"status": status.EPILOG, "history": history_command.HISTORY_EPILOG,
               "show": show_command.SHOW_EPILOG, "retry": retry.EPILOG,
               "report": report.EPILOG, "feeds": feeds.EPILOG, "migrate": migrate.EPILOG}
    for name, epilog in epilogs.items():
        with pytest.raises(SystemExit) as done:
            cli.main([name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        description = text.split("\n\n")[1].splitlines()
        assert len(description) > 1 and max(map(len, description)) <= 60, name
        assert epilog.strip() in text  # its examples unwrapped, even past 60 columns


@pytest.mark.slow  # a process
def test_status_without_a_database_says_where_it_looked_and_creates_none(
        settings: Settings) -> None:
    done = script(settings, "status")
    assert done.returncode == 2
    assert f"database  none yet at {settings.db_file}" in done.stdout
    assert "daemon    not running" in done.stdout
    [line] = [json.loads(x) for x in done.stderr.splitlines()]
    assert line["event"] == "database_unavailable" and str(settings.db_file) in line["reason"]
    assert "first starts" in line["hint"]
    assert not settings.db_file.exists() and not settings.lock_file.exists()
    for name in ("history", "report"):
        assert script(settings, name).returncode == 2
    assert not settings.db_file.exists()


def test_a_missing_database_is_said_to_come_from_where_its_path_came_from(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The reason listed the whole lookup order (--db, else ETL_DB, else ...) even when
    ETL_DB had set the path."""
    def reason(*argv: str) -> str:
        assert cli.main(["history", *argv]) == 2
        [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
        return str(line["reason"])

    missing = f"there is no database at {settings.db_file} yet"
    elsewhere = where(settings)[:-2]  # all but --db
    monkeypatch.setenv("ETL_DB", str(settings.db_file))
    assert reason(*where(settings)) == f"{missing} (db from --db)"
    assert reason(*elsewhere) == f"{missing} (db from ETL_DB)"
    monkeypatch.delenv("ETL_DB")
    config = tmp_path / "etl.toml"
    config.write_text(f'db = "{settings.db_file}"\n', encoding="utf-8")
    assert reason("--config", str(config), *elsewhere) \
        == f"{missing} (db from config file {config})"


def test_a_directory_given_as_the_database_is_called_one(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """`history --db /tmp` said only "disk I/O error", SQLite's word for it."""
    settings.db_file.mkdir(parents=True)
    for name in ("history", "status", "report"):
        assert cli.main([name, *where(settings)]) == 2
        [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
        assert line["event"] == "database_unavailable"
        assert line["reason"] == f"{settings.db_file} is a directory, not a database file " \
            "(db from --db)"
        assert f"--db {settings.db_file / 'etl.db'}" in line["hint"]


@on_both_backends
def test_status_counts_the_loads_and_lists_the_failed_files(
        history: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    (history.inbox / "transactions_2026-03-09.parquet").write_bytes(b"waiting")
    (history.inbox / ".hidden.tmp").write_bytes(b"a writer at work")
    code, out = command(history, capsys, "status")
    assert code == 1
    assert "today         2 files processed, 1 failed (3 loads, " in out
    assert "in all        2 files processed, 1 failed (3 loads)" in out
    assert f"transactions_{DAYS[1]}.parquet (25 rows)" in out
    assert "inbox         1 waiting, 0 in flight" in out
    assert "failed        1 waiting for a retry" in out
    [header, row] = out.split("\n\n")[1].splitlines()
    assert header.split() == ["FILE", "FAILED", "AT", "STAGE", "REASON"]
    assert row.startswith(BAD) and \
        "checks  data-quality checks failed: amount must be >= 0 (1 row)" in row
    doc = as_json(history, capsys, "status")
    assert doc["exit_code"] == 1 and doc["daemon"] == {
        "running": False, "pid": None, "lock_file": str(history.lock_file)}
    assert (doc["today"]["processed"], doc["today"]["failed"], doc["today"]["loads"]) \
        == (2, 1, 3)
    assert doc["last_success"]["file_name"] == f"transactions_{DAYS[1]}.parquet"
    version = pg_schema.SCHEMA_VERSION if history.shared else sqlite_schema.SCHEMA_VERSION
    assert doc["database"]["schema_version"] == version == (5 if history.shared else 6)
    assert doc["inbox"]["waiting"] == 1
    [failed] = doc["failed"]["files"]
    assert (failed["name"], failed["original"], failed["stage"]) == (BAD, BAD, "checks")


def test_status_counts_files_by_their_latest_attempt_and_the_loads_beside(
        settings: Settings, pipeline: Pipeline, fresh_db: sqlite3.Connection,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Audit: `status` counted attempts as files, so one file failed, retried as it was
    and failed again was 2 failed files."""
    def load(day: str, good: bool) -> str:
        table = day_table(day) if good else replaced_at(day_table(day), "amount", 3, -1.0)
        return pipeline.process(write_parquet(settings.work, table, run_date=day)).status

    assert [load(BAD_DAY, good=False), load(BAD_DAY, good=False)] == ["failed"] * 2
    assert [load(DAYS[0], good=False), load(DAYS[0], good=True)] == ["failed", "processed"]
    assert load(DAYS[1], good=True) == "processed"
    with fresh_db:  # DAYS[1] was loaded long before today
        fresh_db.execute("""UPDATE "load_history" SET "finished_at" = '2000-01-01T00:00:00Z'
                            WHERE "file_name" = ?""", (f"transactions_{DAYS[1]}.parquet",))
    capsys.readouterr()  # the pipeline's log lines
    code, out = command(settings, capsys, "status")
    assert code == 1  # the failed file waits
    assert "today         1 file processed, 1 failed (4 loads, " in out
    assert "in all        2 files processed, 1 failed (5 loads)" in out
    doc = as_json(settings, capsys, "status")
    assert {k: doc["today"][k] for k in ("processed", "failed", "loads")} == {
        "processed": 1, "failed": 1, "loads": 4}
    assert doc["total"] == {"processed": 2, "failed": 1, "loads": 5}


def finish_at(settings: Settings, file_name: str, stamp: str) -> None:
    """Set when the ledger says `file_name`'s loads finished, as a clock that ran ahead
    would have recorded them."""
    if backends.on_postgresql(settings):
        with psycopg.connect(backends.server_of(settings)) as conn:
            conn.execute('UPDATE "load_history" SET "finished_at" = %s::timestamptz '
                         'WHERE "file_name" = %s', (stamp, file_name))
        return
    local = sqlite3.connect(settings.db)
    with local:
        local.execute('UPDATE "load_history" SET "finished_at" = ? WHERE "file_name" = ?',
                      (stamp, file_name))
    local.close()


@on_both_backends
def test_a_load_recorded_in_the_future_counts_in_all_but_not_today(
        history: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Guards a found bug (issue 21): a load finished "tomorrow" by a clock that ran
    ahead (since set back) was counted in today's files."""
    finish_at(history, f"transactions_{DAYS[1]}.parquet",
              clock.stamp(datetime.now(UTC) + timedelta(days=1)))
    code, out = command(history, capsys, "status")
    assert code == 1
    assert "today         1 file processed, 1 failed (2 loads, " in out
    assert "in all        2 files processed, 1 failed (3 loads)" in out
    assert f"transactions_{DAYS[0]}.parquet (25 rows)" in out  # the last success by now
    assert "clock         1 load recorded as finished later than now" in out
    doc = as_json(history, capsys, "status")
    assert {k: doc["today"][k] for k in ("processed", "failed", "loads")} == {
        "processed": 1, "failed": 1, "loads": 2}
    assert doc["total"] == {"processed": 2, "failed": 1, "loads": 3}
    assert doc["loads_in_the_future"] == 1


@on_both_backends
def test_history_filters_by_name_status_time_and_count(
        history: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    loads = as_json(history, capsys, "history")
    assert [x["file_name"] for x in loads] == [BAD, *(f"transactions_{d}.parquet"
                                                     for d in reversed(DAYS))]
    assert loads[1]["inserted"] == 25 and loads[0]["error"].startswith("checks: ")
    assert len(as_json(history, capsys, "history", "--limit", "1")) == 1
    assert [x["status"] for x in as_json(history, capsys, "history", "--status", "failed")] \
        == ["failed"]
    glob = as_json(history, capsys, "history", "--file", "transactions_2026-03-0[12]*")
    assert len(glob) == 2
    assert as_json(history, capsys, "history", "--file", "transactions_2026-03-0") == []
    today = loads[0]["finished_at"][:10]
    assert len(as_json(history, capsys, "history", "--since", today, "--until", today)) == 3
    assert as_json(history, capsys, "history", "--until", "2000-01-01") == []
    code, out = command(history, capsys, "history", "--status", "processed")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["ID", "FINISHED", "FILE", "STATUS"]
    assert lines[1].split()[5:11] == [DAYS[1], "25", "25", "0", "0", "0"]
    with pytest.raises(SystemExit) as usage:  # argparse's way out, through the logger
        command(history, capsys, "history", "--since", "yesterday")
    assert usage.value.code == 2


def test_until_a_time_to_the_second_includes_that_whole_second(
        history: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """The audit's case: a load that finished at 23:27:40.8 shows as 23:27:40 in the
    FINISHED column, and `--until` copied from there left it out."""
    loads = as_json(history, capsys, "history")
    shown = table.when(loads[0]["finished_at"])
    assert shown is not None
    assert as_json(history, capsys, "history", "--until", shown) == loads
    assert as_json(history, capsys, "history", "--since", shown)[0] == loads[0]
    basic_date = shown[:10].replace("-", "")  # 20261126: a date too, its whole day
    assert as_json(history, capsys, "history", "--until", basic_date) == loads


@pytest.mark.parametrize(("text", "since", "until"), [
    ("2026-03-01", "2026-03-01T00:00:00", "2026-03-02T00:00:00"),
    ("20260301", "2026-03-01T00:00:00", "2026-03-02T00:00:00"),
    ("2026-03-01T23", "2026-03-01T23:00:00", "2026-03-02T00:00:00"),
    ("2026-03-01T23:27", "2026-03-01T23:27:00", "2026-03-01T23:28:00"),
    ("2026-03-01 23:27:40Z", "2026-03-01T23:27:40", "2026-03-01T23:27:41"),
    ("2026-03-01T23:27:40+01:00", "2026-03-01T22:27:40", "2026-03-01T22:27:41"),
])
def test_a_time_bound_covers_what_its_precision_names(text: str, since: str,
                                                      until: str) -> None:
    moment = history_command._moment
    assert (moment(text, end=False), moment(text, end=True)) \
        == (f"{since}.000000Z", f"{until}.000000Z")
    # Given to the microsecond, a time is that instant, --until included.
    assert moment("2026-03-01T23:27:40.8", end=True) == "2026-03-01T23:27:40.800001Z"


@on_both_backends
def test_show_tells_every_attempt_and_the_sidecar(
        history: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = command(history, capsys, "show", f"failed/{BAD}")
    assert code == 0
    assert out.startswith(f"{BAD}: 1 attempt(s), 0 retry(ies), waiting in failed/")
    assert "stage      checks" in out and "hint       correct the rows" in out
    # The rows to correct, by key, with the values that broke the check.
    [check] = [line for line in out.splitlines() if line.startswith("check ")]
    assert re.fullmatch(r"check +amount must be >= 0 \(1 row\): -[0-9.]+ at 2026\d{4}-\d{4}",
                        check), check
    doc = as_json(history, capsys, "show", BAD)
    assert [a["status"] for a in doc["attempts"]] == ["failed"]
    # The rule's id stays in the sidecar as data, beside its words.
    [failure] = doc["failed"][0]["sidecar"]["checks"]
    assert (failure["check"], failure["rule"]) == ("min:amount", "amount must be >= 0")
    # Audit: the lack of an answer went to stdout, where scripts read answers.
    assert cli.main(["show", "transactions_1999-01-01.parquet", *where(history)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == ("nothing is known of transactions_1999-01-01.parquet: no "
                                 "load, no retry, not in failed/\n")


@on_both_backends
def test_report_gives_the_prototypes_customer_totals_and_the_days(
        history: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    rows = fact_rows_in(history)
    expected: dict[int, list[float]] = {}
    for _, customer, amount, *_ in rows:
        expected.setdefault(customer, []).append(amount)
    doc = as_json(history, capsys, "report")
    # To the cent, as the tables print them: no float drift like 5417.820000000001.
    assert {c["customer_id"]: (c["transactions"], c["amount"])
            for c in doc["customers"]} == {k: (len(v), round(math.fsum(v), 2))
                                           for k, v in expected.items()}
    assert all(len(repr(c["amount"]).partition(".")[2]) <= 2 for c in doc["customers"])
    assert doc["total"] == {"rows": len(rows), "customers": len(expected),
                            "amount": round(math.fsum(a for _, _, a, *_ in rows), 2)}
    totals = [c["amount"] for c in doc["customers"]]
    assert totals == sorted(totals, reverse=True)
    assert [(d["run_date"], d["rows"]) for d in doc["days"]] == [(d, 25) for d in DAYS]
    assert as_json(history, capsys, "report", "--since", DAYS[1])["days"][0]["run_date"] \
        == DAYS[1]
    code, out = command(history, capsys, "report")
    assert code == 0 and "CUSTOMER  TRANSACTIONS" in out
    assert "\nall           50          5  " in out


@pytest.mark.parametrize(("name", "since", "until"), [
    ("report", "2026-02-11", "2026-02-01"),
    ("history", "2026-02-11", "2026-02-01"),
    ("history", "2026-02-01T10:01", "2026-02-01T10:00:59"),  # its whole second, still before
])
def test_a_reversed_range_is_a_usage_error_naming_both_ends(
        history: Settings, capsys: pytest.CaptureFixture[str], name: str, since: str,
        until: str) -> None:
    """The audit's case: `report --since 2026-02-11 --until 2026-02-01` printed
    "(no rows loaded)" with rows loaded, and history took such a range silently."""
    code = cli.main([name, "--since", since, "--until", until, *where(history)])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    [line] = [json.loads(text) for text in err.splitlines()]
    assert line["event"] == "usage_error"
    assert line["reason"] == f"--since {since} is after --until {until}"
    assert line["hint"].endswith(f"; see filedrop-etl {name} --help")


@on_both_backends
def test_a_range_without_rows_says_so_rather_than_that_nothing_is_loaded(
        history: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = command(history, capsys, "report", "--since", DAYS[0], "--until", DAYS[0])
    assert code == 0 and "\nall           25  " in out  # one day is a range too
    code, out = command(history, capsys, "report", "--since", "2026-02-01", "--until",
                        "2026-02-11")
    assert code == 0 and out.count("(no rows in that range)") == 2
    assert "no rows loaded" not in out


def test_a_range_of_an_empty_fact_table_says_nothing_is_loaded(
        settings: Settings, fresh_db: sqlite3.Connection,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out = command(settings, capsys, "report", "--since", "2026-02-01")
    assert code == 0 and out.count("(no rows loaded)") == 2


def test_tables_align_numbers_right_and_escape_control_characters() -> None:
    text = table.render(("name", "rows", "total"),
                        [("a\x1b[31m\n", 5, 1.5), ("bb", 123, None)])
    assert text.splitlines() == [
        "NAME           ROWS  TOTAL",
        "a\\x1b[31m\\x0a     5   1.50",
        "bb              123      -",
    ]
    assert table.render(("x",), [], empty="nothing") == "nothing"
    # A count column of only unknowns lines up as the numbers it would hold.
    assert table.render(("rows", "inserted"), [(None, 0)], numeric=("rows",)).splitlines() \
        == ["ROWS  INSERTED", "   -         0"]
    assert table.render(("rows", "inserted"), [(None, 0)]).splitlines()[1] == "-            0"
    assert table.when("2026-03-01T10:11:12.123456Z") == "2026-03-01 10:11:12Z"


def test_a_newer_or_foreign_database_is_refused_read_only(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    settings.db_file.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(settings.db_file)
    conn.execute("CREATE TABLE other (x)")
    conn.close()
    before = settings.db_file.read_bytes()
    assert cli.main(["history", *where(settings)]) == 2
    conn = sqlite3.connect(settings.db_file)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    assert cli.main(["report", *where(settings)]) == 2
    assert settings.db_file.read_bytes() != before  # only by our own hand above


def test_migrate_creates_the_database_then_finds_it_current(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = command(settings, capsys, "migrate", "--json")
    assert code == 0 and json.loads(out) == {
        "db": str(settings.db), "found": None, "version": sqlite_schema.SCHEMA_VERSION,
        "granted": None, "notes": [], "granted_read": None, "migrated": True}
    assert settings.db_file.is_file() and not settings.inbox.exists()  # no folder made
    code, out = command(settings, capsys, "migrate")
    assert code == 0 and "version 6, current: nothing to do" in out
    assert cli.main(["migrate", "--grant", "etl", *where(settings)]) == 2
    assert "--grant is for a PostgreSQL warehouse" in capsys.readouterr().err
