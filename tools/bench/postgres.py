"""The benchmark's PostgreSQL column: one large file against its floor, and sharing.

Two sections, each on schemas of their own in the server's database (`--postgres URL`):
- a file of `file_rows` dropped into a running daemon whose warehouse already holds
  `history_rows`, drop to archived, against the floor (`pg_floor`) on an identical copy
  of that history in the same run;
- loads per minute of `shared_files` files of `shared_rows` dropped at once into one
  inbox shared by 1, 2 (and 4) daemons, first drop to last `file_processed`.
History is written straight into the fact table by binary COPY, as the daemon's own
migration made it, then analyzed: old data, already on disk.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pgpq
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from filedrop_etl.config.contract import TRANSACTIONS as FEED
from filedrop_etl.daemon.warehouse import registry
from filedrop_etl.daemon.warehouse.postgresql import books
from filedrop_etl.daemon.warehouse.sql import Tables, q
from filedrop_etl.generator.transactions import generate
from tools.bench import fixtures, pg_floor, seam
from tools.harness import drop as harness_drop
from tools.harness import process as daemon_process
from tools.harness.logtail import LogTail

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class PgPlan:
    history_rows: int
    file_rows: int
    shared_files: int
    shared_rows: int
    daemons: tuple[int, ...]


PG_QUICK = PgPlan(200_000, 100_000, 4, 25_000, (1, 2))
PG_FULL = PgPlan(3_000_000, 1_000_000, 8, 250_000, (1, 2, 4))


def fresh_schema(server: str, name: str) -> str:
    """A new, empty schema `name` (an old one dropped, with its daemons' bookkeeping
    schema); a URL whose tables land in it."""
    drop_schema(server, name)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    joiner = "&" if "?" in server else "?"
    return f"{server}{joiner}options={quote(f'-csearch_path={name}')}"


def drop_schema(server: str, name: str) -> None:
    """Drop schema `name` and the daemons' bookkeeping schema beside it."""
    with psycopg.connect(server, autocommit=True) as conn:
        for schema in (name, books.default_for(name)):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


def _history(rows: int) -> Iterator[pa.RecordBatch]:
    per_day = 100_000
    loaded = pa.scalar(datetime(2026, 1, 1, tzinfo=UTC), pa.timestamp("us", tz="UTC"))
    for index in range(-(-rows // per_day)):
        for batch in generate(fixtures.day(index), min(per_day, rows - index * per_day)):
            arrays = [pc.cast(batch.column(c.name), pa.date32()) if c.kind == "date"
                      else batch.column(c.name) for c in FEED.columns]
            arrays.append(pa.array([loaded.as_py()] * batch.num_rows, loaded.type))
            yield pa.RecordBatch.from_arrays(arrays, [*FEED.column_names, "loaded_at"])


def build_history(url: str, rows: int, *, floor: bool = False) -> None:
    """The daemon's tables (its own migration, through the seam), the fact holding `rows`
    generated rows; or, for the `floor`, its plain table holding them."""
    t = Tables(FEED)
    fact = q(pg_floor.TABLE) if floor else t.fact
    if not floor:
        with tempfile.TemporaryDirectory(prefix="etl-bench-pg-") as scratch:
            settings = seam.settings_for(url, Path(scratch), (FEED,))
            registry.backend_of(settings).migrate(settings)
    with psycopg.connect(url, autocommit=True) as conn:
        if floor:
            conn.execute(pg_floor.create_sql())
        batches = _history(rows)
        first = next(batches, None)
        if first is not None:
            encoder = pgpq.ArrowToPostgresBinaryEncoder(first.schema)
            with conn.cursor() as cursor, cursor.copy(
                    f"COPY {fact} ({t.columns()}, \"loaded_at\") FROM STDIN "
                    "WITH (FORMAT BINARY)".encode()) as copy:
                copy.write(encoder.write_header())
                for batch in (first, *batches):
                    copy.write(encoder.write_batch(batch))
                copy.write(encoder.finish())
        conn.execute(f"VACUUM ANALYZE {fact}".encode())


class Daemons:
    """`count` daemons (nodes n0..) on one inbox and one warehouse."""

    def __init__(self, root: Path, url: str, count: int) -> None:
        self.root, self.logs, self.processes = root, [], []
        root.mkdir(parents=True, exist_ok=True)
        for node in range(count):
            log_path = root / f"n{node}.log"
            argv = daemon_process.daemon_argv(
                "--inbox", str(root / "inbox"), "--processed", str(root / "processed"),
                "--failed", str(root / "failed"), "--db", url, "--node", f"n{node}")
            self.processes.append(daemon_process.start(argv, log_path))
            self.logs.append(LogTail(log_path))
        self.seen: list[dict[str, Any]] = []
        self._until(lambda: sum(e["event"] == "inbox_swept" for e in self.seen) == count,
                    "the daemons to start")

    def _until(self, done: Any, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while not done():
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"a daemon exited; see {self.root}/n*.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; see {self.root}/n*.log")
            time.sleep(0.005)
            for tail in self.logs:
                self.seen += tail.read()[0]

    def archived(self, names: set[str]) -> float:
        """Wait until every file of `names` is processed; the epoch of the last."""
        def done() -> bool:
            return names <= {str(e["file"]) for e in self.seen if e["event"] == "file_processed"}

        self._until(done, f"{len(names)} files")
        return max(datetime.fromisoformat(str(e["timestamp"]).replace("Z", "+00:00"))
                   .timestamp() for e in self.seen
                   if e["event"] == "file_processed" and e["file"] in names)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            daemon_process.wait(process, timeout=120)


def floor_seconds(url: str, parquet: Path, feed: str = "transactions") -> float:
    """`pg_floor`'s load of `parquet` (a file of `feed`) into `url`, as a process."""
    done = subprocess.run([sys.executable, "-m", "tools.bench.pg_floor", url, str(parquet),
                           feed], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=900)
    return float(done.stdout.strip())


def large_file(server: str, plan: PgPlan, parquet: Path, root: Path) -> dict[str, Any]:
    """One large file into history: the floor, then the running daemon, same history."""
    floor_url = fresh_schema(server, "bench_floor")
    build_history(floor_url, plan.history_rows, floor=True)
    floor = floor_seconds(floor_url, parquet)
    drop_schema(server, "bench_floor")
    url = fresh_schema(server, "bench_daemon")
    build_history(url, plan.history_rows)
    daemons = Daemons(root / "large", url, 1)
    try:
        started = harness_drop.renamed(root / "large" / "inbox", parquet.name,
                                       parquet.read_bytes())
        seconds = daemons.archived({parquet.name}) - started
    finally:
        daemons.stop()
        drop_schema(server, "bench_daemon")
    return {"history_rows": plan.history_rows, "rows": plan.file_rows, "daemon_s": seconds,
            "floor_s": floor, "vs_floor": seconds / floor}


def sharing(server: str, plan: PgPlan, files: list[Path], root: Path) -> list[dict[str, Any]]:
    """The same files dropped at once into an inbox shared by 1, 2, ... daemons."""
    out = []
    for count in plan.daemons:
        url = fresh_schema(server, "bench_shared")
        build_history(url, 0)
        daemons = Daemons(root / f"shared-{count}", url, count)
        try:
            inbox = root / f"shared-{count}" / "inbox"
            started = min(harness_drop.renamed(inbox, f.name, f.read_bytes()) for f in files)
            seconds = daemons.archived({f.name for f in files}) - started
        finally:
            daemons.stop()
            drop_schema(server, "bench_shared")
        out.append({"daemons": count, "files": len(files), "rows_each": plan.shared_rows,
                    "seconds": seconds, "loads_per_minute": len(files) / seconds * 60})
    return out
