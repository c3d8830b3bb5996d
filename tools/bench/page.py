"""`python -m tools.bench.page [--postgres URL]`: what the status page costs at 100,000 loads a day.

A ledger of `--loads` loads of the last 24 hours (`tools.bench.ledger`), on SQLite and,
given a server, in a scratch PostgreSQL database of its own (dropped after). Then:
- **in-process**, the daemon's own page behind its own HTTP server: the page's bytes,
  a first request (the page made), five more one after another, and `--viewers`
  requests at once, with the read sessions they opened (counted at the backend's
  opener), the most sessions at once on the server, and a /healthz asked meanwhile;
- **the real daemon** (`--http`): small files dropped one at a time, with no viewer and
  then with four reloading the page in a loop; the files' own `duration_ms` (median),
  and on PostgreSQL the most sessions the daemon held at once.
It measures whatever `daemon` is first on the path: run it with `PYTHONPATH` at a
checkout of another commit to measure that one. Nothing is judged; it prints a table.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import structlog
from psycopg import sql

import filedrop_etl.daemon.warehouse.postgresql.doors as postgresql
from filedrop_etl.config import Settings, load_settings
from filedrop_etl.daemon.ops import page
from filedrop_etl.daemon.ops.metrics import Metrics
from filedrop_etl.daemon.ops.server import StatusServer
from filedrop_etl.daemon.warehouse import registry
from filedrop_etl.daemon.warehouse.sqlite import connection as sqlite_connection
from tools.bench import fixtures, ledger
from tools.harness import drop
from tools.harness import process as daemon_process
from tools.harness.logtail import LogTail

ROOT = Path(__file__).resolve().parents[2]
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Quiet:
    """The daemon as the page and the probes see it: ready, well, nothing queued."""

    def __init__(self) -> None:
        self.swept = threading.Event()
        self.swept.set()

    def health(self) -> list[str]:
        return []

    def queue_depth(self) -> int:
        return 0

    def tally(self) -> dict[str, int]:
        return {}

    def tally_by_feed(self) -> dict[str, dict[str, int]]:
        return {}


def _get(url: str) -> tuple[int, int]:
    """Status and body bytes of one GET."""
    try:
        with _DIRECT.open(url, timeout=120) as answer:
            return int(answer.status), len(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), len(exc.read())


@contextmanager
def _sessions_counted(settings: Settings) -> Iterator[list[Any]]:
    """The read sessions opened in this process meanwhile, at the backend's opener."""
    opened: list[Any] = []
    on_postgresql = registry.backend_of(settings).name == "postgresql"
    module: Any = postgresql if on_postgresql else sqlite_connection
    name = "connect" if module is postgresql else "connect_readonly"
    real = module.__dict__[name]

    def counted(*args: Any, **kwargs: Any) -> Any:
        conn = real(*args, **kwargs)
        if module is not postgresql or kwargs.get("read_only"):
            opened.append(conn)
        return conn

    setattr(module, name, counted)
    try:
        yield opened
    finally:
        setattr(module, name, real)


@contextmanager
def _peak_sessions(admin: str | None, database: str | None) -> Iterator[list[int]]:
    """The most sessions of the daemon (`filedrop-etl`) on `database` at once, sampled
    every 5 ms meanwhile; nothing without a server."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(admin or "", autocommit=True) as conn:
            while not stop.wait(0.005):
                [(count,)] = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                    "application_name = 'filedrop-etl'", (database,)).fetchall()
                peak[0] = max(peak[0], int(count))

    sampler = threading.Thread(target=sample) if admin else None
    if sampler:
        sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        if sampler:
            sampler.join()


def in_process(settings: Settings, viewers: int, admin: str | None,
               database: str | None) -> dict[str, Any]:
    quiet = Quiet()
    with _sessions_counted(settings) as opened:
        status = page.source(settings, quiet, "bench")
        server = StatusServer(("127.0.0.1", 0), quiet, Metrics(settings, quiet), page=status)
        server.start()
        base = f"http://127.0.0.1:{server.address[1]}"
        try:
            began = time.perf_counter()
            _, size = _get(base + "/")
            first = time.perf_counter() - began
            after = []
            for _ in range(5):
                began = time.perf_counter()
                _get(base + "/")
                after.append(time.perf_counter() - began)
            together = threading.Barrier(viewers + 1)
            answers: list[int] = []

            def view() -> None:
                together.wait()
                answers.append(_get(base + "/")[0])

            threads = [threading.Thread(target=view) for _ in range(viewers)]
            with _peak_sessions(admin, database) as peak:
                for thread in threads:
                    thread.start()
                # The page of the requests above grows stale (a snapshot is kept a
                # second, and at least four times what it took to make).
                time.sleep(1.1 + 4 * first)
                together.wait()
                began = time.perf_counter()
                probe = _get(base + "/healthz")[0], time.perf_counter() - began
                for thread in threads:
                    thread.join()
                together_s = time.perf_counter() - began
        finally:
            server.stop()
            getattr(status, "close", lambda: None)()
    return {"bytes": size, "first_s": first, "next_s": statistics.median(after),
            "together_s": together_s, "statuses": sorted(answers),
            "sessions": len(opened), "peak_sessions": peak[0], "probe": probe}


def _daemon(root: Path, db: str) -> tuple[subprocess.Popen[bytes], LogTail, str]:
    log = root / "daemon.log"
    argv = daemon_process.daemon_argv(
        "--inbox", str(root / "inbox"), "--db", db, "--processed", str(root / "processed"),
        "--failed", str(root / "failed"), "--http", "127.0.0.1:0")
    process = daemon_process.start(argv, log)
    tail = LogTail(log)
    deadline = time.monotonic() + 120
    while True:
        events, _ = tail.read()
        started = [e for e in events if e["event"] == "http_started"]
        if started:
            return process, tail, f"http://127.0.0.1:{started[0]['port']}"
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the daemon did not start; see {log}")
        time.sleep(0.01)


def _drops(root: Path, tail: LogTail, first_day: int, files: int) -> list[float]:
    """Drop small files one at a time; each one's `duration_ms`."""
    took = []
    for index in range(first_day, first_day + files):
        path = fixtures.write_day(root / "files", fixtures.day(index), 25)
        drop.renamed(root / "inbox", path.name, path.read_bytes())
        deadline = time.monotonic() + 120
        while not (done := [e for e in tail.read()[0] if e.get("file") == path.name
                            and e["event"] in ("file_processed", "file_failed")]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path.name} was not loaded")
            time.sleep(0.005)
        took.append(float(done[0]["duration_ms"]))
    return took


def worker(root: Path, db: str, files: int, admin: str | None,
           database: str | None) -> dict[str, Any]:
    process, tail, base = _daemon(root, db)
    try:
        quiet = statistics.median(_drops(root, tail, 0, files))
        stop, pages = threading.Event(), [0]

        def reload() -> None:
            while not stop.is_set():
                _get(base + "/")
                pages[0] += 1

        viewers = [threading.Thread(target=reload) for _ in range(4)]
        with _peak_sessions(admin, database) as peak:
            for viewer in viewers:
                viewer.start()
            # The drops begin once the viewers are served: not all within the first make.
            while pages[0] < 8:
                time.sleep(0.01)
            served = pages[0]
            watched = statistics.median(_drops(root, tail, 100, files))
            served = pages[0] - served
            stop.set()
            for viewer in viewers:
                viewer.join()
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {"quiet_ms": quiet, "watched_ms": watched, "pages": served,
            "peak_sessions": peak[0]}


def _settings(root: Path, db: str) -> Settings:
    for name in ("inbox", "processed", "failed"):
        (root / name).mkdir(parents=True, exist_ok=True)
    return registry.place(load_settings(
        {"inbox": root / "inbox", "processed": root / "processed", "failed": root / "failed",
         "db": db}, config_file=ROOT / "config" / "etl.toml", environ={}))


@contextmanager
def _scratch_database(admin: str) -> Iterator[str]:
    name = "page_bench_" + secrets.token_hex(4)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def measure(root: Path, db: str, args: argparse.Namespace, admin: str | None = None,
            database: str | None = None) -> None:
    settings = _settings(root, db)
    began = time.perf_counter()
    ledger.fill(settings, args.loads)
    print(f"  {args.loads:,} loads in the last 24 h written in "
          f"{time.perf_counter() - began:.1f} s", flush=True)
    got = in_process(settings, args.viewers, admin, database)
    print(f"  page {got['bytes']:,} bytes; first request {got['first_s']:.3f} s, then "
          f"{got['next_s']:.3f} s (median of 5); {args.viewers} at once: "
          f"{got['together_s']:.3f} s, answers {got['statuses']}; read sessions opened "
          f"for these {6 + args.viewers} requests {got['sessions']}, most at once on the "
          f"server {got['peak_sessions']}; "
          f"/healthz meanwhile {got['probe'][0]} in {got['probe'][1]:.3f} s", flush=True)
    if args.files:
        w = worker(root, db, args.files, admin, database)
        print(f"  small files, median duration_ms: {w['quiet_ms']:.0f} with no viewer, "
              f"{w['watched_ms']:.0f} with 4 reloading the page ({w['pages']} pages "
              f"served meanwhile); most daemon sessions at once {w['peak_sessions']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.page")
    parser.add_argument("--loads", type=int, default=100_000)
    parser.add_argument("--viewers", type=int, default=8)
    parser.add_argument("--files", type=int, default=30,
                        help="small files per phase of the daemon's part (0: skip it)")
    parser.add_argument("--postgres", help="a server's URL (a scratch database is made)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="page-bench-") as scratch:
        if args.only != "postgresql":
            print("SQLite", flush=True)
            measure(Path(scratch) / "sqlite", str(Path(scratch) / "sqlite" / "etl.db"), args)
        if args.postgres and args.only != "sqlite":
            print("PostgreSQL", flush=True)
            with _scratch_database(args.postgres) as name:
                parts = urlsplit(args.postgres)
                url = urlunsplit(parts._replace(path="/" + name))
                measure(Path(scratch) / "pg", url, args, args.postgres, name)
    return 0


if __name__ == "__main__":
    # The in-process server's lines (debug, one per request) are not the measurement.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sys.exit(main())
