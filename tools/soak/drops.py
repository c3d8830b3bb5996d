"""What the soak drops: a fixed cycle of kinds, each written by rename or in place.

Owns the producer's side: new days (10,000 rows by default), small days, identical and
corrected re-drops, and three kinds of bad file, each with what it must do to the fact
table, and the rule that a drop never replaces an earlier one of its name that the
daemon has not taken yet.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from filedrop_etl.generator.transactions import generate_table

SMALL_ROWS = 25
CORRECTION_STRIDE = 100  # a corrected re-drop changes the amount of every 100th row
FIRST_DAY = date(2020, 1, 1)
NAME_FREE_SECONDS = 120.0  # how long a drop waits for an earlier drop of its name to be taken
# (kind, how): fifteen seconds of drops at the default interval; every kind both ways.
CYCLE: tuple[tuple[str, str], ...] = (
    ("new_day", "rename"), ("small", "in_place"), ("identical", "rename"),
    ("small", "rename"), ("corrected", "rename"), ("bad", "rename"),
    ("new_day", "in_place"), ("identical", "in_place"), ("corrected", "in_place"),
    ("bad", "in_place"),
)
BAD_KINDS = ("bad_empty", "bad_csv", "bad_checks")


class SoakError(Exception):
    """The soak cannot go on: the daemon did not start, or did not take a drop in time."""


@dataclass
class Drop:
    seq: int
    kind: str
    how: str
    name: str
    sha256: str
    at: float  # epoch seconds just before the rename or the open
    expect: str  # processed or failed
    rows: int
    inserted: int
    updated: int
    outcome: str | None = None
    latency_s: float | None = None
    logged: dict[str, Any] = field(default_factory=dict)

    def counts_right(self) -> bool:
        if self.outcome != self.expect:
            return False
        got = (self.logged.get("rows"), self.logged.get("inserted"),
               self.logged.get("updated"), self.logged.get("deleted"))
        return self.expect == "failed" or got == (self.rows, self.inserted, self.updated, 0)


@dataclass
class Day:
    day: date
    rows: int
    version: int = 0  # corrections sent so far; a re-drop sends the latest

    @property
    def name(self) -> str:
        return f"transactions_{self.day.isoformat()}.parquet"

    def table(self) -> pa.Table:
        table = generate_table(self.day, self.rows)
        if not self.version:
            return table
        amounts = table.column("amount").to_numpy().copy()
        amounts[::CORRECTION_STRIDE] += self.version
        index = table.schema.get_field_index("amount")
        return table.set_column(index, table.schema.field(index), pa.array(amounts))


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def bad_bytes(kind: str, day: Day) -> bytes:
    """A zero-byte file, a CSV under a .parquet name, or Parquet that fails the checks."""
    if kind == "bad_empty":
        return b""
    table = generate_table(day.day, SMALL_ROWS)
    if kind == "bad_csv":
        lines = [",".join(table.column_names)]
        lines += [",".join(str(v) for v in row.values()) for row in table.to_pylist()]
        return ("\n".join(lines) + "\n").encode()
    index = table.schema.get_field_index("amount")
    amounts = table.column("amount").to_numpy().copy()
    amounts[0] = -1.0
    return parquet_bytes(table.set_column(index, table.schema.field(index), pa.array(amounts)))


class Producer:
    """Decides each drop from the cycle and writes it into the inbox."""

    def __init__(self, work: Path, new_day_rows: int) -> None:
        self.inbox, self.staging = work / "inbox", work / "staging"
        self.new_day_rows = new_day_rows
        self.days: list[Day] = []
        self.bad = 0
        self.waited_s = 0.0

    def _next_day(self, rows: int) -> Day:
        day = Day(FIRST_DAY + timedelta(days=len(self.days)), rows)
        self.days.append(day)
        return day

    def plan(self, seq: int) -> tuple[str, str, Day, bytes, str, int, int]:
        """(kind, how, day, content, expected outcome, expected inserted, expected updated)."""
        kind, how = CYCLE[seq % len(CYCLE)]
        if kind in ("new_day", "small"):
            day = self._next_day(self.new_day_rows if kind == "new_day" else SMALL_ROWS)
            return kind, how, day, parquet_bytes(day.table()), "processed", day.rows, 0
        if kind == "bad":
            bad, self.bad = BAD_KINDS[self.bad % len(BAD_KINDS)], self.bad + 1
            return bad, how, self.days[-1], bad_bytes(bad, self.days[-1]), "failed", 0, 0
        day = self.days[(seq * 37) % len(self.days)]
        if kind == "identical":
            return kind, how, day, parquet_bytes(day.table()), "processed", 0, 0
        day.version += 1
        changed = len(range(0, day.rows, CORRECTION_STRIDE))
        return kind, how, day, parquet_bytes(day.table()), "processed", 0, changed

    def drop(self, seq: int, alive: Callable[[], bool]) -> Drop:
        kind, how, day, data, expect, inserted, updated = self.plan(seq)
        target = self.inbox / day.name
        # Never replace an earlier drop of this name that the daemon has not taken yet.
        waited_from = time.monotonic()
        while os.path.lexists(target):
            if not alive() or time.monotonic() - waited_from > NAME_FREE_SECONDS:
                raise SoakError(f"{target.name} was not taken from the inbox in time")
            time.sleep(0.05)
        self.waited_s += time.monotonic() - waited_from
        if how == "rename":
            staged = self.staging / f"{seq:06d}-{day.name}"
            staged.write_bytes(data)
            at = time.time()
            staged.rename(target)
        else:
            at = time.time()
            with target.open("xb") as sink:
                for start in range(0, max(len(data), 1), 1 << 16):
                    sink.write(data[start:start + (1 << 16)])
                    sink.flush()
        rows = day.rows if expect == "processed" else 0
        return Drop(seq, kind, how, day.name, hashlib.sha256(data).hexdigest(), at, expect,
                    rows, inserted, updated)
