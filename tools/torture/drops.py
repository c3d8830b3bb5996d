"""What the torture producer drops, and the fact table those drops must add up to.

The producer makes a seeded stream of drops: new days, identical re-drops, corrected
re-drops (amounts changed, rows removed and added) and bad files of several kinds, and
publishes each as a careful producer does (a hidden temporary name, then a rename). The
model computes the expected fact table from the dropped bytes alone, read back with
pyarrow: merge mode upserts a good file's rows, replace mode makes its run date equal
the file, a bad file changes nothing. It shares no code with the daemon.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filedrop_etl.generator.transactions import generate_table
from tools.harness.drop import renamed

Row = tuple[int, float, str]  # customer_id, amount, run_date; keyed by txn_id
FIRST_DAY = date(2026, 1, 1)
SIZES = (1_000, 5_000, 20_000, 60_000)
BAD_KINDS = ("zero-byte", "truncated", "negative-amount", "missing-column", "duplicate-key",
             "other-days-key")


@dataclass(frozen=True)
class Drop:
    """One file as dropped: its name, bytes, and what it must do to the fact table."""

    name: str
    data: bytes
    kind: str
    run_date: str
    rows: dict[str, Row] | None  # None: a bad file, which must change nothing

    @property
    def good(self) -> bool:
        return self.rows is not None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _rows_of(data: bytes) -> dict[str, Row]:
    """A good file's rows, read back from its bytes as any Parquet reader would."""
    rows = pq.read_table(io.BytesIO(data)).to_pylist()
    return {r["txn_id"]: (r["customer_id"], r["amount"], r["run_date"]) for r in rows}


def _name(run_date: str) -> str:
    return f"transactions_{run_date}.parquet"


@dataclass
class Producer:
    """A seeded source of drops; remembers each day's latest good table."""

    rng: random.Random
    sizes: tuple[int, ...] = SIZES
    days: dict[str, pa.Table] = field(default_factory=dict)
    _next_day: int = 0

    def _good(self, table: pa.Table, run_date: str, kind: str) -> Drop:
        data = _parquet(table)
        self.days[run_date] = table
        return Drop(_name(run_date), data, kind, run_date, _rows_of(data))

    def new_day(self) -> Drop:
        day = FIRST_DAY + timedelta(days=self._next_day)
        self._next_day += 1
        table = generate_table(day, self.rng.choice(self.sizes), seed=self.rng.randrange(1000))
        return self._good(table, day.isoformat(), "new")

    def _known_day(self) -> str:
        return self.rng.choice(sorted(self.days)) if self.days else self.new_day().run_date

    def identical(self) -> Drop:
        run_date = self._known_day()
        return self._good(self.days[run_date], run_date, "identical")

    def corrected(self) -> Drop:
        """The day's latest table with some amounts changed, some rows gone, a few new."""
        run_date = self._known_day()
        table = self.days[run_date]
        n = table.num_rows
        amounts = [float(a) for a in table.column("amount").to_numpy()]
        for i in self.rng.sample(range(n), max(1, n // 10)):
            amounts[i] = round(amounts[i] + 1.25, 2)
        table = table.set_column(2, "amount", pa.array(amounts, pa.float64()))
        keep = sorted(self.rng.sample(range(n), n - max(1, n // 20)))
        table = table.take(pa.array(keep))
        prefix = run_date.replace("-", "")
        extra = self.rng.randint(1, 5)
        added = pa.table({
            "txn_id": [f"{prefix}-x{self.rng.randrange(10**6):06d}" for _ in range(extra)],
            "customer_id": pa.array([10] * extra, pa.int64()),
            "amount": pa.array([1.5] * extra, pa.float64()),
            "run_date": [run_date] * extra,
        }, schema=table.schema)
        table = pa.concat_tables([table, added])
        table = table.take(pc.sort_indices(table, [("txn_id", "ascending")]))
        # A random new key could repeat: keep the first of each.
        keys = table.column("txn_id").to_pylist()
        firsts = [i for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
        return self._good(table.take(pa.array(firsts)), run_date, "corrected")

    def bad(self) -> Drop:
        """A file that must fail, named after a known or a new day."""
        kind = self.rng.choice(BAD_KINDS)
        # A new day's table is made (and remembered) but not dropped: its bad twin is.
        run_date = self._known_day() if self.rng.random() < 0.5 else self.new_day().run_date
        base = self.days[run_date]
        if kind == "zero-byte":
            data = b""
        elif kind == "truncated":
            whole = _parquet(base)
            data = whole[: self.rng.randrange(1, len(whole) - 1)]
        elif kind == "negative-amount":
            amounts = base.column("amount").to_pylist()
            amounts[self.rng.randrange(len(amounts))] = -1.0
            data = _parquet(base.set_column(2, "amount", pa.array(amounts, pa.float64())))
        elif kind == "missing-column":
            data = _parquet(base.drop_columns(["customer_id"]))
        elif kind == "duplicate-key":
            data = _parquet(pa.concat_tables([base, base.slice(0, 1)]))
        else:
            keys = base.column("txn_id").to_pylist()
            keys[0] = "19990101-0000"
            data = _parquet(base.set_column(0, "txn_id", pa.array(keys, pa.string())))
        return Drop(_name(run_date), data, f"bad:{kind}", run_date, None)

    def next_drop(self) -> Drop:
        """One drop of a random kind, new days most often."""
        roll = self.rng.random()
        if roll < 0.4 or not self.days:
            return self.new_day()
        if roll < 0.6:
            return self.identical()
        if roll < 0.8:
            return self.corrected()
        return self.bad()


def publish(drop: Drop, inbox: Path) -> None:
    """Drop it as a careful producer does: a hidden name the daemon ignores, a rename."""
    renamed(inbox, drop.name, drop.data)


@dataclass
class Model:
    """The fact table the drops so far must have produced."""

    write_mode: str
    fact: dict[str, Row] = field(default_factory=dict)

    def apply(self, drop: Drop) -> None:
        if drop.rows is None:
            return
        if self.write_mode == "replace":
            self.fact = {k: v for k, v in self.fact.items() if v[2] != drop.run_date}
        self.fact.update(drop.rows)
