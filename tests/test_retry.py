"""`retry`: failed files back into the inbox, recorded; and a running daemon takes them.

In-process for what the command does to the directories and the `retries` table; a
real daemon and the console script for what a retry leads to.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon import routing
from filedrop_etl.daemon.app import cli
from filedrop_etl.daemon.load.pipeline import Pipeline
from tests.conftest import (
    ROOT,
    DaemonProcess,
    day_table,
    drop,
    ledger,
    replaced_at,
    table_rows,
    write_parquet,
)
from tests.test_commands import SCRIPT, restored_logging, where

Start = Callable[..., DaemonProcess]
DAY = "2026-03-05"
NAME = f"transactions_{DAY}.parquet"
__all__ = ["restored_logging"]  # the autouse fixture, imported to apply here too


def retries(db: Path) -> list[dict[str, Any]]:
    return table_rows(db, "retries")


def failed_by_hand(settings: Settings, as_name: str, original: str) -> Path:
    """A good file in failed/ under `as_name`, its sidecar naming `original`; the inbox
    there, as a daemon's start leaves it."""
    settings.inbox.mkdir(parents=True, exist_ok=True)
    path = write_parquet(settings.failed, day_table(DAY), as_name)
    sidecar = settings.failed / f"{as_name}.error.json"
    sidecar.write_text(json.dumps({"file": original, "stage": "load", "message":
                                   "database is\nlocked", "attempted_at": "2026-03-05T01:02:03Z"}))
    return path


def test_retry_sends_a_file_back_under_its_original_name_and_records_it(
        settings: Settings, fresh_db: sqlite3.Connection,
        capsys: pytest.CaptureFixture[str]) -> None:
    failed = failed_by_hand(settings, f"transactions_{DAY}~1.parquet", NAME)
    content = failed.read_bytes()
    assert cli.main(["retry", "--all", "--dry-run", *where(settings)]) == 0
    assert "would retry" in capsys.readouterr().out and failed.exists()
    assert retries(settings.db_file) == []
    assert cli.main(["retry", NAME, *where(settings)]) == 0  # asked for by its original name
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:4] == [failed.name, "retried", NAME, "1"]
    assert (settings.inbox / NAME).read_bytes() == content
    assert sorted(settings.failed.iterdir()) == []
    [row] = retries(settings.db_file)
    assert (row["file_name"], row["failed_as"], row["reason"]) == (NAME, failed.name,
                                                                  "database is locked")
    assert json.loads(row["sidecar"])["stage"] == "load" and row["requested_at"].endswith("Z")


def test_retry_never_overwrites_a_file_in_the_inbox(
        settings: Settings, fresh_db: sqlite3.Connection,
        capsys: pytest.CaptureFixture[str]) -> None:
    failed = failed_by_hand(settings, NAME, NAME)
    settings.inbox.mkdir(exist_ok=True)
    (settings.inbox / NAME).write_bytes(b"the newer drop")
    assert cli.main(["retry", NAME, "unknown.parquet", *where(settings), "--json"]) == 1
    taken, refused = sorted(json.loads(capsys.readouterr().out), key=lambda r: r["failed_as"])
    assert taken["outcome"] == refused["outcome"] == "refused"
    assert "already holds" in taken["reason"] and "wait until" in taken["hint"]
    assert "not in failed/" in refused["reason"]
    assert (settings.inbox / NAME).read_bytes() == b"the newer drop" and failed.exists()
    assert (settings.failed / f"{NAME}.error.json").exists()
    assert retries(settings.db_file) == []


def test_a_taken_name_is_refused_with_another_name_that_still_loads(
        settings: Settings, fresh_db: sqlite3.Connection,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Audit: the hint said "under another name", and most other names fail at the name."""
    failed_by_hand(settings, f"transactions_{DAY}~3.parquet", NAME)
    settings.inbox.mkdir(exist_ok=True)
    for taken in (NAME, f"transactions_{DAY}~1.parquet"):
        (settings.inbox / taken).write_bytes(b"waiting")
    assert cli.main(["retry", NAME, "--json", *where(settings)]) == 1
    [result] = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "refused"
    free = f"transactions_{DAY}~2.parquet"
    assert routing.run_date_from_name(free, TRANSACTIONS) == DAY
    # Issue 24, item 4: each command the hint suggests finds the daemon from any folder.
    assert "(`filedrop-etl status --db " in result["hint"]
    assert "; or `filedrop-etl retry --db " in result["hint"]
    assert (f" transactions_{DAY}~3.parquet --as {free}` (another name must still be "
            "transactions_YYYY-MM-DD.parquet with the run date of its rows (a ~N before "
            ".parquet is allowed") in result["hint"]
    assert "-copy.parquet fails on its name" in result["hint"]


def test_retry_asks_for_files_or_all_and_needs_the_database(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    failed_by_hand(settings, NAME, NAME)
    assert cli.main(["retry", *where(settings)]) == 2
    assert cli.main(["retry", "--all", NAME, *where(settings)]) == 2
    assert cli.main(["retry", "--all", *where(settings)]) == 2  # no database: none made
    assert not settings.db_file.exists() and (settings.failed / NAME).exists()


def test_retry_of_a_failed_file_has_the_running_daemon_take_it_again(
        tmp_path: Path, settings: Settings, start_daemon: Start) -> None:
    daemon = start_daemon()
    bad = replaced_at(day_table(DAY), "amount", 0, -3.0)
    drop(write_parquet(tmp_path / "out", bad, NAME), settings.inbox)
    daemon.wait_for("file_failed", file=NAME)
    status = subprocess.run([str(SCRIPT), "status", *where(settings)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 1 and f"running, pid {daemon.proc.pid}" in status.stdout
    done = subprocess.run([str(SCRIPT), "retry", NAME, *where(settings)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    daemon.wait_for("file_failed", count=2, file=NAME)
    assert len(daemon.matching("file_claimed", file=NAME)) == 2
    assert [r["status"] for r in ledger(settings.db_file)] == ["failed", "failed"]
    [row] = retries(settings.db_file)
    assert row["failed_as"] == NAME and "amount must be >= 0" in row["reason"]
    assert daemon.proc.poll() is None


def test_a_good_file_retried_from_failed_is_loaded_under_its_own_name(
        settings: Settings, start_daemon: Start, pipeline: Pipeline) -> None:
    daemon = start_daemon()
    failed_by_hand(settings, f"transactions_{DAY}~2.parquet", NAME)
    done = subprocess.run([str(SCRIPT), "retry", "--all", *where(settings)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    [line] = daemon.wait_for("file_processed", file=NAME)
    assert line["rows"] == 25 and (settings.processed / NAME).exists()
    status = subprocess.run([str(SCRIPT), "status", "--json", *where(settings)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0 and json.loads(status.stdout)["failed"]["files"] == []
    assert daemon.stop() == 0
    after = subprocess.run([str(SCRIPT), "status", *where(settings)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=False)
    assert "daemon        not running" in after.stdout and after.returncode == 0


def test_a_file_that_failed_on_its_name_is_refused_with_the_name_it_needs(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    """Audit: `retry` sent a name-stage failure back under the same name, to fail again,
    and `show` and `status` proposed it."""
    unnamed = "2024-01-01.parquet"
    assert pipeline.process(write_parquet(settings.work, day_table(DAY), unnamed)).status \
        == "failed"
    capsys.readouterr()  # the pipeline's log lines
    for argv in (["retry", unnamed], ["retry", "--all"], ["retry", "--all", "--dry-run"]):
        assert cli.main([*argv, *where(settings), "--json"]) == 1
        [result] = json.loads(capsys.readouterr().out)
        assert result["outcome"] == "refused", argv
        assert result["reason"].startswith("its name can never load: file name "
                                           f"'{unnamed}' does not match")
        # Issue 24: no name is likely (a bare date), so `--as` a name of the feed's.
        assert result["suggested_name"] is None
        assert result["hint"].startswith("`filedrop-etl retry --db ")
        assert (f" {unnamed} --as NEW_NAME`, NEW_NAME like transactions_YYYY-MM-DD.parquet"
                in result["hint"])
        assert "~N before .parquet is allowed" in result["hint"]
    assert (settings.failed / unnamed).exists() and retries(settings.db_file) == []
    assert [r["status"] for r in ledger(settings.db_file)] == ["failed"]
    assert cli.main(["show", unnamed, *where(settings)]) == 0
    shown = capsys.readouterr().out
    assert "retry      cannot help: its name can never load" in shown
    assert "instead    `filedrop-etl retry --db " in shown
    assert f" {unnamed} --as NEW_NAME`" in shown
    assert cli.main(["status", *where(settings)]) == 1
    status = capsys.readouterr().out
    assert (f"\n{unnamed} cannot be retried under its own name (its name can never load): "
            "`filedrop-etl retry --db ") in status
    assert (f" {unnamed} --as NEW_NAME`, NEW_NAME like transactions_YYYY-MM-DD.parquet"
            ) in status


def test_a_file_unchanged_since_its_content_failed_goes_back_with_a_warning(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    """Audit: a file retried byte for byte as it failed its checks went back without a
    word, to fail again. A failure at load (a bug, the environment) is not the file's."""
    bad = replaced_at(day_table(DAY), "amount", 0, -3.0)
    assert pipeline.process(write_parquet(settings.work, bad, NAME)).status == "failed"
    other = f"transactions_{DAY}~7.parquet"
    load_failure = failed_by_hand(settings, other, other)
    sidecar = settings.failed / f"{other}.error.json"
    same = hashlib.sha256(load_failure.read_bytes()).hexdigest()
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "sha256": same}))
    capsys.readouterr()  # the pipeline's log lines
    assert cli.main(["retry", "--all", "--dry-run", "--json", *where(settings)]) == 0
    warned, unwarned = sorted(json.loads(capsys.readouterr().out),
                              key=lambda r: r["failed_as"] != NAME)
    assert (warned["failed_as"], warned["outcome"]) == (NAME, "would_retry")
    assert warned["reason"] == ("unchanged since it failed at checks (same sha256): it will "
                                "most likely fail again")
    assert warned["hint"] == "fix the file or its producer first"
    assert (unwarned["failed_as"], unwarned["reason"], unwarned["hint"]) == (other, None, None)
    assert cli.main(["retry", NAME, *where(settings)]) == 0  # a warning, not a refusal
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:4] == [NAME, "retried", NAME, "1"]
    assert "unchanged since it failed at checks (same sha256)" in out
    assert (settings.inbox / NAME).exists()


def test_a_file_fixed_in_failed_goes_back_without_a_warning(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    bad = replaced_at(day_table(DAY), "amount", 0, -3.0)
    assert pipeline.process(write_parquet(settings.work, bad, NAME)).status == "failed"
    write_parquet(settings.failed, day_table(DAY), NAME)  # corrected in place
    capsys.readouterr()
    assert cli.main(["retry", NAME, "--json", *where(settings)]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert (result["outcome"], result["reason"], result["hint"]) == ("retried", None, None)


def test_a_file_over_max_file_bytes_goes_back_unread_with_a_warning(
        settings: Settings, fresh_db: sqlite3.Connection, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards a found bug (issue 21): `retry` hashed the file whole whatever its size,
    so a sparse file of holes refused by the daemon unread took minutes to send back."""
    failed = failed_by_hand(settings, NAME, NAME)
    os.truncate(failed, 1 << 30)
    monkeypatch.setenv("ETL_MAX_FILE_BYTES", "1M")
    assert cli.main(["retry", NAME, "--json", *where(settings)]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert (result["outcome"], result["sha256"]) == ("retried", None)
    assert result["reason"] == (f"it holds more than max_file_bytes ({1 << 20:,} bytes), so "
                                "the daemon refuses it again, unread (stage open)")
    assert "raise max_file_bytes" in result["hint"]
    assert (settings.inbox / NAME).stat().st_size == 1 << 30
    [row] = retries(settings.db_file)
    assert row["sha256"] is None


def test_sidecars_left_without_their_file_are_told_and_a_retrys_are_removed(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    """Audit: a sidecar left in failed/ by a retry cut short (after its rename, before the
    sidecar's removal) or by a file moved out by hand went unmentioned, forever."""
    bad = replaced_at(day_table(DAY), "amount", 0, -3.0)
    assert pipeline.process(write_parquet(settings.work, bad, NAME)).status == "failed"
    sidecar = settings.failed / f"{NAME}.error.json"
    content = sidecar.read_bytes()
    assert cli.main(["retry", NAME, *where(settings)]) == 0
    sidecar.write_bytes(content)  # as a crash before the sidecar's removal leaves it
    by_hand = f"transactions_{DAY}~4.parquet"
    failed_by_hand(settings, by_hand, NAME).rename(settings.inbox / by_hand)
    capsys.readouterr()
    assert cli.main(["status", *where(settings)]) == 0
    out = capsys.readouterr().out
    assert "leftovers     2 sidecars without a file in failed/" in out
    recorded, unrecorded = out.split("SIDECAR WITHOUT ITS FILE")[1].splitlines()[1:]
    # The command as it runs from any folder: with the options that find this daemon.
    assert recorded.startswith(f"{NAME}.error.json") and recorded.endswith("` removes it")
    assert f"`filedrop-etl retry --all --db {settings.db_file} --inbox " in recorded
    assert unrecorded.startswith(f"{by_hand}.error.json") and "  -  " in unrecorded
    assert "read it, then remove it by hand" in unrecorded
    assert cli.main(["status", "--json", *where(settings)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(x["file"], x["retry_id"]) for x in doc["failed"]["leftover_sidecars"]] == [
        (NAME, 1), (by_hand, None)]
    assert doc["failed"]["leftover_sidecars"][0]["sidecar"] == str(sidecar)

    assert cli.main(["retry", "--all", "--dry-run", "--json", *where(settings)]) == 0
    [would] = json.loads(capsys.readouterr().out)
    assert (would["failed_as"], would["outcome"], would["retry_id"]) == (
        NAME, "would_remove_sidecar", 1) and sidecar.exists()
    assert cli.main(["retry", "--all", *where(settings)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:5] == [NAME, "sidecar", "removed", NAME, "1"]
    assert "left alone: 1 sidecar(s) in failed/ without a file and without a recorded" in out
    assert not sidecar.exists() and (settings.failed / f"{by_hand}.error.json").exists()
    assert len(retries(settings.db_file)) == 1  # removing a leftover records no retry


def test_show_finds_a_retried_file_by_its_name_in_failed(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    """Audit: `show NAME~1` (its name in failed/) knew nothing of the file once retried,
    though the ledger has its attempts under the name it was dropped under."""
    bad = replaced_at(day_table(DAY), "amount", 0, -3.0)
    for _ in range(2):  # the second failure finds NAME taken in failed/
        assert pipeline.process(write_parquet(settings.work, bad, NAME)).status == "failed"
    numbered = f"transactions_{DAY}~1.parquet"
    assert (settings.failed / numbered).exists()
    assert cli.main(["retry", numbered, *where(settings)]) == 0
    capsys.readouterr()
    assert cli.main(["show", numbered, *where(settings)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{numbered}: 2 attempt(s), 1 retry(ies)")
    assert cli.main(["show", numbered, "--json", *where(settings)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [a["file_name"] for a in doc["attempts"]] == [NAME, NAME]
    assert [(r["failed_as"], r["file_name"]) for r in doc["retries"]] == [(numbered, NAME)]
    # Moved out by hand, a `~N` name leaves no trace: show says which name to try.
    assert cli.main(["show", f"transactions_{DAY}~2.parquet", *where(settings)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"nothing is known of transactions_{DAY}~2.parquet")
    assert f"try `filedrop-etl show --db {settings.db_file} " in err
    assert err.rstrip().endswith(f" {NAME}`")
