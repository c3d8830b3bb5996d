"""The per-file path in-process: one transaction per file, archive, ledger, sidecars.

The hostile-input corpus, which drives this same `Pipeline` (and the real daemon) with
every kind of bad file, is in tests/test_hostile.py.
"""

from __future__ import annotations

import decimal
import errno
import json
import random
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon.load import ordering, reader
from filedrop_etl.daemon.load.pipeline import Outcome, Pipeline
from filedrop_etl.daemon.warehouse import registry
from filedrop_etl.daemon.warehouse.sqlite import schema, staging
from filedrop_etl.daemon.warehouse.sqlite import warehouse as sqlite_warehouse
from tests import sqlite_store as store
from tests.conftest import (
    as_warehouse,
    awkward_db_path,
    day_table,
    fact_rows,
    ledger,
    replaced_at,
    with_column,
    write_parquet,
)

DAY = "2026-02-10"
NAME = f"transactions_{DAY}.parquet"


def claimed(settings: Settings, table: pa.Table, name: str = NAME) -> Path:
    """A file as the worker leaves it after the claim: in the work directory."""
    return write_parquet(settings.work, table, name)


def staging_files(settings: Settings) -> list[str]:
    """Staging files left beside the database: a finished attempt leaves none."""
    return [p.name for p in settings.db_file.parent.iterdir() if ".staging-" in p.name]


def test_a_clean_file_is_loaded_archived_and_recorded(settings: Settings,
                                                      pipeline: Pipeline) -> None:
    with capture_logs() as logs:
        outcome = pipeline.process(claimed(settings, day_table(DAY)))
    assert outcome.status == "processed"
    assert outcome.path == settings.processed / NAME and outcome.path.exists()
    assert list(settings.work.iterdir()) == []
    assert len(fact_rows(settings.db_file)) == 25
    [row] = ledger(settings.db_file)
    assert (row["status"], row["rows"], row["inserted"], row["updated"], row["unchanged"],
            row["deleted"], row["error"]) == ("processed", 25, 25, 0, 0, 0, None)
    assert row["sha256"] and len(row["sha256"]) == 64 and row["sha256"] == row["sha256"].lower()
    [line] = [e for e in logs if e["event"] == "file_processed"]
    assert {k: line[k] for k in ("file", "rows", "inserted", "updated", "unchanged",
                                 "deleted")} == {"file": NAME, "rows": 25, "inserted": 25,
                                                 "updated": 0, "unchanged": 0, "deleted": 0}
    assert line["sha256"] == row["sha256"] and line["duration_ms"] >= 0
    staging = sqlite3.connect(settings.db_file).execute(
        "SELECT COUNT(*) FROM staging_transactions").fetchone()
    assert staging == (0,)
    assert staging_files(settings) == []


def test_identical_rerun_changes_nothing_not_even_loaded_at(settings: Settings,
                                                           pipeline: Pipeline) -> None:
    pipeline.process(claimed(settings, day_table(DAY)))
    before = fact_rows(settings.db_file)
    outcome = pipeline.process(claimed(settings, day_table(DAY)))
    assert outcome.status == "processed"
    assert fact_rows(settings.db_file) == before
    second = ledger(settings.db_file)[1]
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, 25)
    # Nothing is overwritten in the archive either.
    assert sorted(p.name for p in settings.processed.iterdir()) == [
        NAME, f"transactions_{DAY}~1.parquet"]


def corrected_day() -> pa.Table:
    """Day 1 with two amounts changed and the last three rows withdrawn."""
    table = replaced_at(replaced_at(day_table(DAY), "amount", 0, 1.5), "amount", 1, 2.25)
    return table.slice(0, 22)


@pytest.mark.parametrize(("mode", "expected_rows", "deleted"), [("merge", 25, 0),
                                                                 ("replace", 22, 3)])
def test_corrected_redrop(settings: Settings, fresh_db: sqlite3.Connection, mode: str,
                          expected_rows: int, deleted: int) -> None:
    mode_settings = Settings(**{**settings.__dict__, "write_mode": mode})
    pipeline = Pipeline(mode_settings, as_warehouse(fresh_db))
    settings.work.mkdir(parents=True)
    pipeline.process(claimed(settings, day_table(DAY)))
    first = {r[0]: r for r in fact_rows(settings.db_file)}
    outcome = pipeline.process(claimed(settings, corrected_day()))
    assert outcome.counts is not None
    assert (outcome.counts.inserted, outcome.counts.updated, outcome.counts.unchanged,
            outcome.counts.deleted) == (0, 2, 20, deleted)
    after = {r[0]: r for r in fact_rows(settings.db_file)}
    assert len(after) == expected_rows
    changed = {k for k in after if after[k] != first[k]}
    assert changed == {f"{DAY.replace('-', '')}-0000", f"{DAY.replace('-', '')}-0001"}
    assert after[f"{DAY.replace('-', '')}-0000"][2] == 1.5
    if mode == "replace":
        # The day in the fact table now equals the file.
        table = corrected_day()
        assert sorted(after) == sorted(str(k) for k in table.column("txn_id").to_pylist())
    assert ledger(settings.db_file)[1]["deleted"] == deleted


def test_a_symlink_is_quarantined_without_being_followed(settings: Settings,
                                                         pipeline: Pipeline) -> None:
    target = write_parquet(settings.work.parent / "elsewhere", day_table(DAY))
    link = settings.work / NAME
    link.symlink_to(target)
    outcome = pipeline.process(link)
    assert outcome.status == "failed"
    assert (settings.failed / NAME).is_symlink()
    assert target.exists()
    sidecar = json.loads((settings.failed / f"{NAME}.error.json").read_text())
    assert sidecar["stage"] == "open" and "symbolic link" in sidecar["message"]
    assert fact_rows(settings.db_file) == []


def test_a_failed_check_leaves_no_trace_in_staging_or_fact(settings: Settings,
                                                           pipeline: Pipeline) -> None:
    bad = replaced_at(day_table(DAY), "amount", 24, -1.0)
    assert pipeline.process(claimed(settings, bad)).status == "failed"
    conn = sqlite3.connect(settings.db_file)
    assert conn.execute("SELECT COUNT(*) FROM staging_transactions").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM fact_transactions").fetchone() == (0,)
    conn.close()


def test_a_locked_database_is_transient_and_keeps_the_file(settings: Settings) -> None:
    conn = store.connect(settings.db_file, busy_timeout_seconds=0.05)
    schema.init_schema(conn, TRANSACTIONS)
    settings.work.mkdir(parents=True)
    path = claimed(settings, day_table(DAY))
    blocker = sqlite3.connect(settings.db_file, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with capture_logs() as logs:
            outcome = Pipeline(settings, as_warehouse(conn)).process(path)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert outcome.status == "retry" and outcome.path == path and path.exists()
    assert not settings.failed.exists() or list(settings.failed.iterdir()) == []
    assert [e["event"] for e in logs] == ["file_retry_scheduled"]
    # Once the lock is gone the same file loads normally.
    assert Pipeline(settings, as_warehouse(conn)).process(path).status == "processed"
    conn.close()


def test_a_name_taken_in_failed_gets_a_suffix(settings: Settings, pipeline: Pipeline) -> None:
    for _ in range(2):
        (settings.work / NAME).write_bytes(b"not parquet")
        pipeline.process(settings.work / NAME)
    assert sorted(p.name for p in settings.failed.iterdir()) == sorted([
        NAME, f"{NAME}.error.json", f"transactions_{DAY}~1.parquet",
        f"transactions_{DAY}~1.parquet.error.json"])


def test_extra_columns_are_ignored_with_a_warning(settings: Settings,
                                                  pipeline: Pipeline) -> None:
    table = day_table(DAY).append_column("note", pa.array(["x"] * 25))
    with capture_logs() as logs:
        assert pipeline.process(claimed(settings, table)).status == "processed"
    [warning] = [e for e in logs if e["event"] == "extra_columns_ignored"]
    assert warning["columns"] == ["note"] and warning["log_level"] == "warning"


def test_an_unwritable_archive_retries_only_the_move(settings: Settings,
                                                     pipeline: Pipeline) -> None:
    settings.processed.rmdir()
    settings.processed.write_bytes(b"")  # a file where the archive directory should be
    path = claimed(settings, day_table(DAY))
    assert pipeline.process(path).status == "retry"
    assert path.exists() and len(fact_rows(settings.db_file)) == 25
    settings.processed.unlink()
    with capture_logs() as logs:
        outcome = pipeline.process(path)
    assert outcome.status == "processed" and outcome.path == settings.processed / NAME
    # One load, one ledger row, and the log reports the counts of that load.
    assert [(r["status"], r["inserted"]) for r in ledger(settings.db_file)] == [("processed", 25)]
    [line] = [e for e in logs if e["event"] == "file_processed"]
    assert (line["inserted"], line["unchanged"]) == (25, 0)


def test_a_sidecar_that_cannot_be_written_keeps_the_file_for_a_retry(
        settings: Settings, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards a found bug: the file was moved to failed/ first and left there without
    its sidecar when the sidecar could not be written (a full disk, say)."""
    def disk_full(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", disk_full)
    path = settings.work / NAME
    path.write_bytes(b"not parquet")
    assert pipeline.process(path).status == "retry"
    assert path.exists() and not (settings.failed / NAME).exists()
    monkeypatch.undo()
    with capture_logs() as logs:
        outcome = pipeline.process(path)
    assert outcome.status == "failed"
    assert (settings.failed / f"{NAME}.error.json").exists()
    assert [r["status"] for r in ledger(settings.db_file)] == ["failed"]  # one attempt, one row
    assert [e["event"] for e in logs] == ["file_failed"]


def test_a_load_committed_before_a_crash_is_not_repeated_on_resume(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    """A crash between COMMIT and the archive move: the restarted daemon (a new Pipeline,
    nothing in memory) finds the claim in the ledger and only archives the file."""
    settings.work.mkdir(parents=True)
    settings.processed.write_bytes(b"")  # the archive move fails: the file stays in work
    path = claimed(settings, day_table(DAY))
    assert Pipeline(settings, as_warehouse(fresh_db)).process(path).status == "retry"
    settings.processed.unlink()
    with capture_logs() as logs:
        outcome = Pipeline(settings, as_warehouse(fresh_db)).process(path)
    assert outcome.status == "processed"
    assert [e["event"] for e in logs] == ["file_already_loaded", "file_processed"]
    assert logs[-1]["inserted"] == 25
    assert [(r["status"], r["inserted"]) for r in ledger(settings.db_file)] == [("processed", 25)]


def test_a_staging_file_that_cannot_be_written_is_retried_not_quarantined(
        settings: Settings, pipeline: Pipeline, loaded: list[tuple[object, ...]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk under the staging file is the machine's fault, not the file's: the
    file stays in the work directory and loads once there is room."""
    real_mkstemp = tempfile.mkstemp
    prefixes: list[str] = []

    def full_for_staging(*args: Any, **kwargs: Any) -> Any:
        prefix = str(kwargs.get("prefix", args[1] if len(args) > 1 else ""))
        prefixes.append(prefix)
        if prefix.startswith(f"{settings.db_file.name}.staging-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", full_for_staging)
    path = claimed(settings, day_table(DAY))
    history = ledger(settings.db_file)
    with capture_logs() as logs:
        outcome = pipeline.process(path)
    assert outcome == Outcome("retry", path, feed="transactions")
    assert prefixes == [f"{settings.db_file.name}.staging-"]
    assert path.exists() and list(settings.failed.iterdir()) == []
    assert fact_rows(settings.db_file) == loaded
    assert ledger(settings.db_file) == history  # a retry is not an attempt's outcome
    assert staging_files(settings) == []
    [line] = logs
    assert {k: line[k] for k in ("event", "log_level", "file", "stage", "error_type")} == {
        "event": "file_retry_scheduled", "log_level": "error", "file": NAME,
        "stage": "stage", "error_type": "StagingUnavailable"}
    assert "No space left on device" in line["reason"]

    monkeypatch.undo()
    assert pipeline.process(path) == Outcome("processed", settings.processed / NAME,
                                             store.MergeCounts(25, 25, 0, 0, 0),
                                             feed="transactions")
    assert len(fact_rows(settings.db_file)) == len(loaded) + 25
    assert [r["status"] for r in ledger(settings.db_file)] == ["processed", "processed"]
    assert staging_files(settings) == []


@pytest.mark.parametrize("in_memory", [True, False], ids=["sorted-in-memory", "too-large"])
def test_a_file_with_unsorted_keys_loads_like_a_sorted_one(
        settings: Settings, fresh_db: sqlite3.Connection, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, in_memory: bool) -> None:
    """Unsorted keys are sorted in memory, and then load as sorted ones do: no count of
    repeats in the database, no sort there. A file too large for memory takes the other
    path: its repeats are counted in staging and the merge sorts them. The outcome is
    the same."""
    if not in_memory:
        monkeypatch.setattr(ordering, "MEMORY_BYTES", 0)
    table = corrected_day()
    order = list(range(table.num_rows))
    random.Random(3).shuffle(order)
    results = []
    for name, day in (("sorted", table), ("unsorted", table.take(order))):
        db_settings = registry.place(
            Settings(**{**settings.__dict__, "db": str(tmp_path / f"{name}.db")}))
        conn = store.connect(db_settings.db_file)
        try:
            schema.init_schema(conn, TRANSACTIONS)
            pipeline = Pipeline(db_settings, as_warehouse(conn))
            settings.work.mkdir(parents=True, exist_ok=True)
            pipeline.process(claimed(settings, day_table(DAY)))
            statements: list[str] = []
            conn.set_trace_callback(statements.append)
            outcome = pipeline.process(claimed(settings, day))
            conn.set_trace_callback(None)
        finally:
            conn.close()
        assert outcome.counts == store.MergeCounts(22, 0, 2, 20, 0)
        # Sorted keys are proven unique as they stream; unsorted ones too large to sort
        # in memory are counted once, not again by the merge (that count costs as much
        # as the merge itself).
        slow = name == "unsorted" and not in_memory
        assert sum("COUNT(DISTINCT" in s for s in statements) == slow
        assert sum("ORDER BY" in s and "INSERT INTO" in s for s in statements) == slow
        results.append([r[:4] + r[5:] for r in fact_rows(db_settings.db_file)])  # not loaded_at
    assert results[0] == results[1] and len(results[0]) == 25


@pytest.fixture
def undeletable_staging(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """`Path.unlink` refuses staging files (as a Windows-like lock or an odd mount
    would); yields the paths it refused."""
    real_unlink = Path.unlink
    refused: list[Path] = []

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if ".staging-" in self.name:
            refused.append(self)
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    return refused


def test_a_staging_file_that_cannot_be_deleted_does_not_fail_the_load(
        settings: Settings, pipeline: Pipeline, undeletable_staging: list[Path]) -> None:
    """Guards a found bug: the failed delete escaped after the commit, so a loaded file
    was quarantined and given a failed ledger row besides its processed one."""
    with capture_logs() as logs:
        outcome = pipeline.process(claimed(settings, day_table(DAY)))
    assert outcome.status == "processed" and outcome.path == settings.processed / NAME
    assert outcome.path.exists() and list(settings.failed.iterdir()) == []
    assert [(r["status"], r["inserted"]) for r in ledger(settings.db_file)] == [("processed", 25)]
    assert len(fact_rows(settings.db_file)) == 25
    [path] = undeletable_staging
    [warning] = [e for e in logs if e["event"] == "staging_cleanup_failed"]
    assert warning["log_level"] == "warning" and warning["path"] == str(path)
    assert "Permission denied" in warning["reason"]
    assert staging.leftover_files(settings.db_file) == [path]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == []


def test_a_staging_file_that_cannot_be_deleted_does_not_hide_why_a_file_failed(
        settings: Settings, pipeline: Pipeline, undeletable_staging: list[Path]) -> None:
    bad = replaced_at(day_table(DAY), "amount", 3, -1.0)
    with capture_logs() as logs:
        outcome = pipeline.process(claimed(settings, bad))
    assert outcome.status == "failed"
    sidecar = json.loads((settings.failed / f"{NAME}.error.json").read_text())
    assert (sidecar["error_type"], sidecar["stage"]) == ("ChecksFailed", "checks")
    assert "amount must be >= 0 (1 row): -1.0 at" in sidecar["message"]
    assert [r["status"] for r in ledger(settings.db_file)] == ["failed"]
    assert fact_rows(settings.db_file) == []
    [path] = undeletable_staging
    assert [e["path"] for e in logs if e["event"] == "staging_cleanup_failed"] == [str(path)]
    assert staging.leftover_files(settings.db_file) == [path]


def test_a_detach_failing_after_the_commit_does_not_fail_the_load(
        settings: Settings, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load has committed by the time the staging database is detached: a failure
    then is logged, and the file is archived as loaded, not quarantined."""
    real_attached = sqlite_warehouse.attached_staging

    @contextmanager
    def detach_fails(conn: sqlite3.Connection, path: Path, table: str) -> Iterator[int]:
        with real_attached(conn, path, table) as rows:
            yield rows
        raise sqlite3.OperationalError("database staging is locked")

    monkeypatch.setattr(sqlite_warehouse, "attached_staging", detach_fails)
    with capture_logs() as logs:
        outcome = pipeline.process(claimed(settings, day_table(DAY)))
    assert outcome.status == "processed" and outcome.path.exists()
    assert list(settings.failed.iterdir()) == []
    assert [(r["status"], r["inserted"]) for r in ledger(settings.db_file)] == [("processed", 25)]
    assert len(fact_rows(settings.db_file)) == 25
    [warning] = [e for e in logs if e["event"] == "staging_cleanup_failed"]
    assert (warning["log_level"], warning["file"]) == ("warning", NAME)
    assert warning["reason"] == "database staging is locked"
    assert staging_files(settings) == []


def _footer_overstating_rows(path: Path, rows: int) -> None:
    """An empty file whose footer claims `rows` rows: its thrift `num_rows` (field 3,
    an i64 of 0, just before the `row_groups` list header) patched in place."""
    pq.write_table(day_table(DAY).slice(0, 0), path)
    data = path.read_bytes()
    at = data.rfind(b"\x16\x00\x19")
    assert at > 0, "the footer's num_rows field was not found; pyarrow's layout changed"
    assert rows < 64  # a one-byte zigzag varint
    path.write_bytes(data[:at + 1] + bytes([rows * 2]) + data[at + 2:])
    assert pq.read_metadata(path).num_rows == rows


def test_a_footer_promising_rows_the_file_lacks_is_bad_input_not_an_empty_day(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    """Guards a found bug: such a file read as zero rows, and in replace mode its load
    deleted the whole day."""
    replace = Pipeline(Settings(**{**settings.__dict__, "write_mode": "replace"}),
                       as_warehouse(fresh_db))
    settings.work.mkdir(parents=True)
    assert replace.process(claimed(settings, day_table(DAY, 50))).status == "processed"
    before = fact_rows(settings.db_file)
    assert len(before) == 50
    path = settings.work / NAME
    _footer_overstating_rows(path, 50)
    outcome = replace.process(path)
    assert outcome.status == "failed" and outcome.path == settings.failed / NAME
    sidecar = json.loads((settings.failed / f"{NAME}.error.json").read_text())
    assert sidecar["stage"] == "read"
    assert sidecar["message"] == "the footer promises 50 rows but the row groups hold 0"
    assert "footer" in sidecar["reason"] and sidecar["hint"]
    assert fact_rows(settings.db_file) == before
    assert [r["status"] for r in ledger(settings.db_file)] == ["processed", "failed"]
    assert "footer promises 50 rows" in ledger(settings.db_file)[-1]["error"]
    assert staging_files(settings) == []


@pytest.mark.parametrize("where", ["not-utf8", "double-slash"])
def test_a_database_path_sqlite_uris_mishandled_loads(settings: Settings, tmp_path: Path,
                                                     where: str) -> None:
    """Guards a found bug: the URI was built from the path's text, so a directory name
    that is not UTF-8 could not be encoded, and `//x/...` became the URI authority."""
    db = awkward_db_path(tmp_path, where)
    conn = store.connect(db)
    try:
        schema.init_schema(conn, TRANSACTIONS)
        db_settings = registry.place(Settings(**{**settings.__dict__, "db": str(db)}))
        settings.work.mkdir(parents=True)
        outcome = Pipeline(db_settings, as_warehouse(conn)).process(
            claimed(settings, day_table(DAY, 5)))
    finally:
        conn.close()
    assert outcome.status == "processed"
    assert [r[:4] for r in fact_rows(db)] == [tuple(r.values())
                                              for r in day_table(DAY, 5).to_pylist()]
    assert [(r["status"], r["inserted"]) for r in ledger(db)] == [("processed", 5)]
    assert staging.leftover_files(db) == []


def test_amounts_resent_as_decimals_are_unchanged(settings: Settings,
                                                  pipeline: Pipeline) -> None:
    """Guards a found bug: decimal amounts were cast straight to float64, which lands
    one ulp off for some (894.06 read as 894.0600000000001), so re-sending a day's
    amounts as decimal(12, 2) counted those rows as updated."""
    day = replaced_at(day_table(DAY), "amount", 0, 894.06)
    pipeline.process(claimed(settings, day))
    before = fact_rows(settings.db_file)
    decimals = pa.array([decimal.Decimal(str(a)) for a in day.column("amount").to_pylist()],
                        pa.decimal128(12, 2))
    outcome = pipeline.process(claimed(settings, with_column(day, "amount", decimals)))
    assert outcome.counts == store.MergeCounts(25, 0, 0, 25, 0)
    assert fact_rows(settings.db_file) == before
    assert [(r["updated"], r["unchanged"]) for r in ledger(settings.db_file)] == [(0, 0), (0, 25)]


def test_progress_is_reported_after_each_staged_batch(settings: Settings,
                                                      fresh_db: sqlite3.Connection) -> None:
    """A long file shows life batch by batch, so the health check does not call its
    worker stuck (and systemd does not restart it into the same file forever)."""
    reports: list[int] = []
    pipeline = Pipeline(settings, as_warehouse(fresh_db),
                        progress=lambda: reports.append(len(reports)))
    settings.work.mkdir(parents=True)
    rows = 2 * reader.BATCH_ROWS + 10
    outcome = pipeline.process(claimed(settings, day_table(DAY, rows)))
    assert outcome.status == "processed"
    assert len(reports) == 3
