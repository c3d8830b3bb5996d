"""Crash points and what a restart finds after a kill: arming, the failed path resumed.

The kill -9 runs against the real daemon are in `test_survival.py`; these are the
pieces they rely on, each checked on its own.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from structlog.testing import capture_logs

from filedrop_etl.config import ConfigError, Settings
from filedrop_etl.daemon import crashpoints
from filedrop_etl.daemon.load import quarantine
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.watch.resumes import Resumes
from tests.conftest import (
    DaemonProcess,
    as_warehouse,
    day_table,
    drop,
    ledger,
    wait_until,
    write_parquet,
)

Start = Callable[..., DaemonProcess]
NAME = "transactions_2026-02-10.parquet"


@pytest.fixture
def disarmed() -> Iterator[None]:
    """Whatever a test arms is disarmed after it."""
    yield
    crashpoints.arm({})


def test_unset_means_nothing_armed(disarmed: None) -> None:
    assert crashpoints.arm({}) is None
    for point in crashpoints.POINTS:
        crashpoints.reached(point)  # returns: nothing is armed


@pytest.mark.usefixtures("disarmed")
def test_an_armed_point_counts_its_passes_and_ignores_the_others(
        monkeypatch: pytest.MonkeyPatch) -> None:
    raised: list[int] = []
    monkeypatch.setattr(signal, "raise_signal", raised.append)
    assert crashpoints.arm({crashpoints.ENV_VAR: "during_merge@2"}) == "during_merge"
    crashpoints.reached("after_claim")
    crashpoints.reached("during_merge")
    assert raised == []
    crashpoints.reached("during_merge")
    assert raised == [signal.SIGSTOP]


@pytest.mark.usefixtures("disarmed")
@pytest.mark.parametrize("spec", ["after_clam", "during_merge@0", "during_merge@x",
                                  "during_merge@"])
def test_an_unknown_point_or_count_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="names no crash point"):
        crashpoints.arm({crashpoints.ENV_VAR: spec})


def test_the_daemon_refuses_a_misspelt_crash_point(start_daemon: Start) -> None:
    daemon = start_daemon(env={crashpoints.ENV_VAR: "after_comit"}, wait_started=False)
    assert daemon.proc.wait(timeout=30) == 2
    [line] = daemon.matching("config_invalid")
    assert "after_comit" in line["reason"] and "after_commit" in line["hint"]


def _bad_day() -> pa.Table:
    table = day_table("2026-02-10")
    return table.set_column(2, "amount", pa.array([-1.0] * table.num_rows))


def test_a_failure_resumed_after_a_kill_is_recorded_once(settings: Settings,
                                                         fresh_db: sqlite3.Connection) -> None:
    """A kill after the failed ledger row and before the quarantine: the restarted daemon
    fails the same claim again, and must not record it twice."""
    settings.work.mkdir(parents=True)
    path = drop(write_parquet(settings.work.parent / "out", _bad_day()), settings.work)
    # failed/ cannot be made (a file is in its way), so the first attempt stops after
    # its ledger row with the file still in work/, as a kill there would leave it.
    settings.failed.write_bytes(b"in the way")
    assert Pipeline(settings, as_warehouse(fresh_db)).process(path).status == "retry"
    settings.failed.unlink()
    # A new Pipeline, as after a restart: nothing remembered in memory.
    outcome = Pipeline(settings, as_warehouse(fresh_db)).process(path)
    assert outcome.status == "failed" and outcome.path == settings.failed / NAME
    rows = ledger(settings.db_file)
    assert [r["status"] for r in rows] == ["failed"]


def test_a_second_claim_of_the_same_bad_file_is_recorded_again(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    """Only the same claim is deduplicated: the same bytes dropped again are a new try."""
    settings.work.mkdir(parents=True)
    for _ in range(2):
        path = drop(write_parquet(settings.work.parent / "out", _bad_day()), settings.work)
        assert Pipeline(settings, as_warehouse(fresh_db)).process(path).status == "failed"
    assert [r["status"] for r in ledger(settings.db_file)] == ["failed", "failed"]


def test_a_sidecar_left_half_written_is_removed_at_start(settings: Settings,
                                                         start_daemon: Start) -> None:
    settings.failed.mkdir(parents=True)
    leftover = settings.failed / ".sidecar-4242.tmp"
    leftover.write_text('{"stage": ')
    kept = settings.failed / f"{NAME}.error.json"
    kept.write_text("{}")
    daemon = start_daemon()
    [line] = daemon.matching("sidecar_leftover_removed")
    assert line["path"] == str(leftover)
    assert not leftover.exists() and kept.exists()
    assert quarantine.sidecar_leftovers(settings.failed) == []



# --- a file the daemon keeps stopping on -------------------------------------------------

ARMED = {crashpoints.ENV_VAR: "during_staging"}


def _killed_at_the_crash_point(daemon: DaemonProcess) -> None:
    daemon.wait_for("crash_point_reached")
    daemon.proc.kill()
    daemon.proc.wait()


def test_a_file_the_daemon_keeps_stopping_on_is_set_aside_after_max_resumes(
        settings: Settings, start_daemon: Start) -> None:
    """Guards a found bug: a file that ended the daemon was resumed first at every start
    and ended it again, so under systemd's restarts no later drop ever loaded. Here the
    crash point stands in for what ends it (a crash in a library, the OOM killer)."""
    daemon = start_daemon("--max-resumes", "2", env=ARMED)
    drop(write_parquet(settings.inbox.parent / "out", day_table("2026-02-10")), settings.inbox)
    _killed_at_the_crash_point(daemon)  # the first claim
    for run in (1, 2):
        daemon = start_daemon("--max-resumes", "2", env=ARMED, log_name=f"run-{run}.log")
        [resumed] = daemon.matching("file_resumed", file=NAME)
        assert (resumed["unfinished_attempts"], resumed["max_resumes"]) == (run - 1, 2)
        _killed_at_the_crash_point(daemon)
    # Unarmed now: the file is set aside by its count, not because it would end this run.
    daemon = start_daemon("--max-resumes", "2", log_name="run-3.log")
    [line] = daemon.wait_for("file_failed", file=NAME)
    assert (line["stage"], line["error_type"]) == ("resume", "StoppedTooOften")
    assert "stopped while loading this file each of the 2 times it was resumed" in line[
        "reason"]
    sidecar = json.loads((settings.failed / f"{NAME}.error.json").read_text())
    assert [set(entry) for entry in sidecar["resumes"]] == [{"resumed_at", "pid"}] * 2
    assert [r["status"] for r in ledger(settings.db_file)] == ["failed"]
    # The journal too is gone, just after the outcome's line (see the next test).
    wait_until(lambda: not any(settings.work.iterdir()), "the resume journal crossed out")
    assert list(settings.work.iterdir()) == []
    # The queue is not wedged: the next drop loads.
    other = "transactions_2026-02-11.parquet"
    drop(write_parquet(settings.inbox.parent / "out", day_table("2026-02-11"),
                       run_date="2026-02-11"), settings.inbox)
    daemon.wait_for("file_processed", file=other)
    assert daemon.stop() == 0


def test_a_resumed_file_that_loads_leaves_no_count_behind(settings: Settings,
                                                          start_daemon: Start) -> None:
    daemon = start_daemon(env=ARMED)
    drop(write_parquet(settings.inbox.parent / "out", day_table("2026-02-10")), settings.inbox)
    _killed_at_the_crash_point(daemon)
    daemon = start_daemon(log_name="run-1.log")
    daemon.wait_for("file_processed", file=NAME)
    # The journal is crossed out just after the outcome's line is logged: on a busy
    # machine the test once read the work directory between the two.
    wait_until(lambda: not any(settings.work.iterdir()), "the resume journal crossed out")
    assert list(settings.work.iterdir()) == []
    assert [r["status"] for r in ledger(settings.db_file)] == ["processed"]


def test_the_resume_journal_counts_forgets_and_survives_damage(tmp_path: Path) -> None:
    resumes = Resumes(tmp_path, limit=2)
    kept, gone = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert resumes.begin(kept) is None and resumes.begin(gone) is None
    assert resumes.keep_only([kept]) == {"a.parquet": 1}
    assert resumes.begin(kept) is None
    assert [set(e) for e in resumes.begin(kept) or []] == [{"resumed_at", "pid"}] * 2
    resumes.ended(kept)
    assert not resumes.path.exists()
    resumes.path.write_text("{not json")
    with capture_logs() as logs:
        assert resumes.begin(kept) is None
    assert [e["event"] for e in logs] == ["resumes_unreadable"]
    assert resumes.keep_only([kept]) == {"a.parquet": 1}
