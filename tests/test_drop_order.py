"""One day dropped under several names: the later drop is applied last, and wins.

Guards a found bug: the README promised name order, but the order depended on timing,
and by name `~10` sorts before `~2`, so in replace mode an older drop could be applied
last. The rule now: a day's drops are applied in the order they were dropped (the time
the filesystem recorded for the rename, or for the last write of a file written in
place); drops of equal time by their `~N` as a number; and a later drop waits while an
earlier one is still settling. Each case runs a real daemon in both write modes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from filedrop_etl.config import Settings
from tests.conftest import DaemonProcess, day_table, drop, fact_rows, write_parquet

Start = Callable[..., DaemonProcess]
DAY = "2026-02-10"
FIRST = f"transactions_{DAY}.parquet"


def version(rows: int, seed: int) -> pa.Table:
    """A version of the day: its own row count (replace mode tells them apart by it) and
    its own amounts (merge mode does)."""
    return day_table(DAY, rows=rows, seed=seed)


def dropped(tmp_path: Path, settings: Settings, table: pa.Table, name: str) -> None:
    drop(write_parquet(tmp_path / "outbox", table, name=name), settings.inbox)


def expected_rows(mode: str, applied: list[pa.Table]) -> list[tuple[object, ...]]:
    """The fact rows (data columns) after applying `applied` in order."""
    rows: dict[object, tuple[object, ...]] = {}
    for table in applied:
        if mode == "replace":
            rows = {}
        rows.update({r["txn_id"]: tuple(r.values()) for r in table.to_pylist()})
    return [rows[key] for key in sorted(rows)]  # type: ignore[type-var]


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_drops_of_one_day_found_together_are_applied_in_the_order_they_were_dropped(
        tmp_path: Path, settings: Settings, start_daemon: Start, mode: str) -> None:
    drops = [(f"transactions_{DAY}~2.parquet", version(25, 1)),
             (f"transactions_{DAY}~10.parquet", version(20, 2)),
             (FIRST, version(15, 3))]  # dropped last: the one that must win
    for name, table in drops:
        dropped(tmp_path, settings, table, name)
    daemon = start_daemon("--write-mode", mode)
    lines = daemon.wait_for("file_processed", count=3)
    assert [line["file"] for line in lines] == [name for name, _ in drops]
    assert [line["file"] for line in daemon.matching("file_detected")] == [
        name for name, _ in drops]
    assert [r[:4] for r in fact_rows(settings.db_file)] == expected_rows(
        mode, [table for _, table in drops])


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_a_later_drop_waits_for_an_earlier_one_still_settling(
        tmp_path: Path, settings: Settings, start_daemon: Start, mode: str) -> None:
    """The earlier drop was there before the daemon started, so it must settle (2 s) before
    it is taken; the later one, renamed in meanwhile, is complete at once but must not
    overtake it."""
    earlier, later = version(25, 1), version(15, 2)
    dropped(tmp_path, settings, earlier, FIRST)
    daemon = start_daemon("--write-mode", mode, "--settle-seconds", "2")
    dropped(tmp_path, settings, later, f"transactions_{DAY}~1.parquet")
    lines = daemon.wait_for("file_processed", count=2)
    assert [line["file"] for line in lines] == [FIRST, f"transactions_{DAY}~1.parquet"]
    assert [r[:4] for r in fact_rows(settings.db_file)] == expected_rows(mode, [earlier, later])
