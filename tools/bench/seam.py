"""Any feed loaded through the warehouse seam, as the daemon's worker loads it, timed.

What the daemon does with a file once its checks have passed, on either backend: the
settings name the warehouse and its feeds, the backend opens it (`open_warehouse`: tables
made or migrated), and each file's record batches go through `Warehouse.staged(contract,
batches)` and `Staged.commit(load, plan)`: staging, the ledger row, the merge and the
commit, in one transaction. The plan is the one the daemon's checks give a generated
file (keys unique and ascending). Hashing, reading with the reader's tolerance, the row
checks and the archive are not timed: the per-file cases of `make bench` time those
(through `daemon --once`) for transactions.

`python -m tools.bench.seam DB FEED FILE [merge|replace]` loads one file into a warehouse
(a SQLite path or a PostgreSQL URL) as a process of its own and prints its seconds and
counts as JSON, the warehouse opened before the clock starts; `history` fills a
warehouse with generated days through the same seam.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filedrop_etl.config import Settings, load_settings
from filedrop_etl.config.contract import Contract
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon.warehouse import registry
from filedrop_etl.daemon.warehouse.api import (
    Folders,
    LoadRecord,
    MergeCounts,
    MergePlan,
    Warehouse,
)
from filedrop_etl.generator.feed import generate
from tools.bench import feeds


def settings_for(db: str, root: Path, served: Iterable[Contract]) -> Settings:
    """Placed settings of a warehouse `db` serving `served`, its folders under `root`,
    read from nothing but these arguments (no config file, no environment)."""
    folders = {name: str(root / name) for name in ("inbox", "processed", "failed")}
    settings = load_settings({"db": db, **folders}, config_file=_empty_config(root),
                             environ={})
    return registry.place(dataclasses.replace(settings, feeds=Feeds(tuple(served))))


def _empty_config(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "bench.toml"
    path.write_text("# the benchmark's settings come from its arguments\n", encoding="utf-8")
    return path


@contextmanager
def opened(settings: Settings) -> Iterator[Warehouse]:
    """The worker's warehouse of `settings`, closed afterwards."""
    folders = Folders(inbox=str(settings.inbox), work=str(settings.work),
                      processed=str(settings.processed), failed=str(settings.failed))
    warehouse = registry.backend_of(settings).open_warehouse(settings, folders)
    try:
        yield warehouse
    finally:
        warehouse.close()


def record(contract: Contract, file_name: str, run_date: str, mode: str) -> LoadRecord:
    """The ledger's record of one load of `contract`."""
    fields = {"file_name": file_name, "sha256": None, "bytes": None, "write_mode": mode,
              "run_date": run_date,
              "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    # The ledger's `feed` (issue 23's seam): set where the seam has it.
    if "feed" in {f.name for f in dataclasses.fields(LoadRecord)}:
        fields["feed"] = contract.name
    return LoadRecord(**fields)  # type: ignore[arg-type]


def load(warehouse: Warehouse, contract: Contract, batches: Iterable[pa.RecordBatch],
         file_name: str, run_date: str, mode: str = "merge") -> MergeCounts:
    """Stage `batches` of `contract` and commit them, as the worker does after its checks
    found the keys unique and ascending."""
    plan = MergePlan(keys_sorted=True, keys_counted=True, run_date=run_date,
                     replace_date=run_date if mode == "replace" else None)
    with warehouse.staged(contract, batches) as staged:
        return staged.commit(record(contract, file_name, run_date, mode), plan)


def history(settings: Settings, contract: Contract, days: Iterable[date], rows: int) -> None:
    """Load `rows` generated rows of each of `days` through the seam."""
    with opened(settings) as warehouse:
        for day in days:
            load(warehouse, contract, generate(contract, day, rows),
                 contract.file_name_for(day.isoformat()), day.isoformat())


def load_file(db: str, contract: Contract, parquet: Path, mode: str = "merge") -> dict[str, float]:
    """One Parquet file of `contract` through the seam: its seconds (reading, staging,
    merge, commit) and counts, the warehouse opened first."""
    run_date = contract.run_date_of(parquet.name)
    assert run_date is not None, parquet.name
    settings = settings_for(db, parquet.parent / f"seam-{contract.name}", (contract,))
    with opened(settings) as warehouse:
        started = time.perf_counter()
        batches = pq.ParquetFile(parquet).iter_batches(columns=list(contract.column_names))
        counts = load(warehouse, contract, batches, parquet.name, run_date, mode)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": counts.rows, "inserted": counts.inserted,
            "updated": counts.updated, "unchanged": counts.unchanged}


def main(argv: list[str]) -> int:
    db, name, parquet = argv[:3]
    mode = argv[3] if len(argv) > 3 else "merge"
    print(json.dumps(load_file(db, feeds.named(name), Path(parquet), mode)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
