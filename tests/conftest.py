"""Shared fixtures: settings and databases on `tmp_path`, Parquet factories, a real daemon,
a headless browser.

Fixtures are named after what they give and own what they create. An autouse guard fails
any test that leaves a thread running (the watcher's worker, watchdog's observer).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.warehouse.api import FOLDER_NAMES, Folders
from filedrop_etl.daemon.warehouse.sqlite import dbfile, schema
from filedrop_etl.daemon.warehouse.sqlite.warehouse import SqliteWarehouse
from filedrop_etl.generator.transactions import generate_table
from tests import backends
from tests import sqlite_store as store
from tests.backends import load_settings
from tests.tcp_proxy import TcpProxy
from tools.harness import process
from tools.harness.logtail import LogTail

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 30.0


# A test that asks for one of these starts a process (a daemon, a browser; `corpus_run` is
# `test_hostile`'s daemon fed the whole corpus): the slow tier,
# which `make test-fast` (`-m "not slow"`) leaves out. Modules that start processes
# otherwise, or wait out timers, mark themselves (`pytestmark = pytest.mark.slow`).
SLOW_FIXTURES = frozenset({"start_daemon", "browser", "corpus_run"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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


def settings_under(root: Path, db: str | None = None) -> Settings:
    """Settings for a daemon whose every directory is under `root`, and its database too
    unless `db` names a PostgreSQL server."""
    return load_settings(
        {"inbox": root / "inbox", "processed": root / "processed",
         "failed": root / "failed", "db": db or root / "etl.db",
         "settle_seconds": 0.2, "rescan_seconds": 0.5, "lease_seconds": 2.0},
        config_file=ROOT / "config" / "etl.toml", environ={},
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose tables land in a schema of this test's own (dropped after);
    skips (fails under CI) without a server."""
    with backends.scratch_schema(backends.server_url()) as url:
        yield url


@pytest.fixture
def tcp_proxy() -> Iterator[TcpProxy]:
    """A TCP proxy in front of the test server (`tests.tcp_proxy`: pass, refuse, black-hole,
    cut), its thread and connections closed at teardown; skips without a server."""
    parts = urlsplit(backends.server_url())
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture(params=backends.BACKENDS)
def any_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """`settings` on each backend in turn: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        yield settings_under(tmp_path)
        return
    with backends.scratch_schema(backends.server_url()) as url:
        yield settings_under(tmp_path, url)


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a daemon whose every directory and database is under `tmp_path`; on
    PostgreSQL instead when a test asks (`@on_both_backends`), in a schema of its own."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield settings_under(tmp_path)
        return
    with backends.scratch_schema(backends.server_url()) as url:
        yield settings_under(tmp_path, url)


# A test (or its daemon, through `start_daemon`) run once on each backend.
on_both_backends = pytest.mark.parametrize("settings", backends.BACKENDS, indirect=True)


def as_warehouse(conn: sqlite3.Connection) -> SqliteWarehouse:
    """The worker's warehouse on an open SQLite connection (the one `connect` made)."""
    assert isinstance(conn, dbfile.Connection)
    return SqliteWarehouse(conn, conn.path)


@pytest.fixture
def fresh_db(settings: Settings) -> Iterator[sqlite3.Connection]:
    """A connection to an initialised, empty database at `settings.db_file`."""
    conn = store.connect(settings.db_file)
    schema.init_schema(conn, TRANSACTIONS)
    yield conn
    conn.close()


@pytest.fixture
def pipeline(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    """A `Pipeline` on `fresh_db` (or, for PostgreSQL settings, on the warehouse opened as
    the daemon opens it), its folders made (inbox, work, processed, failed), as a
    daemon's start makes them."""
    for directory in (settings.inbox, settings.work, settings.processed, settings.failed):
        directory.mkdir(parents=True, exist_ok=True)
    if not settings.shared:
        yield Pipeline(settings, as_warehouse(request.getfixturevalue("fresh_db")))
        return
    inbox, work, processed, failed = (str(getattr(settings, n)) for n in FOLDER_NAMES)
    opened = warehouse.open_warehouse(settings, Folders(inbox, work, processed, failed))
    try:
        yield Pipeline(settings, opened)
    finally:
        opened.close()


@pytest.fixture
def loaded(settings: Settings, pipeline: Pipeline) -> list[tuple[object, ...]]:
    """The fact rows once `pipeline` has loaded day 2026-02-09: what a bad file must leave
    exactly as it was."""
    path = write_parquet(settings.work, day_table("2026-02-09"), run_date="2026-02-09")
    assert pipeline.process(path).status == "processed"
    return fact_rows(settings.db_file)


def day_table(run_date: str, rows: int = 25, seed: int = 0) -> pa.Table:
    """The generator's table for a day: the expected content of a dropped file."""
    return generate_table(date.fromisoformat(run_date), rows, seed)


def with_column(table: pa.Table, name: str, values: pa.Array[Any] | list[Any]) -> pa.Table:
    """`table` with column `name` replaced by `values` (and given their type)."""
    index = table.schema.get_field_index(name)
    array = values if isinstance(values, pa.Array) else pa.array(values)
    return table.set_column(index, pa.field(name, array.type), array)


def replaced_at(table: pa.Table, name: str, row: int, value: object) -> pa.Table:
    """`table` with one value of column `name` replaced, the column's type kept."""
    values = table.column(name).to_pylist()
    values[row] = value
    return with_column(table, name, pa.array(values, table.schema.field(name).type))


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


def integrity(db: Path) -> list[tuple[str, ...]]:
    """What `PRAGMA integrity_check` says of a database file: `[("ok",)]` when whole."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def table_rows(db_path: Path, table: str) -> list[dict[str, Any]]:
    """Every row of `table`, oldest first (by `id`), as dicts."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f'SELECT * FROM {store.q(table)} ORDER BY "id"')]
    finally:
        conn.close()


def ledger(db_path: Path) -> list[dict[str, Any]]:
    """Every `load_history` row, oldest first, as dicts."""
    return table_rows(db_path, contract.LEDGER_TABLE)


@dataclass
class DaemonProcess:
    """A real `python -m filedrop_etl` subprocess whose JSON log goes to a file.

    The log is read through `LogTail`: only complete lines count (the daemon may be writing
    the next one now), and every complete line must be JSON (a stray line is a failure).
    """

    proc: subprocess.Popen[bytes]
    log_path: Path
    settings: Settings
    argv: list[str] = field(default_factory=list)
    _tail: LogTail | None = field(default=None, init=False, repr=False)
    _seen: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)

    def events(self) -> list[dict[str, Any]]:
        if self._tail is None:
            self._tail = LogTail(self.log_path)
        events, stray = self._tail.read()
        if stray:
            pytest.fail(f"the daemon wrote a line that is not JSON: {stray[0]!r}")
        self._seen += events
        return list(self._seen)

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
        return process.stop(self.proc, sig, timeout)


class Daemons:
    """Starts real daemon processes on `settings`' directories; `close` kills those left.

    Each log goes to a file in `log_dir`. `wrapper` is a command the daemon's argv is run
    under (one that drops privileges, say) and must exec it, keeping its pid.
    """

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.started: list[DaemonProcess] = []

    def start(self, *extra: str, wait_started: bool = True, env: dict[str, str] | None = None,
              log_name: str | None = None, wrapper: Sequence[str] = ()) -> DaemonProcess:
        settings = self.settings
        argv = process.daemon_argv(
            "--inbox", str(settings.inbox), "--processed", str(settings.processed),
            "--failed", str(settings.failed), "--db", backends.db_arg(settings),
            "--settle-seconds", str(settings.settle_seconds),
            "--lease-seconds", str(settings.lease_seconds),
            "--rescan-seconds", str(settings.rescan_seconds), *extra, wrapper=wrapper)
        log_path = self.log_dir / (log_name or f"daemon-{len(self.started)}.log")
        proc = process.start(argv, log_path, env=process.clean_environ(env))
        daemon = DaemonProcess(proc, log_path, settings, argv)
        self.started.append(daemon)
        if wait_started:
            # Swept, not only started: from then on the inbox is watched, so a file written
            # in place now is seen by its events (its writer's open) and not only by a scan.
            daemon.wait_for("inbox_swept")
        return daemon

    def close(self) -> None:
        for daemon in self.started:
            process.kill(daemon.proc)


@pytest.fixture
def start_daemon(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start real daemon processes on `settings`' directories; all killed at teardown."""
    daemons = Daemons(settings, tmp_path)
    try:
        yield daemons.start
    finally:
        daemons.close()


# Debian's chromium and its driver (`make browser`), never a browser Selenium downloads.
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    # The network is closed here: without these chromium floods refused connections
    # (updates, sync, field trials) into its log and slows its start.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless chromium through Selenium, with a fresh profile; quit at teardown."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"no headless browser ({CHROMIUM}, {CHROMEDRIVER}): run `make browser`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    # An explicit driver and binary: Selenium Manager is never asked to fetch either.
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
