"""Failed files a later drop superseded, and `dismiss` (issue 24, item 10), on both backends.

A real daemon and the console script for the flow as an operator meets it: a bad file
fails, the producer re-sends it and it loads, `status` exits 0 showing it superseded,
`retry` holds it back, `dismiss` clears it with a record. In-process for what is not
superseded (an earlier drop), a misnamed file superseded by its rightly named re-drop,
and the dismissal's refusals.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from filedrop_etl.config import Settings
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.app import cli
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.ops import folders, page
from tests import backends
from tests.conftest import (
    DaemonProcess,
    day_table,
    drop,
    on_both_backends,
    replaced_at,
    table_rows,
    write_parquet,
)
from tests.test_commands import restored_logging, script, where
from tests.test_page import WELL, parsed

__all__ = ["restored_logging"]  # the autouse fixture, imported to apply here too
Start = Callable[..., DaemonProcess]
DAY = "2026-03-05"
NAME = f"transactions_{DAY}.parquet"


def bad_table() -> Any:
    return replaced_at(day_table(DAY), "amount", 0, -5.0)  # fails its checks


def dismissals(settings: Settings) -> list[dict[str, Any]]:
    if backends.on_postgresql(settings):
        return backends._pg_rows(
            settings, f'SELECT * FROM {backends.books_of(settings.db).dismissals} ORDER BY "id"')
    return table_rows(settings.db_file, "dismissals")


def logged(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@on_both_backends
def test_a_failed_file_whose_date_loaded_since_from_a_later_drop_is_superseded(
        tmp_path: Path, settings: Settings, start_daemon: Start) -> None:
    """Issue 24, item 10: after a good file of the same name and date loaded, the old
    failed copy kept `status` at exit 1, and `retry` would have put its bytes back over
    the good load."""
    daemon = start_daemon()
    drop(write_parquet(tmp_path / "out", bad_table(), NAME), settings.inbox)
    daemon.wait_for("file_failed", file=NAME)
    drop(write_parquet(tmp_path / "out", day_table(DAY), NAME), settings.inbox)
    [good] = daemon.wait_for("file_processed", file=NAME)

    status = script(settings, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"0 waiting for a retry, 1 superseded ({settings.failed})" in status.stdout
    assert "superseded" in status.stdout and NAME in status.stdout
    document = json.loads(script(settings, "status", "--json").stdout)
    assert (document["exit_code"], document["failed"]["superseded"],
            document["failed"]["to_retry"]) == (0, 1, 0)
    [listed] = document["failed"]["files"]
    assert listed["superseded_by"]["file_name"] == NAME
    assert listed["superseded_by"]["finished_at"] > listed["attempted_at"]
    load_id = listed["superseded_by"]["id"]

    retried = script(settings, "retry", NAME, "--json")
    assert retried.returncode == 3, retried.stdout + retried.stderr
    [held] = json.loads(retried.stdout)
    assert (held["outcome"], held["superseded_by"]) == ("superseded", load_id)
    assert "its older bytes would replace that load's" in held["reason"]
    # Each command as it runs from any folder (issue 24, item 4).
    assert held["hint"].startswith("`filedrop-etl dismiss --db ")
    assert f" {NAME}` clears it" in held["hint"] and f" {NAME} --force`" in held["hint"]
    assert (settings.failed / NAME).exists() and not (settings.inbox / NAME).exists()

    dismissed = script(settings, "dismiss", NAME, "--json")
    assert dismissed.returncode == 0, dismissed.stdout + dismissed.stderr
    [done] = json.loads(dismissed.stdout)
    assert (done["outcome"], done["feed"], done["run_date"]) == ("dismissed", "transactions",
                                                                 DAY)
    assert list(settings.failed.iterdir()) == []
    [row] = dismissals(settings)
    assert (row["id"], row["file_name"], row["failed_as"], row["feed"],
            row["superseded_by"]) == (done["dismissal_id"], NAME, NAME, "transactions",
                                      load_id)
    assert str(row["run_date"]) == DAY and row["node"] == settings.node
    assert row["dismissed_by"] and row["why"].startswith(f"superseded by load {load_id} ")
    assert json.loads(row["sidecar"])["stage"] == "checks"
    [line] = [e for e in logged(dismissed.stderr) if e["event"] == "file_dismissed"]
    assert (line["file"], line["superseded_by"], line["dismissal_id"], line["forced"]) == (
        NAME, load_id, row["id"], False)
    assert script(settings, "status").returncode == 0
    assert good["run_date"] == DAY
    assert daemon.stop() == 0


@on_both_backends
def test_a_failure_after_the_load_of_its_date_is_not_superseded_and_dismiss_asks_for_force(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    """The good load came first: the failed file is the later drop, whose bytes a retry
    should bring in. It keeps the alarm on, and dismissing it takes --force."""
    assert pipeline.process(write_parquet(settings.work, day_table(DAY), NAME)).status \
        == "processed"
    assert pipeline.process(write_parquet(settings.work, bad_table(), NAME)).status \
        == "failed"
    capsys.readouterr()
    assert cli.main(["status", *where(settings), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["failed"]["superseded"] == 0
    assert document["failed"]["files"][0]["superseded_by"] is None
    assert cli.main(["dismiss", "--superseded", *where(settings)]) == 0
    assert "nothing to dismiss" in capsys.readouterr().out
    assert cli.main(["dismiss", NAME, *where(settings), "--json"]) == 1
    [refused] = json.loads(capsys.readouterr().out)
    assert refused["reason"].startswith("it is not superseded")
    assert f" {NAME} --force --reason TEXT`" in refused["hint"]
    assert "`filedrop-etl dismiss --db " in refused["hint"]
    assert (settings.failed / NAME).exists() and dismissals(settings) == []
    assert cli.main(["dismiss", NAME, "--force", "--reason", "withdrawn by the producer",
                     *where(settings)]) == 0
    capsys.readouterr()
    [row] = dismissals(settings)
    assert row["superseded_by"] is None
    assert row["why"] == "not superseded: dismissed with --force: withdrawn by the producer"
    assert list(settings.failed.iterdir()) == []


def test_a_misnamed_file_is_superseded_by_its_rightly_named_redrop(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    """`Transactions_D.parquet` failed on its name; the producer sent it again as
    `transactions_D.parquet`, which loaded: the first is superseded, by the date of the
    name it most likely meant. The page marks it and offers `dismiss`, not `retry`."""
    wrong = f"Transactions_{DAY}.parquet"
    assert pipeline.process(write_parquet(settings.work, day_table(DAY), wrong)).status \
        == "failed"
    assert pipeline.process(write_parquet(settings.work, day_table(DAY), NAME)).status \
        == "processed"
    capsys.readouterr()
    assert cli.main(["status", *where(settings)]) == 0
    assert "1 superseded" in capsys.readouterr().out
    assert cli.main(["retry", "--all", *where(settings)]) == 1  # refused: its name
    capsys.readouterr()
    assert cli.main(["retry", wrong, "--as", NAME, "--dry-run", *where(settings),
                     "--json"]) == 3
    [held] = json.loads(capsys.readouterr().out)
    assert (held["outcome"], held["file_name"]) == ("superseded", NAME)
    from filedrop_etl.daemon.ops import superseded  # issue 24's (and so the test fails on main)
    failed = folders.failed_files(settings.failed)
    with warehouse.reading(settings) as history:
        stale = superseded.superseded(history, settings.feeds, failed)
    document = page.render(WELL, failed, [], {}, settings.feeds, superseded=stale)
    text = "".join(parsed(document).text)
    assert f"superseded by load {stale[wrong].id}" in text
    # The to-retry cell offers no retry (the sidecar's hint, shown beside it, may).
    assert f"<code>filedrop-etl dismiss {wrong}</code>" in document
    assert "<code>filedrop-etl retry" not in document
    assert 'class="superseded"' in document
    assert '<p id="state" class="ok">Running</p>' in document  # none waits for a person
    assert cli.main(["dismiss", "--superseded", "--dry-run", *where(settings)]) == 0
    assert (settings.failed / wrong).exists()
    assert cli.main(["dismiss", "--superseded", *where(settings)]) == 0
    assert not (settings.failed / wrong).exists()
    [row] = dismissals(settings)
    assert (row["file_name"], row["feed"], row["run_date"]) == (wrong, "transactions", DAY)


def test_dismiss_needs_names_or_superseded_and_force_is_one_by_one(
        settings: Settings, pipeline: Pipeline) -> None:
    assert cli.main(["dismiss", *where(settings)]) == 2
    assert cli.main(["dismiss", NAME, "--superseded", *where(settings)]) == 2
    assert cli.main(["dismiss", "--superseded", "--force", *where(settings)]) == 2
    assert cli.main(["dismiss", "nothing.parquet", *where(settings)]) == 1


def test_a_superseded_file_goes_back_with_force_saying_what_it_replaces(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    assert pipeline.process(write_parquet(settings.work, bad_table(), NAME)).status == "failed"
    assert pipeline.process(write_parquet(settings.work, day_table(DAY), NAME)).status \
        == "processed"
    capsys.readouterr()
    assert cli.main(["retry", "--all", *where(settings), "--json"]) == 3
    [held] = json.loads(capsys.readouterr().out)
    assert held["outcome"] == "superseded" and (settings.failed / NAME).exists()
    assert cli.main(["retry", NAME, "--force", *where(settings), "--json"]) == 0
    [sent] = json.loads(capsys.readouterr().out)
    assert (sent["outcome"], sent["superseded_by"]) == ("retried", held["superseded_by"])
    assert "sent back with --force: its bytes replace that load's" in sent["reason"]
    assert (settings.inbox / NAME).exists() and dismissals(settings) == []


def test_show_says_a_superseded_file_is_superseded_and_suggests_dismiss(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 24, item 10: `show` offered `retry` for a superseded file, which `retry`
    holds back (exit 3): it says by which load, and suggests `dismiss`."""
    assert pipeline.process(write_parquet(settings.work, bad_table(), NAME)).status == "failed"
    assert pipeline.process(write_parquet(settings.work, day_table(DAY), NAME)).status \
        == "processed"
    capsys.readouterr()
    assert cli.main(["show", NAME, *where(settings), "--json"]) == 0
    [failed] = json.loads(capsys.readouterr().out)["failed"]
    load = failed["superseded_by"]
    assert (load["file_name"], load["status"]) == (NAME, "processed")
    assert cli.main(["show", NAME, *where(settings)]) == 0
    pairs = dict(x.split(None, 1) for x in capsys.readouterr().out.split(
        f"in failed/ as {NAME}\n")[1].splitlines())
    assert pairs["superseded"] == (
        f"its run date has loaded since from a later drop, load {load['id']} ({NAME}, "
        f"{load['finished_at'][:19].replace('T', ' ')}Z): it needs no retry (one would put "
        "its older bytes over that load)")
    assert pairs["instead"].startswith("`filedrop-etl dismiss --db ")
    assert f" {NAME}` clears it, recorded; `filedrop-etl retry --db " in pairs["instead"]
    assert "retry" not in pairs
