"""Shared fixtures: settings and databases on `tmp_path`, Parquet factories, a real daemon.

Fixtures are named after what they give and own what they create. An autouse guard fails
any test that leaves a thread running (the watcher's worker, watchdog's observer).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from config import Settings, contract, load_settings
from daemon import store
from generator.transactions import generate_table

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 30.0


def wait_until(condition: Callable[[], bool], what: str,
               timeout: float = DEADLINE_SECONDS) -> None:
    """Poll `condition` until true, failing the test with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked: list[threading.Thread] = []

    def settled() -> bool:
        leaked[:] = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        return not leaked

    deadline = time.monotonic() + 5
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a daemon whose every directory and database is under `tmp_path`."""
    return load_settings(
        {"inbox": tmp_path / "inbox", "processed": tmp_path / "processed",
         "failed": tmp_path / "failed", "db": tmp_path / "etl.db",
         "settle_seconds": 0.2, "rescan_seconds": 0.5},
        config_file=ROOT / "config" / "etl.toml", environ={},
    )


@pytest.fixture
def fresh_db(settings: Settings) -> Iterator[sqlite3.Connection]:
    """A connection to an initialised, empty database at `settings.db`."""
    conn = store.connect(settings.db)
    store.init_schema(conn)
    yield conn
    conn.close()


def day_table(run_date: str, rows: int = 25, seed: int = 0) -> pa.Table:
    """The generator's table for a day: the expected content of a dropped file."""
    return generate_table(date.fromisoformat(run_date), rows, seed)


def write_parquet(directory: Path, table: pa.Table, name: str | None = None,
                  run_date: str = "2026-02-10") -> Path:
    """Write `table` into `directory` (not atomically: tests drop by rename themselves)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name or contract.file_name_for(run_date))
    pq.write_table(table, path)
    return path


def drop(source: Path, inbox: Path, name: str | None = None) -> Path:
    """Move a prepared file into the inbox by rename, as a careful producer does."""
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / (name or source.name)
    source.replace(target)
    return target


def awkward_db_path(tmp_path: Path, where: str) -> Path:
    """A database path SQLite URIs once mishandled: `not-utf8` (a directory name that is
    not UTF-8) or `double-slash` (a path beginning `//`)."""
    if where == "not-utf8":
        return tmp_path / os.fsdecode(b"dir\xff") / "etl.db"
    return Path("//" + str(tmp_path).lstrip("/") + "/x/etl.db")


def fact_rows(db_path: Path) -> list[tuple[Any, ...]]:
    """Every fact row in key order, read through a separate connection."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(
            f'SELECT * FROM "{contract.FACT_TABLE}" ORDER BY "{contract.KEY}"').fetchall()
    finally:
        conn.close()


def ledger(db_path: Path) -> list[dict[str, Any]]:
    """Every `load_history` row, oldest first, as dicts."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute('SELECT * FROM "load_history" ORDER BY "id"')]
    finally:
        conn.close()


@dataclass
class DaemonProcess:
    """A real `python -m daemon` subprocess whose JSON log goes to a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    settings: Settings
    argv: list[str] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        # Every line must be JSON: a non-JSON line here is itself a failure.
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def matching(self, event: str, **keys: object) -> list[dict[str, Any]]:
        return [e for e in self.events()
                if e.get("event") == event and all(e.get(k) == v for k, v in keys.items())]

    def wait_for(self, event: str, count: int = 1, timeout: float = DEADLINE_SECONDS,
                 **keys: object) -> list[dict[str, Any]]:
        def seen() -> bool:
            if self.proc.poll() is not None and len(self.matching(event, **keys)) < count:
                pytest.fail(f"daemon exited ({self.proc.returncode}) before {event}: "
                            f"{self.log_path.read_text()}")
            return len(self.matching(event, **keys)) >= count

        wait_until(seen, f"{count} x {event} {keys or ''}", timeout)
        return self.matching(event, **keys)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEADLINE_SECONDS) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def start_daemon(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start real daemon processes on `settings`' directories; all killed at teardown."""
    started: list[DaemonProcess] = []

    def start(*extra: str, wait_started: bool = True, env: dict[str, str] | None = None,
              log_name: str | None = None) -> DaemonProcess:
        argv = [sys.executable, "-m", "daemon", "--inbox", str(settings.inbox),
                "--processed", str(settings.processed), "--failed", str(settings.failed),
                "--db", str(settings.db), "--settle-seconds", str(settings.settle_seconds),
                "--rescan-seconds", str(settings.rescan_seconds), *extra]
        log_path = tmp_path / (log_name or f"daemon-{len(started)}.log")
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
        child_env.update(env or {})
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                    env=child_env)
        daemon = DaemonProcess(proc, log_path, settings, argv)
        started.append(daemon)
        if wait_started:
            daemon.wait_for("daemon_started")
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
