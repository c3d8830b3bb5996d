"""Failure reasons say each rule in words (issue 24, item 11), the ids kept as data.

`amount must be >= 0 (2 rows): -5.0 at 20261121-0008` where the reason said
`min:amount (2 rows): '-5.0' at ...`: every rule of the closed set has its words, the
reason, the sidecar, the `file_failed` line, `status` and `show` carry them, and the id
(`min:amount`) stays in the sidecar's and the log line's `checks`, which tooling reads.
A missing column's diff names the undeclared columns like it, on the built-in feed too.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from filedrop_etl.config import Settings
from filedrop_etl.config.check_words import rule_words
from filedrop_etl.config.contract import CHECK_KINDS, Check
from tests import backends
from tests.conftest import DaemonProcess, day_table, drop, replaced_at, write_parquet
from tools.harness import process

Start = Callable[..., DaemonProcess]
DAY = "2026-11-21"
NAME = f"transactions_{DAY}.parquet"


def test_every_rule_has_its_words() -> None:
    rules = {
        Check("not_null", "customer_id"): "customer_id must not be null",
        Check("unique", "txn_id"): "txn_id must be unique",
        Check("unique", "order_date", over=("order_date", "order_id")):
            "(order_date, order_id) must be unique together",
        Check("min", "amount", 0.0): "amount must be >= 0",
        Check("max", "qty", 1000): "qty must be <= 1000",
        Check("min", "placed_at", "2026-01-01T00:00:00"):
            "placed_at must be >= 2026-01-01T00:00:00",
        Check("finite", "amount"): "amount must be a finite number, not NaN or infinite",
        Check("one_of", "channel", values=("web", "store")): "channel must be one of web, store",
        Check("one_of", "paid", values=(True,)): "paid must be one of true",
        Check("matches", "sku", "SKU-[0-9]{5}"):
            "sku must match the pattern SKU-[0-9]{5} (the whole value)",
        Check("max_length", "note", 20): "note must be at most 20 characters",
        Check("equals_file_date", "run_date"): "run_date must be 2026-11-11",
        Check("file_date_prefix", "txn_id"): "txn_id must start with 20261111-",
    }
    assert {c.kind for c in rules} == set(CHECK_KINDS)
    for check, words in rules.items():
        assert rule_words(check, "2026-11-11") == words, check.name
    # Before any file (a feed described), the file-date rules name the file's date.
    assert rule_words(Check("equals_file_date", "run_date")) == \
        "run_date must be the date in the file name"
    assert rule_words(Check("file_date_prefix", "txn_id")) == \
        "txn_id must start with the file's date as YYYYMMDD-"


def where(settings: Settings) -> list[str]:
    return ["--inbox", str(settings.inbox), "--processed", str(settings.processed),
            "--failed", str(settings.failed), "--db", backends.db_arg(settings)]


def operator(settings: Settings, *args: str) -> str:
    """What an operator's command prints on stdout."""
    done = subprocess.run(process.daemon_argv(*args, *where(settings)), capture_output=True,
                          text=True, timeout=60, check=False, env=process.clean_environ())
    return done.stdout


def test_a_failed_files_reasons_say_each_rule_in_words(
        tmp_path: Path, settings: Settings, start_daemon: Start) -> None:
    table = day_table(DAY)
    table = replaced_at(table, "amount", 3, -5.0)
    table = replaced_at(table, "amount", 8, -0.5)
    table = replaced_at(table, "run_date", 4, "2026-11-11")
    table = replaced_at(table, "txn_id", 5, "20261109-8")
    drop(write_parquet(tmp_path / "out", table, NAME), settings.inbox)
    daemon = start_daemon("--once", wait_started=False)
    assert daemon.proc.wait(timeout=60) == 1
    [line] = daemon.matching("file_failed", file=NAME)
    keys = table.column("txn_id").to_pylist()
    expected = [
        ("min:amount", "amount must be >= 0",
         f"amount must be >= 0 (2 rows): -5.0 at {keys[3]}, -0.5 at {keys[8]}"),
        ("equals_file_date:run_date", f"run_date must be {DAY}",
         f"run_date must be {DAY} (1 row): '2026-11-11' at {keys[4]}"),
        ("file_date_prefix:txn_id", "txn_id must start with 20261121-",
         "txn_id must start with 20261121- (1 row): '20261109-8' at 20261109-8"),
    ]
    # The log line: the words in its reason, the ids as data in its checks.
    assert [(c["check"], c["rule"]) for c in line["checks"]] == [e[:2] for e in expected]
    message = "data-quality checks failed: " + "; ".join(e[2] for e in expected)
    assert line["reason"].startswith(message + " (correct the rows")
    assert ":amount" not in line["reason"] and ":run_date" not in line["reason"]
    sidecar = json.loads((settings.failed / f"{NAME}.error.json").read_text())
    assert [(c["check"], c["rule"], c["failed_rows"]) for c in sidecar["checks"]] == [
        ("min:amount", "amount must be >= 0", 2),
        ("equals_file_date:run_date", f"run_date must be {DAY}", 1),
        ("file_date_prefix:txn_id", "txn_id must start with 20261121-", 1)]
    assert (sidecar["message"], sidecar["reason"]) == (message, line["reason"])
    # What an operator reads: `status`'s failed-files table and `show`'s lines.
    status = operator(settings, "status")
    assert "checks  data-quality checks failed: amount must be >= 0 (2 rows)" in status
    show = operator(settings, "show", NAME)
    assert [s for s in show.splitlines() if s.startswith("check ")] == [
        f"check      {e[2]}" for e in expected]


def test_a_missing_column_of_the_built_in_feed_names_the_undeclared_one_like_it(
        tmp_path: Path, settings: Settings, start_daemon: Start) -> None:
    table = day_table(DAY)
    renamed = table.rename_columns(["customer" if n == "customer_id" else n
                                    for n in table.column_names])
    assert isinstance(renamed, pa.Table)
    drop(write_parquet(tmp_path / "out", renamed, NAME), settings.inbox)
    daemon = start_daemon("--once", wait_started=False)
    assert daemon.proc.wait(timeout=60) == 1
    [line] = daemon.matching("file_failed", file=NAME)
    problem = ("missing column 'customer_id' (expected an integer; the file has undeclared "
               "'customer')")
    assert line["stage"] == "schema" and problem in line["reason"]
    sidecar = json.loads((settings.failed / f"{NAME}.error.json").read_text())
    assert sidecar["schema_problems"] == [problem]
