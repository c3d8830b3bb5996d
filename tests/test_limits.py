"""Inputs too large to load: values SQLite cannot store, the operator's size and row
limits, and a file so large that hashing it takes a while.

A value or row over SQLite's limit (SQLITE_MAX_LENGTH, 1,000,000,000 bytes) is bad input,
refused before it reaches the staging driver, naming the column and the limit. The real
probe's file is in tests/data: one row whose `txn_id` is 1,000,000,001 bytes, 31 KB with
zstd (made with pyarrow 26: a `large_string` array of one value, `compression="zstd",
compression_level=1`; writing it takes 20 s and 8 GB, so it is kept, not made).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filedrop_etl.config import ConfigError, Settings, contract
from filedrop_etl.daemon import files
from filedrop_etl.daemon.errors import BadInput
from filedrop_etl.daemon.load import reader
from filedrop_etl.daemon.load.pipeline import Pipeline
from tests.backends import load_settings
from tests.conftest import (
    DaemonProcess,
    day_table,
    drop,
    fact_rows,
    ledger,
    with_column,
    write_parquet,
)

Start = Callable[..., DaemonProcess]
DATA = Path(__file__).parent / "data"
DAY = "2026-02-10"
NAME = contract.file_name_for(DAY)


def outbox(tmp_path: Path) -> Path:
    path = tmp_path / "outbox"
    path.mkdir(exist_ok=True)
    return path


def load_next_day(daemon: DaemonProcess, tmp_path: Path, day: str = "2026-02-11") -> None:
    """The daemon is alive and loads the next good file."""
    drop(write_parquet(outbox(tmp_path), day_table(day), run_date=day), daemon.settings.inbox)
    [line] = daemon.wait_for("file_processed", file=contract.file_name_for(day))
    assert line["inserted"] == 25 and daemon.proc.poll() is None


def test_a_value_longer_than_sqlite_stores_fails_naming_the_column_and_the_limit(
        tmp_path: Path, start_daemon: Start) -> None:
    """Guards a found bug: the staging driver failed on the value mid-stream, the worker
    crashed on the `GeneratorExit` that closed its stream, and every restart resumed the
    file first and crashed again."""
    daemon = start_daemon()
    shutil.copy(DATA / "txn_id_over_sqlite_limit.parquet", outbox(tmp_path) / NAME)
    drop(outbox(tmp_path) / NAME, daemon.settings.inbox)
    [line] = daemon.wait_for("file_failed", file=NAME, timeout=120)
    assert (line["stage"], line["error_type"]) == ("read", "ValueTooLarge")
    assert ("column 'txn_id' holds a value of 1,000,000,001 bytes" in line["reason"]
            and "at most 1,000,000,000 bytes" in line["reason"])
    [row] = ledger(daemon.settings.db_file)
    assert row["status"] == "failed" and "txn_id" in row["error"]
    assert (daemon.settings.failed / f"{NAME}.error.json").exists()
    assert not daemon.matching("worker_crashed")
    load_next_day(daemon, tmp_path)


def batch_of(keys: list[str]) -> pa.Table:
    table = day_table(DAY, rows=len(keys))
    return with_column(table, "txn_id", pa.array(keys, pa.large_string()))


@pytest.mark.parametrize(("keys", "says"), [
    # One value over the limit, in the second batch: its row is counted from the file's start.
    (["20260210-0001", "20260210-" + "x" * 300],
     "column 'txn_id' holds a value of 309 bytes (row 1)"),
    # Each value fits; the row as a whole does not.
    (["20260210-" + "x" * 150], "row 0 needs 425 bytes"),
])
def test_a_value_or_row_over_the_limit_is_refused_before_it_is_cast(
        tmp_path: Path, keys: list[str], says: str) -> None:
    path = tmp_path / NAME
    pq.write_table(batch_of(keys), path, row_group_size=1)
    with path.open("rb") as handle:
        source = reader.open_parquet(handle, contract.TRANSACTIONS, max_length=300)
        with pytest.raises(reader.ValueTooLarge, match=r"at most 300 bytes") as refused:
            list(source.batches())
    assert says in refused.value.message


def test_values_within_the_limit_pass_whatever_their_string_type(tmp_path: Path) -> None:
    table = day_table(DAY)
    for kind in (pa.string(), pa.large_string(), pa.string_view()):
        typed = with_column(table, "txn_id",
                            pa.array(table.column("txn_id").to_pylist(), kind))
        path = tmp_path / f"{kind}.parquet"
        pq.write_table(typed.set_column(3, "run_date",
                                        table.column("run_date").dictionary_encode()), path)
        with path.open("rb") as handle:
            source = reader.open_parquet(handle, contract.TRANSACTIONS, max_length=300)
            batches = list(source.batches())
        assert sum(b.num_rows for b in batches) == 25


@pytest.mark.parametrize(("value", "expected"), [
    ("off", None), ("", None), (0, None), (4096, 4096), ("4096", 4096), ("2K", 2048),
    ("512M", 512 << 20), ("1.5G", 3 << 29), ("10g", 10 << 30), ("1T", 1 << 40)])
def test_max_file_bytes_takes_bytes_or_a_size_with_a_unit(value: object,
                                                          expected: int | None) -> None:
    settings = load_settings({"max_file_bytes": value}, environ={})
    assert settings.max_file_bytes == expected


@pytest.mark.parametrize("value", ["-1", "lots", "G", "0.1K", "1.5", True])
def test_a_malformed_limit_is_refused_naming_the_setting(value: object) -> None:
    with pytest.raises(ConfigError, match=r"invalid max_file_rows from flag"):
        load_settings({"max_file_rows": value}, environ={})


def test_max_resumes_must_be_a_whole_number_from_the_environment() -> None:
    assert load_settings(environ={"ETL_MAX_RESUMES": "5"}).max_resumes == 5
    with pytest.raises(ConfigError, match="ETL_MAX_RESUMES"):
        load_settings(environ={"ETL_MAX_RESUMES": "0"})


def test_files_over_the_operators_limits_fail_unread_and_the_rest_load(
        tmp_path: Path, start_daemon: Start) -> None:
    daemon = start_daemon("--max-file-bytes", "64K", "--max-file-rows", "1000")
    big = write_parquet(outbox(tmp_path), day_table(DAY, rows=20_000), run_date=DAY)
    assert big.stat().st_size > 64 << 10
    drop(big, daemon.settings.inbox)
    [line] = daemon.wait_for("file_failed", file=NAME)
    assert (line["stage"], line["sha256"]) == ("open", None)  # refused before the hash
    assert f"more than max_file_bytes ({64 << 10:,})" in line["reason"]
    assert "raise max_file_bytes" in line["reason"]

    many = contract.file_name_for("2026-02-12")
    # Narrow rows, so that the file is under the byte limit and over the row limit.
    table = day_table("2026-02-12", rows=2000)
    table = with_column(table, "customer_id", pa.array([1] * 2000, pa.int64()))
    drop(write_parquet(outbox(tmp_path), table, run_date="2026-02-12"), daemon.settings.inbox)
    [line] = daemon.wait_for("file_failed", file=many)
    assert line["stage"] == "read" and "2,000 rows, more than max_file_rows (1,000)" in line[
        "reason"]
    load_next_day(daemon, tmp_path)
    assert len(fact_rows(daemon.settings.db_file)) == 25


def test_hashing_reports_progress_every_so_many_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big"
    with path.open("wb") as handle:
        handle.truncate(files.PROGRESS_BYTES * 3 + 5)
    ticks: list[None] = []
    with path.open("rb") as handle:
        _, size = files.sha256_of(handle, lambda: ticks.append(None))
    assert size == files.PROGRESS_BYTES * 3 + 5 and len(ticks) == 3


def test_a_huge_file_shows_the_worker_alive_while_it_is_hashed(
        settings: Settings, pipeline: Pipeline) -> None:
    """Guards a found bug: a 10 GB `truncate -s` file was hashed with no sign of life, so
    /healthz answered 503 and the systemd watchdog restarted the daemon into the same
    file. The worker's health is its ticks (`Watcher.stuck`); the pipeline's `progress`
    is what ticks it, so it must be called while the file is hashed, not only per batch."""
    ticks: list[None] = []
    pipeline.progress = lambda: ticks.append(None)
    claimed = settings.work / NAME
    with claimed.open("wb") as handle:
        handle.truncate(files.PROGRESS_BYTES * 4)  # sparse: no Parquet, refused once hashed
    outcome = pipeline.process(claimed)
    assert outcome.status == "failed"
    assert len(ticks) == 4
    [row] = ledger(settings.db_file)
    assert row["bytes"] == files.PROGRESS_BYTES * 4 and row["sha256"] is not None


def test_a_file_that_grows_past_max_file_bytes_while_hashed_is_read_no_further(
        settings: Settings, pipeline: Pipeline) -> None:
    """Guards a found bug (issue 21): the limit was held against the size taken at the
    open only, so a sparse file that grew after it (here to a gigabyte of holes, from the
    first progress tick of its hash) was read to its end. It fails at `hash`, unhashed,
    its rest unread: one tick of progress, not sixteen."""
    limit = files.PROGRESS_BYTES + (32 << 20)
    pipeline.settings = replace(settings, max_file_bytes=limit)
    claimed = settings.work / NAME
    with claimed.open("wb") as handle:
        handle.truncate(files.PROGRESS_BYTES + 1)  # under the limit when it is opened
    ticks: list[None] = []

    def grow() -> None:
        ticks.append(None)
        os.truncate(claimed, 1 << 30)

    pipeline.progress = grow
    outcome = pipeline.process(claimed)
    assert outcome.status == "failed" and len(ticks) == 1
    [row] = ledger(settings.db_file)
    assert (row["sha256"], row["bytes"]) == (None, None)
    assert row["error"].startswith(f"hash: the file grew while it was read, to more than "
                                   f"max_file_bytes ({limit:,} bytes)")
    sidecar = json.loads((settings.failed / f"{NAME}.error.json").read_text())
    assert (sidecar["stage"], sidecar["error_type"]) == ("hash", "BadInput")


def test_hashing_reads_at_most_one_byte_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    with path.open("wb") as handle:
        handle.truncate(1 << 30)
    with path.open("rb") as handle:
        with pytest.raises(BadInput, match=r"more than max_file_bytes \(4,096 bytes\)"):
            files.sha256_of(handle, limit=4096)
        assert handle.tell() == 4097
    os.truncate(path, 4096)
    with path.open("rb") as handle:  # a file of the limit's size is within it
        assert files.sha256_of(handle, limit=4096) == (hashlib.sha256(bytes(4096)).hexdigest(),
                                                       4096)


def _address_space_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmSize:")))


def test_running_out_of_memory_is_retried_not_blamed_on_the_file(
        tmp_path: Path, start_daemon: Start) -> None:
    """Guards a found bug: SQLite's NOMEM reaches Python as `MemoryError`, not as an
    `sqlite3.Error`, so a good file was quarantined as "a bug in the daemon" with an empty
    reason. The daemon's address space is capped (a soft RLIMIT_AS a little above what it
    maps while idle) while a 1M-row file loads, then the cap is lifted. Its keys are
    shuffled, so that the load sorts them in memory: since the fact table became one
    B-tree, SQLite's page cache makes do with what it gets, and Arrow's allocation for
    the sort is what fails (`ArrowMemoryError`, a `MemoryError` too)."""
    daemon = start_daemon()
    pid = daemon.proc.pid
    table = day_table(DAY, rows=1_000_000)
    prepared = write_parquet(outbox(tmp_path), table.take(
        random.Random(5).sample(range(table.num_rows), table.num_rows)), run_date=DAY)
    _, hard = resource.prlimit(pid, resource.RLIMIT_AS)
    resource.prlimit(pid, resource.RLIMIT_AS, ((_address_space_kib(pid) + 20_000) << 10, hard))
    try:
        drop(prepared, daemon.settings.inbox)
        line = daemon.wait_for("file_retry_scheduled", file=NAME)[0]
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, (hard, hard))
    assert (line["error_type"], line["stage"]) == ("ArrowMemoryError", "stage")
    assert line["reason"].startswith("malloc of size")
    assert "memory" in line["hint"] and daemon.proc.poll() is None
    assert not daemon.matching("file_failed")
    [processed] = daemon.wait_for("file_processed", file=NAME)
    assert processed["inserted"] == 1_000_000
    assert list(daemon.settings.failed.iterdir()) == []
    assert [r["status"] for r in ledger(daemon.settings.db_file)] == ["processed"]
