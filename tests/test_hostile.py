"""Hostile inputs: the corpus of bad files, and what the real daemon does with each.

`CORPUS` is the one table of bad input, one line per kind: bytes that are not Parquet,
Parquet cut short at several offsets, schemas off the contract, rows that break a
check, names that break the naming rule. Each must end in failed/ exactly once with a
sidecar, and a `file_failed` line of the same stage and reason; leave a failed ledger
row, the fact table untouched and the inbox and work directory empty; and the daemon
must load the next good file.

The table runs twice. Case by case through the `Pipeline` in-process, each on a fresh
database holding one loaded day, compared before and after. And all at once through one
real daemon process (`corpus_run`, module-scoped: the whole table costs one start-up,
not half a second of start-up per case), then checked case by case from its log, its
directories and its database. Cases shaped by the filesystem rather than by the bytes
(a directory or FIFO, symlinks, an unreadable file, a file deleted or rewritten before
its claim, a name already archived), and the one kind that is accepted (an extra
column), are named tests below the table, each on its own daemon.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from filedrop_etl.config import Settings, contract
from filedrop_etl.daemon.files import display_name
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.warehouse.sqlite import staging
from tests.conftest import (
    DaemonProcess,
    Daemons,
    day_table,
    drop,
    fact_rows,
    ledger,
    replaced_at,
    settings_under,
    wait_until,
    with_column,
    write_parquet,
)

Start = Callable[..., DaemonProcess]
Write = Callable[[Path, str], None]
"""Writes a hostile file at a path, for a run date (the date its content is about)."""


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def footer_start(data: bytes) -> int:
    """Where a Parquet file's footer (its thrift metadata) begins."""
    return len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def raw(data: bytes) -> Write:
    """These bytes, whatever the date."""
    def write(path: Path, day: str) -> None:
        path.write_bytes(data)
    return write


def rows(change: Callable[[pa.Table], pa.Table]) -> Write:
    """The day's generated rows, changed, as Parquet."""
    def write(path: Path, day: str) -> None:
        with path.open("wb") as sink:  # by handle: pyarrow cannot open a non-UTF-8 name
            pq.write_table(change(day_table(day)), sink)
    return write


def encoded(transform: Callable[[bytes], bytes]) -> Write:
    """The day's good Parquet file, its bytes transformed (cut short, corrupted, zipped)."""
    def write(path: Path, day: str) -> None:
        path.write_bytes(transform(parquet_bytes(day_table(day))))
    return write


def cut(keep: Callable[[bytes], int]) -> Write:
    """The day's good Parquet file cut short: only its first `keep(data)` bytes."""
    return encoded(lambda data: data[:keep(data)])


def at(column: str, value: object, row: int = 2) -> Write:
    """The day's rows with one value of `column` replaced."""
    return rows(lambda t: replaced_at(t, column, row, value))


def retyped(column: str, values: Callable[[pa.Table], pa.Array[Any] | list[Any]]) -> Write:
    """The day's rows with `column` replaced by other values, of their own type."""
    return rows(lambda t: with_column(t, column, values(t)))


def cast(column: str, to: pa.DataType) -> Write:
    """The day's rows with `column` cast to another type."""
    return retyped(column, lambda t: t[column].combine_chunks().cast(to))


def arrow_ipc(path: Path, day: str) -> None:
    """The day's rows as an Arrow IPC (Feather v2) file: a columnar file, not Parquet."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, contract.ARROW_SCHEMA) as writer:
        writer.write_table(day_table(day))
    path.write_bytes(sink.getvalue().to_pybytes())


def repeated_key(table: pa.Table) -> pa.Table:
    """Row 5 given row 4's key: a duplicate `txn_id` inside one file."""
    return replaced_at(table, "txn_id", 5, table["txn_id"][4].as_py())


def repeated_row(table: pa.Table) -> pa.Table:
    """The first row sent twice, identical: a repeat, not a harmless last-wins."""
    return pa.concat_tables([table, table.slice(0, 1)])


def halves(table: pa.Table) -> pa.Array[Any]:
    """Customer ids with fractions, as a float column."""
    return pc.add(table["customer_id"].combine_chunks().cast(pa.float64()), 0.5)


def numbers(table: pa.Table) -> list[int]:
    """Integer keys, where the contract wants text."""
    return list(range(table.num_rows))


def beyond_int64(table: pa.Table) -> pa.Array[Any]:
    """Unsigned customer ids too large for the int64 the contract stores."""
    return pa.array([2**63] * table.num_rows, pa.uint64())


def not_utf8_keys(table: pa.Table) -> pa.Array[Any]:
    """The day's keys with a byte that is not UTF-8 in each, as a careless writer can."""
    keys = [str(k).encode() + b"\xff" for k in table["txn_id"].to_pylist()]
    _, offsets, data = pa.array(keys, pa.binary()).buffers()
    assert offsets is not None and data is not None
    return pa.StringArray.from_buffers(len(keys), offsets, data)


def without(column: str) -> Write:
    """The day's rows without `column`."""
    return rows(lambda t: t.drop_columns([column]))


def amount_twice(table: pa.Table) -> pa.Table:
    return table.append_column("amount", table["amount"])


def all_null(table: pa.Table) -> pa.Array[Any]:
    """A column of Arrow's null type: no values, and no type to read them as."""
    return pa.nulls(table.num_rows)


def garbled_page(data: bytes) -> bytes:
    """The first page header overwritten, the footer left intact."""
    return data[:4] + b"\xff" * 16 + data[20:]


def same(table: pa.Table) -> pa.Table:
    return table


@dataclass(frozen=True)
class Case:
    """One kind of hostile input, and the stage and phrase its failure must name."""

    id: str
    write: Write
    stage: str
    phrase: str  # the sidecar's message and the log line's reason must contain it
    name: str | None = None  # the dropped name; by default the run date's file name

    def file_name(self, day: str) -> str:
        return self.name or contract.file_name_for(day)


DAY = "2026-02-10"  # the run date of the pipeline-level cases, and of the bad names
# pyarrow's words after ours: a file that is not Parquet is not called truncated.
NOT_PARQUET = "not a readable Parquet file: Parquet magic bytes not found"
TRUNCATED = "not a readable Parquet file: truncated, it begins as Parquet"
CSV = b"txn_id,customer_id,amount,run_date\n20260210-0000,1,2.0,2026-02-10\n"
# The Parquet magic at both ends and a plausible footer length, around no footer at all.
LYING_FOOTER = b"PAR1" + bytes(range(100)) + (50).to_bytes(4, "little") + b"PAR1"
LONG_NAME = "transactions_2026-02-10_" + "x" * 223 + ".parquet"  # 255 bytes, the most
# 255 bytes too, but the daemon's shortening (so that `.error.json` fits) cuts an `é` in two.
LONG_NAME_MULTIBYTE = "transactions_2026-02-10__" + "é" * 111 + ".parquet"
NOT_UTF8_NAME = os.fsdecode(b"transactions_2026-02-10\xff.parquet")
NEWLINE_NAME = "transactions_2026-02-10.parquet\n"
NO_SUCH_DAY_NAME = "transactions_2026-02-30.parquet"
MISMATCH = "does not match transactions_YYYY-MM-DD.parquet"
NOT_FINITE = "amount must be a finite number, not NaN or infinite (1 row)"

CORPUS: list[Case] = [
    # Not Parquet at all.
    Case("zero-byte", raw(b""), "read", "not a readable Parquet file: Parquet file size is 0"),
    Case("random-bytes", raw(random.Random(7).randbytes(4096)), "read", NOT_PARQUET),
    Case("csv", raw(CSV), "read", NOT_PARQUET),
    Case("arrow-ipc-file", arrow_ipc, "read", NOT_PARQUET),
    Case("gzipped-parquet", encoded(gzip.compress), "read", NOT_PARQUET),
    Case("magic-only", raw(b"PAR1"), "read", TRUNCATED),
    Case("garbage-between-magics", raw(LYING_FOOTER), "read", "Couldn't deserialize thrift"),
    # A good file cut short: inside the header magic, inside the first page, mid-data,
    # where the footer starts, inside the footer, inside its length, the last byte.
    Case("cut-in-header-magic", cut(lambda b: 2), "read", "Parquet file size is 2 bytes"),
    Case("cut-in-first-page", cut(lambda b: 64), "read", TRUNCATED),
    Case("cut-mid-data", cut(lambda b: footer_start(b) // 2), "read", TRUNCATED),
    Case("cut-at-footer", cut(footer_start), "read", TRUNCATED),
    Case("cut-in-footer", cut(lambda b: (footer_start(b) + len(b)) // 2), "read", TRUNCATED),
    Case("cut-in-footer-length", cut(lambda b: len(b) - 6), "read", TRUNCATED),
    Case("cut-last-byte", cut(lambda b: len(b) - 1), "read", TRUNCATED),
    # A footer that parses, over pages that do not.
    Case("garbage-page-header", encoded(garbled_page), "read", "Parquet data cannot be read"),
    # Parquet, but not the contract's columns.
    Case("missing-column", without("amount"), "schema", "missing column 'amount'"),
    Case("no-columns", rows(lambda t: t.select([])), "schema", "missing column 'txn_id'"),
    Case("column-twice", rows(amount_twice), "schema", "column 'amount' appears 2 times"),
    Case("amount-as-string", cast("amount", pa.string()), "schema", "column 'amount' is string"),
    Case("amount-null-type", retyped("amount", all_null), "schema", "column 'amount' is null"),
    Case("customer_id-fractions", retyped("customer_id", halves), "schema", "is double"),
    Case("customer_id-beyond-int64", retyped("customer_id", beyond_int64), "schema", "fit int64"),
    Case("txn_id-as-integer", retyped("txn_id", numbers), "schema", "column 'txn_id' is int64"),
    Case("run_date-as-timestamp", cast("run_date", pa.timestamp("s")), "schema", "is timestamp"),
    Case("txn_id-not-utf8", retyped("txn_id", not_utf8_keys), "read", "not valid UTF-8"),
    # The contract's columns, with rows that break a check.
    *[Case(f"null-{c}", at(c, None), "checks", f"{c} must not be null")
      for c in contract.COLUMN_NAMES],
    Case("duplicate-txn_id", rows(repeated_key), "checks", "txn_id must be unique (1 row)"),
    Case("repeated-row", rows(repeated_row), "checks", "txn_id must be unique (1 row)"),
    Case("negative-amount", at("amount", -0.01), "checks", "amount must be >= 0 (1 row): -0.01 at"),
    Case("nan-amount", at("amount", math.nan), "checks", f"{NOT_FINITE}: nan at"),
    Case("infinite-amount", at("amount", math.inf), "checks", f"{NOT_FINITE}: inf at"),
    Case("minus-infinite-amount", at("amount", -math.inf), "checks", f"{NOT_FINITE}: -inf at"),
    Case("run_date-not-the-name's", at("run_date", "2000-01-01"), "checks", "run_date must be 2"),
    Case("txn_id-of-another-day", at("txn_id", "20000101-0002"), "checks",
         "txn_id must start with 2"),
    Case("zero-rows", rows(lambda t: t.slice(0, 0)), "checks", "the file has no rows"),
    # Good content under a name that breaks the naming rule.
    Case("name-not-a-date", rows(same), "name", MISMATCH, "transactions_latest.parquet"),
    Case("name-impossible-date", rows(same), "name", "not a calendar date", NO_SUCH_DAY_NAME),
    Case("name-255-bytes", rows(same), "name", MISMATCH, LONG_NAME),
    Case("name-255-bytes-multibyte", rows(same), "name", MISMATCH, LONG_NAME_MULTIBYTE),
    Case("name-not-utf8", rows(same), "name", MISMATCH, NOT_UTF8_NAME),
    Case("name-ending-in-newline", rows(same), "name", MISMATCH, NEWLINE_NAME),
]
CASES = [pytest.param(case, id=case.id) for case in CORPUS]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_utf8(name: str) -> bool:
    """Whether a file name's bytes are UTF-8 (`os.fsdecode` maps other bytes to surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def assert_quarantined(case: Case, dropped: str, shown: str, line: Mapping[str, Any],
                       failed: Path, db: Path) -> None:
    """What one failed file must leave behind: the file in failed/ once, its sidecar, the
    log line and the ledger row, all naming the same stage and reason. `dropped` is the
    name it was dropped under, `shown` how the log names it."""
    assert line["event"] == "file_failed" and line["file"] == shown
    assert line["stage"] == case.stage, line["reason"]
    assert case.phrase in line["reason"]
    # Where it went (`failed_as`; a 255-byte name is shortened there so that its sidecar's
    # fits), and under no other name: no `~1` copy of it.
    [path] = [p for p in failed.iterdir() if display_name(str(p)) == line["failed_as"]]
    stem = display_name(path.name).removesuffix(".parquet")
    assert [p for p in failed.iterdir() if display_name(p.name).startswith(stem + "~")] == []
    assert path.name.endswith(".parquet") == shown.endswith(".parquet")
    # Shortened or not, a name is still UTF-8 if it was.
    assert is_utf8(path.name) == is_utf8(dropped)
    sidecar_path = path.with_name(path.name + ".error.json")
    assert len(os.fsencode(sidecar_path.name)) <= 255
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    assert {k: sidecar[k] for k in ("file", "stage", "reason")} == {
        "file": shown, "stage": case.stage, "reason": line["reason"]}
    assert case.phrase in sidecar["message"]
    assert sidecar["hint"] and sidecar["error_type"] and sidecar["attempted_at"]
    assert (sidecar["sha256"], sidecar["bytes"]) == (sha256_of(path), path.stat().st_size)
    if case.stage == "checks" and sidecar["checks"]:
        assert all(c["failed_rows"] > 0 and 0 < len(c["sample_keys"]) <= 5
                   for c in sidecar["checks"])
        # Each sample key with the value that broke the check, also in the reason.
        assert all(len(c["sample_values"]) == len(c["sample_keys"]) for c in sidecar["checks"])
        first = sidecar["checks"][0]
        assert f" at {first['sample_keys'][0]}" in line["reason"]
    [row] = [r for r in ledger(db) if r["file_name"] == shown]
    assert (row["status"], row["error"], row["sha256"]) == (
        "failed", f"{case.stage}: {line['reason']}", sidecar["sha256"])
    assert (row["inserted"], row["updated"], row["unchanged"], row["deleted"]) == (0, 0, 0, 0)


# --- The corpus through the pipeline, in-process, one fresh database per case ----------


@pytest.mark.parametrize("case", CASES)
def test_the_pipeline_quarantines_it_and_changes_nothing(
        case: Case, settings: Settings, pipeline: Pipeline,
        loaded: list[tuple[object, ...]]) -> None:
    path = settings.work / case.file_name(DAY)
    case.write(path, DAY)
    with capture_logs() as logs:
        outcome = pipeline.process(path)
    assert outcome.status == "failed" and outcome.path.parent == settings.failed
    [line] = [e for e in logs if e["event"] == "file_failed"]
    assert line["log_level"] == "error"
    assert_quarantined(case, path.name, display_name(path.name), line, settings.failed,
                       settings.db_file)
    assert fact_rows(settings.db_file) == loaded
    assert list(settings.work.iterdir()) == []
    assert staging.leftover_files(settings.db_file) == []


# --- The corpus through one real daemon ------------------------------------------------

BASE_DAY = "2026-02-09"  # loaded first: the fact table no bad file may touch
SERVING_DAY = "2026-02-28"  # dropped after the corpus: the daemon must still load it
FIRST_CASE_DAY = date(2026, 3, 1)  # each case gets its own day, so its own file name


@dataclass(frozen=True)
class CorpusRun:
    """One daemon's run over the whole corpus, frozen once the daemon has stopped."""

    daemon: DaemonProcess
    days: dict[str, str]  # case id: the run date of its file
    fact_before: list[tuple[Any, ...]]
    fact_after: list[tuple[Any, ...]]  # once every case had its outcome
    fact_served: list[tuple[Any, ...]]  # once the good file after them was loaded
    exit_code: int


OUTCOMES = ("file_processed", "file_failed", "file_vanished", "file_retry_scheduled")


def run_corpus(daemon: DaemonProcess, outbox: Path) -> CorpusRun:
    settings = daemon.settings
    drop(write_parquet(outbox, day_table(BASE_DAY), run_date=BASE_DAY), settings.inbox)
    daemon.wait_for("file_processed")
    before = fact_rows(settings.db_file)
    days = {case.id: (FIRST_CASE_DAY + timedelta(days=i)).isoformat()
            for i, case in enumerate(CORPUS)}
    for case in CORPUS:
        source = outbox / case.file_name(days[case.id])
        case.write(source, days[case.id])
        drop(source, settings.inbox)

    # Wait for one outcome per file, whichever it is: a case the daemon gets wrong then
    # fails its own test below, rather than this fixture for all of them.
    def all_ended() -> bool:
        if daemon.proc.poll() is not None:
            pytest.fail(f"the daemon exited ({daemon.proc.returncode}) amid the corpus")
        return sum(len(daemon.matching(event)) for event in OUTCOMES) >= len(CORPUS) + 1

    wait_until(all_ended, f"an outcome for each of {len(CORPUS)} files, see {daemon.log_path}")
    after = fact_rows(settings.db_file)
    drop(write_parquet(outbox, day_table(SERVING_DAY), run_date=SERVING_DAY), settings.inbox)
    daemon.wait_for("file_processed", file=contract.file_name_for(SERVING_DAY))
    served = fact_rows(settings.db_file)
    return CorpusRun(daemon, days, before, after, served, daemon.stop())


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusRun]:
    """The whole corpus dropped at once into one real daemon, which is then stopped."""
    root = tmp_path_factory.mktemp("corpus")
    daemons = Daemons(settings_under(root), root)
    try:
        yield run_corpus(daemons.start(), root / "outbox")
    finally:
        daemons.close()


@pytest.mark.parametrize("case", CASES)
def test_the_real_daemon_quarantines_it(case: Case, corpus_run: CorpusRun) -> None:
    daemon, settings = corpus_run.daemon, corpus_run.daemon.settings
    dropped = case.file_name(corpus_run.days[case.id])
    # Followed by its claim: the name in the work directory (and so in failed/) is the
    # dropped one, shortened if it left no room for `.error.json`.
    [claim] = daemon.matching("file_claimed", file=display_name(dropped))
    shown = claim["work_path"].rpartition("/")[2]
    assert [e["event"] for e in daemon.events()
            if e.get("file") == shown and e["event"] in OUTCOMES] == ["file_failed"]
    [line] = daemon.matching("file_failed", file=shown)
    assert line["level"] == "error"
    assert_quarantined(case, dropped, shown, line, settings.failed, settings.db_file)
    assert not os.path.lexists(settings.inbox / dropped)
    assert shown not in [display_name(p.name) for p in settings.work.iterdir()]
    # The fact table as a whole: unchanged from before the first case to after the last.
    assert corpus_run.fact_after == corpus_run.fact_before


def test_the_real_daemon_serves_on_after_the_corpus(corpus_run: CorpusRun) -> None:
    daemon, settings = corpus_run.daemon, corpus_run.daemon.settings
    assert corpus_run.fact_after == corpus_run.fact_before
    new = [r for r in corpus_run.fact_served if r not in corpus_run.fact_before]
    assert [r[:4] for r in new] == [tuple(r.values())
                                    for r in day_table(SERVING_DAY).to_pylist()]
    assert corpus_run.exit_code == 0
    [stopped] = daemon.matching("daemon_stopped")
    assert (stopped["processed"], stopped["failed"], stopped["retry"], stopped["vanished"],
            stopped["reason"]) == (2, len(CORPUS), 0, 0, "SIGTERM")
    assert [r["status"] for r in ledger(settings.db_file)].count("failed") == len(CORPUS)
    assert len(list(settings.failed.iterdir())) == 2 * len(CORPUS)  # each file and sidecar
    assert list(settings.inbox.iterdir()) == []
    assert list(settings.work.iterdir()) == []
    assert staging.leftover_files(settings.db_file) == []
    # Every error line is a file's failure: no crash, no unhandled exception.
    assert {e["event"] for e in daemon.events() if e["level"] in ("error", "critical")} == {
        "file_failed"}


# --- Shaped by the filesystem: each on its own daemon ------------------------------------

OTHER_DAY = "2026-02-20"


def outbox(tmp_path: Path) -> Path:
    """Where tests prepare files before dropping them: same filesystem, not watched."""
    path = tmp_path / "outbox"
    path.mkdir(exist_ok=True)
    return path


def assert_serving(daemon: DaemonProcess, tmp_path: Path, day: str = OTHER_DAY) -> None:
    """The daemon is alive and loads a good file dropped now, all of it."""
    before = len(fact_rows(daemon.settings.db_file))
    drop(write_parquet(outbox(tmp_path), day_table(day), run_date=day), daemon.settings.inbox)
    [line] = daemon.wait_for("file_processed", file=contract.file_name_for(day))
    assert line["inserted"] == 25 and daemon.proc.poll() is None
    assert len(fact_rows(daemon.settings.db_file)) == before + 25


def test_an_extra_column_is_ignored_with_a_warning(tmp_path: Path, start_daemon: Start) -> None:
    """The decision the README states: producers add columns, and that must not stop the
    loads; the column is not read, and the log says so."""
    daemon = start_daemon()
    table = day_table(DAY).append_column("note", pa.array(["free text"] * 25))
    drop(write_parquet(outbox(tmp_path), table, run_date=DAY), daemon.settings.inbox)
    [line] = daemon.wait_for("file_processed")
    [warning] = daemon.matching("extra_columns_ignored")
    assert {k: warning[k] for k in ("level", "file", "columns")} == {
        "level": "warning", "file": contract.file_name_for(DAY), "columns": ["note"]}
    assert line["rows"] == line["inserted"] == 25
    assert [r[:4] for r in fact_rows(daemon.settings.db_file)] == [
        tuple(r.values()) for r in day_table(DAY).to_pylist()]
    assert not daemon.matching("file_failed")


def test_a_directory_or_fifo_named_like_a_drop_is_skipped_once_and_left_alone(
        tmp_path: Path, start_daemon: Start) -> None:
    # Rescans every 0.1 s, so that the wait below spans several of them.
    daemon = start_daemon("--rescan-seconds", "0.1")
    inbox = daemon.settings.inbox
    directory = inbox / "x.parquet"
    directory.mkdir()
    inside = write_parquet(directory, day_table(DAY), run_date=DAY)  # never descended into
    fifo = inbox / contract.file_name_for("2026-02-12")
    os.mkfifo(fifo)  # a reader opening it would block
    daemon.wait_for("inbox_entry_skipped", count=2)
    assert_serving(daemon, tmp_path)
    # The claim is that later rescans do not warn again, and a rescan that finds nothing
    # logs nothing: there is no condition to poll, so let several of them pass.
    time.sleep(10 * 0.1)
    skipped = daemon.matching("inbox_entry_skipped")
    assert sorted(e["file"] for e in skipped) == sorted(["x.parquet", fifo.name])
    assert all(e["level"] == "warning" and e["reason"] and e["hint"] for e in skipped)
    assert directory.is_dir() and inside.exists() and fifo.is_fifo()
    assert not daemon.matching("file_claimed", file="x.parquet")
    assert not daemon.matching("file_claimed", file=fifo.name)
    assert list(daemon.settings.failed.iterdir()) == []
    assert [e for e in daemon.events() if e["level"] in ("error", "critical")] == []


def test_a_symlink_in_the_inbox_is_quarantined_without_being_read(
        tmp_path: Path, start_daemon: Start) -> None:
    """Never followed, whatever it points to: the link itself goes to failed/."""
    elsewhere = tmp_path / "elsewhere"
    target = write_parquet(elsewhere, day_table(DAY), run_date=DAY)
    content = target.read_bytes()
    # Its access time set before its modification time: under relatime (and strictatime)
    # any read of it would move the access time, so an unchanged one proves none.
    mtime_ns = target.stat().st_mtime_ns
    os.utime(target, ns=(mtime_ns - 10**9, mtime_ns))
    fifo = elsewhere / "pipe"
    os.mkfifo(fifo)
    targets = {"2026-02-12": target, "2026-02-13": fifo, "2026-02-14": elsewhere,
               "2026-02-15": elsewhere / "missing.parquet"}
    daemon = start_daemon()
    for day, points_to in targets.items():
        staged = outbox(tmp_path) / contract.file_name_for(day)
        staged.symlink_to(points_to)
        drop(staged, daemon.settings.inbox)
    loop = daemon.settings.inbox / contract.file_name_for("2026-02-16")
    loop.symlink_to(loop.name)  # a link to itself
    lines = daemon.wait_for("file_failed", count=len(targets) + 1)
    assert all((e["stage"], e["error_type"]) == ("open", "BadInput") for e in lines)
    assert all("symbolic link" in e["reason"] for e in lines)
    for day, points_to in {**targets, "2026-02-16": Path(loop.name)}.items():
        quarantined = daemon.settings.failed / contract.file_name_for(day)
        assert quarantined.is_symlink() and quarantined.readlink() == points_to
        sidecar = json.loads(Path(f"{quarantined}.error.json").read_text())
        assert (sidecar["stage"], sidecar["sha256"], sidecar["bytes"]) == ("open", None, None)
        assert "never follows links" in sidecar["message"] and sidecar["hint"]
    assert target.stat().st_atime_ns == mtime_ns - 10**9  # before this test reads it
    assert target.read_bytes() == content and fifo.is_fifo()
    assert [r["status"] for r in ledger(daemon.settings.db_file)] == ["failed"] * (len(targets) + 1)
    assert fact_rows(daemon.settings.db_file) == []
    assert_serving(daemon, tmp_path)


@pytest.fixture
def obeying_file_modes(tmp_path: Path) -> list[str]:
    """A command prefix under which the daemon cannot read a file its mode forbids.

    Root reads any file, and CI runs as root. A switch to an unprivileged user is not
    open here (the interpreter lives under /root, 0700), so root runs the daemon without
    the two capabilities that let it ignore file modes: CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH, dropped from its bounding set. A probe proves it works;
    otherwise the test is skipped.
    """
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, and setpriv (util-linux) is not installed")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = tmp_path / "probe"
    probe.write_bytes(b"secret")
    probe.chmod(0)
    reader = "import sys\ntry:\n    open(sys.argv[1], 'rb')\nexcept PermissionError:\n" \
             "    sys.exit(13)"
    result = subprocess.run([*prefix, sys.executable, "-c", reader, str(probe)],
                            capture_output=True, text=True, check=False)
    probe.unlink()
    if result.returncode != 13:
        pytest.skip(f"file modes are not enforced here (probe exit {result.returncode}: "
                    f"{result.stderr.strip()[-200:]})")
    return prefix


def test_a_file_without_read_permission_is_quarantined(
        tmp_path: Path, start_daemon: Start, obeying_file_modes: list[str]) -> None:
    daemon = start_daemon(wrapper=obeying_file_modes)
    name = contract.file_name_for(DAY)
    unreadable = write_parquet(outbox(tmp_path), day_table(DAY), run_date=DAY)
    unreadable.chmod(0)
    drop(unreadable, daemon.settings.inbox)
    [line] = daemon.wait_for("file_failed", file=name)
    assert (line["stage"], line["error_type"]) == ("open", "BadInput")
    assert "permission denied" in line["reason"]
    quarantined = daemon.settings.failed / name
    assert quarantined.exists() and quarantined.stat().st_mode & 0o777 == 0
    sidecar = json.loads(Path(f"{quarantined}.error.json").read_text())
    assert (sidecar["stage"], sidecar["reason"]) == ("open", line["reason"])
    assert "permission denied" in sidecar["message"] and sidecar["hint"]
    assert [(r["status"], r["file_name"]) for r in ledger(daemon.settings.db_file)] == [
        ("failed", name)]
    assert fact_rows(daemon.settings.db_file) == []
    assert_serving(daemon, tmp_path)


# A settle time long enough that the test's own step (delete, rewrite) surely lands
# inside it, even on a loaded machine; neither test waits it out.
LONG_SETTLE = ("--settle-seconds", "3")


def test_a_file_deleted_before_its_claim_is_reported_vanished(
        tmp_path: Path, start_daemon: Start) -> None:
    daemon = start_daemon(*LONG_SETTLE)
    name = contract.file_name_for(DAY)
    path = daemon.settings.inbox / name
    # Written in place, and incomplete: it waits out the settle time before its claim.
    path.write_bytes(parquet_bytes(day_table(DAY))[:100])
    daemon.wait_for("file_detected", file=name)
    path.unlink()
    [line] = daemon.wait_for("file_vanished", file=name, timeout=10)
    assert line["level"] == "info"
    assert not daemon.matching("file_claimed", file=name)
    assert list(daemon.settings.failed.iterdir()) == []
    assert ledger(daemon.settings.db_file) == [] and fact_rows(daemon.settings.db_file) == []
    assert_serving(daemon, tmp_path)
    assert daemon.stop() == 0
    [stopped] = daemon.matching("daemon_stopped")
    assert stopped["vanished"] == 1


def test_a_file_rewritten_while_it_settles_loads_its_final_content_once(
        tmp_path: Path, start_daemon: Start) -> None:
    daemon = start_daemon(*LONG_SETTLE)
    name = contract.file_name_for(DAY)
    first, final = day_table(DAY, rows=10, seed=1), day_table(DAY, rows=25, seed=2)
    final_bytes = parquet_bytes(final)
    with (daemon.settings.inbox / name).open("wb") as sink:
        # A whole first version, its writer still holding the file open...
        sink.write(parquet_bytes(first))
        sink.flush()
        daemon.wait_for("file_detected", file=name)
        # ...then rewritten in place by the same writer, and closed.
        sink.seek(0)
        sink.truncate()
        sink.write(final_bytes)
    [line] = daemon.wait_for("file_processed", file=name)
    assert (line["rows"], line["inserted"]) == (25, 25)
    assert line["sha256"] == hashlib.sha256(final_bytes).hexdigest()
    assert len(daemon.matching("file_claimed", file=name)) == 1
    assert not daemon.matching("file_failed")
    assert (daemon.settings.processed / name).read_bytes() == final_bytes
    assert [r[:4] for r in fact_rows(daemon.settings.db_file)] == [
        tuple(r.values()) for r in final.to_pylist()]
    assert_serving(daemon, tmp_path)
    assert len(daemon.matching("file_processed", file=name)) == 1


@pytest.mark.parametrize("taken", ["processed", "failed", "failed-sidecar-only"])
def test_a_name_already_archived_gets_a_suffix_and_the_old_file_is_untouched(
        tmp_path: Path, start_daemon: Start, taken: str) -> None:
    daemon = start_daemon()
    settings = daemon.settings
    name, suffixed = contract.file_name_for(DAY), f"transactions_{DAY}~1.parquet"
    archive = settings.processed if taken == "processed" else settings.failed
    archive.mkdir(parents=True, exist_ok=True)
    old: dict[Path, bytes] = {}
    if taken != "failed-sidecar-only":
        old[archive / name] = b"an older file of the same name"
    if taken != "processed":  # a sidecar alone still holds its name: it is never replaced
        old[archive / f"{name}.error.json"] = b'{"stage": "an older failure"}\n'
    for path, content in old.items():
        path.write_bytes(content)
    good = taken == "processed"
    staged = outbox(tmp_path) / name
    content = parquet_bytes(day_table(DAY)) if good else b"not parquet"
    staged.write_bytes(content)
    drop(staged, settings.inbox)
    [line] = daemon.wait_for("file_processed" if good else "file_failed", file=name)
    assert line["archived_as" if good else "failed_as"] == str(archive / suffixed)
    assert {p: p.read_bytes() for p in old} == old
    new = archive / suffixed
    assert new.read_bytes() == content
    if good:
        assert not Path(f"{new}.error.json").exists()
        assert len(fact_rows(settings.db_file)) == 25
    else:
        # The new sidecar is beside the new file, and describes it.
        sidecar = json.loads(Path(f"{new}.error.json").read_text())
        assert (sidecar["file"], sidecar["stage"]) == (name, "read")
        assert sidecar["sha256"] == sha256_of(new) and sidecar["reason"] == line["reason"]
        assert fact_rows(settings.db_file) == []
    assert sorted(p.name for p in archive.iterdir()) == sorted(
        [*(p.name for p in old), suffixed, *([] if good else [f"{suffixed}.error.json"])])
    assert_serving(daemon, tmp_path)
