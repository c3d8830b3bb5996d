"""Databases earlier releases wrote (schema versions 3 and 4), taken over by this one (5).

`tests/data/release-3/` and `tests/data/release-4/` each hold a database written by a
release with its own daemon (the commands are in their READMEs): three days loaded, a
re-run, a correction in replace mode, a bad file failed, retried and failed again.
Beside each, that release's `report`, `history` and `show` output for it. The migration
must keep every row as it was (`loaded_at` and `load_id` too), every earlier load the
built-in feed's (`feed` is `transactions`), and the commands must answer as that release
did; then loads, re-runs and reports go on as before. A migration that fails or is
killed leaves the database as it was, and the next start finishes it.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import structlog

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon import crashpoints, warehouse
from filedrop_etl.daemon.lock import InstanceLock
from filedrop_etl.daemon.warehouse.sqlite import migrate, schema
from tests import sqlite_store as store
from tests.conftest import ROOT, DaemonProcess, day_table, drop, write_parquet
from tools.harness import process

DATA = Path(__file__).parent / "data"
RELEASE = DATA / "release-3"
RELEASE_4 = DATA / "release-4"
Start = Callable[..., DaemonProcess]


def copied(settings: Settings, release: Path) -> Settings:
    """`settings` whose database is a copy of the one `release` wrote."""
    settings.db_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(release / "etl.db", settings.db_file)
    return settings


@pytest.fixture
def released(settings: Settings) -> Settings:
    """`settings` whose database is a copy of the one release 3 wrote."""
    return copied(settings, RELEASE)


@pytest.fixture(params=[RELEASE, RELEASE_4], ids=["release-3", "release-4"])
def any_release(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """`settings` whose database is a copy of one an earlier release wrote."""
    return copied(settings, request.param)


def migrated(before: dict[str, Any]) -> dict[str, Any]:
    """`contents` of a database as it was, once migrated: the version now, and each
    ledger row with its feed, the built-in one, and no node (none was recorded)."""
    return {**before, "version": schema.SCHEMA_VERSION,
            "ledger": [(*row, TRANSACTIONS.name, None) for row in before["ledger"]]}


def contents(db: Path) -> dict[str, Any]:
    """Everything the tables hold, read with plain SQL (any version), and the version."""
    with closing(sqlite3.connect(db)) as conn:
        def rows(sql: str) -> list[tuple[Any, ...]]:
            return conn.execute(sql).fetchall()
        return {"version": rows("PRAGMA user_version")[0][0],
                "fact": rows('SELECT * FROM "fact_transactions" ORDER BY "txn_id"'),
                "ledger": rows('SELECT * FROM "load_history" ORDER BY "id"'),
                "retries": rows('SELECT * FROM "retries" ORDER BY "id"')}


def objects(db: Path) -> list[tuple[str, str, str | None]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def run_command(settings: Settings, *argv: str) -> Any:
    """A command as an operator runs it; its JSON output."""
    done = subprocess.run(process.daemon_argv(*argv, "--db", str(settings.db_file), "--json"),
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def as_released(name: str, release: Path = RELEASE) -> Any:
    return json.loads((release / name).read_text())


def without_feed(document: Any) -> Any:
    """`history` or `show` output with each load's feed (all `transactions`, where the
    output names it) taken out: what a release before feeds printed."""
    loads = document if isinstance(document, list) else document["attempts"]
    assert {load.pop("feed", TRANSACTIONS.name) for load in loads} == {TRANSACTIONS.name}
    return document


def drop_day(settings: Settings, tmp_path: Path, run_date: str, rows: int) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    drop(write_parquet(outbox, day_table(run_date, rows), run_date=run_date), settings.inbox)


def test_the_last_releases_database_migrates_then_loads_reruns_and_reports_as_before(
        released: Settings, start_daemon: Start, tmp_path: Path) -> None:
    before = contents(released.db_file)
    assert before["version"] == 3 and len(before["fact"]) == 590
    daemon = start_daemon()
    [started] = daemon.matching("schema_migration_started")
    assert (started["from_version"], started["to_version"], started["rows"]) == (3, 6, 590)
    assert [p["rows_copied"] for p in daemon.matching("schema_migration_progress")] == [590]
    [done] = daemon.matching("schema_migrated")
    assert (done["from_version"], done["to_version"], done["rows"]) == (3, 6, 590)
    assert done["duration_ms"] >= 0 and "fact table rebuilt WITHOUT ROWID" in done["steps"]
    assert "ledger: feed column added, every earlier load transactions" in done["steps"]
    assert "ledger: node column added, null for every earlier load" in done["steps"]
    # The old table's pages went back to the disk.
    assert "file compacted (VACUUM)" in done["steps"]
    assert done["file_bytes"] < done["file_bytes_before"]
    with closing(sqlite3.connect(released.db_file)) as conn:
        assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)
    after = contents(released.db_file)
    assert after == migrated(before)
    assert "WITHOUT ROWID" in str(dict((n, s) for _, n, s in objects(released.db_file))[
        "fact_transactions"])
    answers_as_released(released, RELEASE)

    # The same day again, as the release loaded it: nothing changes but the ledger.
    drop_day(released, tmp_path, "2026-03-01", 300)
    [rerun] = daemon.wait_for("file_processed", file="transactions_2026-03-01.parquet")
    assert (rerun["inserted"], rerun["updated"], rerun["unchanged"]) == (0, 0, 300)
    assert contents(released.db_file)["fact"] == before["fact"]
    # A new day is loaded and reported beside the old ones.
    drop_day(released, tmp_path, "2026-03-05", 30)
    [new] = daemon.wait_for("file_processed", file="transactions_2026-03-05.parquet")
    assert (new["inserted"], new["updated"], new["unchanged"]) == (30, 0, 0)
    report = run_command(released, "report")
    assert report["days"][:-1] == as_released("report.json")["days"]
    assert (report["days"][-1]["run_date"], report["days"][-1]["rows"]) == ("2026-03-05", 30)
    assert sum(c["transactions"] for c in report["customers"]) == 620
    status = run_command(released, "status")
    assert status["database"]["schema_version"] == schema.SCHEMA_VERSION
    assert daemon.stop() == 0


def answers_as_released(settings: Settings, release: Path) -> None:
    """`report`, `history` and `show` answer as `release` did (each load's feed aside)."""
    assert run_command(settings, "report") == as_released("report.json", release)
    assert without_feed(run_command(settings, "history", "--limit", "100")) == as_released(
        "history.json", release)
    assert without_feed(run_command(settings, "show", "transactions_2026-03-02.parquet")) \
        == as_released("show.json", release)


def test_the_release_4_database_migrates_in_place_keeps_its_history_and_loads(
        settings: Settings, start_daemon: Start, tmp_path: Path) -> None:
    """Version 4 to 6 is the ledger's `feed` and `node` alone: the fact table is not
    copied (no progress lines), its rows and pages stay as they were."""
    released = copied(settings, RELEASE_4)
    before, shape = contents(released.db_file), objects(released.db_file)
    assert before["version"] == 4 and len(before["fact"]) == 590
    daemon = start_daemon()
    assert not daemon.matching("schema_migration_started")
    [done] = daemon.matching("schema_migrated")
    assert (done["from_version"], done["to_version"]) == (4, 6)
    assert done["steps"] == ["ledger: feed column added, every earlier load transactions",
                             "ledger: node column added, null for every earlier load",
                             "dismissals: table added"]
    assert contents(released.db_file) == migrated(before)
    # The fact tables as they were; the ledger's definition gains the column, and the
    # dismissals (issue 24) their table.
    after = objects(released.db_file)
    assert [o for o in after if o[1] not in ("load_history", "dismissals")] == [
        o for o in shape if o[1] != "load_history"]
    answers_as_released(released, RELEASE_4)

    drop_day(released, tmp_path, "2026-03-05", 30)
    [new] = daemon.wait_for("file_processed", file="transactions_2026-03-05.parquet")
    assert (new["inserted"], new["updated"], new["unchanged"]) == (30, 0, 0)
    ledger = contents(released.db_file)["ledger"]
    assert ledger[:-1] == migrated(before)["ledger"]
    # The new load names its feed and the node that made it.
    assert ledger[-1][-2:] == (TRANSACTIONS.name, released.node)
    [history] = run_command(released, "history", "--limit", "1")
    # One feed declared: the output reads as the release before feeds printed it.
    assert history["file_name"] == "transactions_2026-03-05.parquet"
    assert "feed" not in history
    report = run_command(released, "report")
    assert report["days"][:-1] == as_released("report.json", RELEASE_4)["days"]
    assert (report["days"][-1]["run_date"], report["days"][-1]["rows"]) == ("2026-03-05", 30)
    assert daemon.stop() == 0


def test_a_killed_migration_leaves_the_database_as_it_was_and_the_next_start_finishes_it(
        any_release: Settings, start_daemon: Start) -> None:
    before, shape = contents(any_release.db_file), objects(any_release.db_file)
    crashed: DaemonProcess = start_daemon(wait_started=False,
                                          env={crashpoints.ENV_VAR: "during_migration"})
    crashed.wait_for("crash_point_reached", point="during_migration")
    crashed.proc.send_signal(signal.SIGKILL)
    crashed.proc.wait()
    assert (contents(any_release.db_file), objects(any_release.db_file)) == (before, shape)
    daemon = start_daemon()
    assert daemon.matching("schema_migrated")
    assert contents(any_release.db_file) == migrated(before)
    assert daemon.stop() == 0


def test_a_failed_migration_rolls_back_and_says_so(released: Settings,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure inside the migration (here raised where the crash point is) leaves the
    database as it was: same tables, same indexes, same rows, version 3."""
    before, shape = contents(released.db_file), objects(released.db_file)

    def failing(point: str) -> None:
        if point == "during_migration":
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(crashpoints, "reached", failing)
    conn = store.connect(released.db_file)
    try:
        with structlog.testing.capture_logs() as logs, \
                pytest.raises(sqlite3.OperationalError, match="full"):
            schema.init_schema(conn, TRANSACTIONS)
    finally:
        conn.close()
    assert [e["event"] for e in logs] == ["schema_migration_started", "schema_migration_progress"]
    assert (contents(released.db_file), objects(released.db_file)) == (before, shape)


def test_a_large_table_is_copied_in_chunks_each_logged(released: Settings) -> None:
    conn = store.connect(released.db_file)
    try:
        with structlog.testing.capture_logs() as logs:
            schema.init_schema(conn, TRANSACTIONS, chunk_rows=200)
        days = conn.execute('SELECT * FROM "fact_transactions_days" ORDER BY 1').fetchall()
    finally:
        conn.close()
    progress = [e for e in logs if e["event"] == "schema_migration_progress"]
    assert [(e["rows_copied"], e["rows"]) for e in progress] == [(200, 590), (400, 590),
                                                                 (590, 590)]
    assert [e["event"] for e in logs][-1] == "schema_migrated"
    assert days == [("2026-03-01", 300), ("2026-03-02", 250), ("2026-03-03", 40)]


def test_the_retry_command_leaves_the_migration_to_the_daemon(released: Settings) -> None:
    """`retry` writes the `retries` table, which version 3 has: it does not rebuild the
    fact table under a daemon of the older release that may still be running."""
    before, shape = contents(released.db_file), objects(released.db_file)
    with warehouse.writing(released) as retries:
        assert retries is not None
    assert (contents(released.db_file), objects(released.db_file)) == (before, shape)


def test_a_compaction_that_cannot_run_is_a_warning_and_the_migration_stands(
        released: Settings) -> None:
    """Another writer holds the database when the compaction would run: the migration is
    committed all the same, and the operator is told how to compact it later."""
    conn = store.connect(released.db_file, busy_timeout_seconds=0.1)
    other = sqlite3.connect(released.db_file, isolation_level=None)
    try:
        schema.init_schema(conn, TRANSACTIONS)  # migrated and compacted
        other.execute("BEGIN IMMEDIATE")
        with structlog.testing.capture_logs() as logs:
            assert not migrate.compact(conn)
    finally:
        other.close()
        conn.close()
    assert [(e["event"], e["log_level"]) for e in logs] == [("schema_vacuum_skipped", "warning")]
    assert "locked" in logs[0]["reason"] and "VACUUM" in logs[0]["hint"]
    assert contents(released.db_file)["version"] == schema.SCHEMA_VERSION


def test_the_version_4_rebuild_keeps_a_column_added_by_hand(released: Settings) -> None:
    """A version-3 fact table (a rowid table) with a DBA's column, and values in it: the
    rebuild into one B-tree carries the column and its values over."""
    fact = f'"{contract.FACT_TABLE}"'
    with closing(sqlite3.connect(released.db_file, isolation_level=None)) as conn:
        conn.execute(f"ALTER TABLE {fact} ADD COLUMN \"note\" TEXT DEFAULT '-'")
        conn.execute(f'UPDATE {fact} SET "note" = "txn_id" WHERE rowid % 7 = 0')
        before = conn.execute(f'SELECT * FROM {fact} ORDER BY "txn_id"').fetchall()
    conn = store.connect(released.db_file)
    try:
        with structlog.testing.capture_logs() as logs:
            schema.init_schema(conn, TRANSACTIONS)
        after = conn.execute(f'SELECT * FROM {fact} ORDER BY "txn_id"').fetchall()
        [(create,)] = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                   (contract.FACT_TABLE,))
    finally:
        conn.close()
    assert after == before and len({r[-1] for r in after}) > 2
    assert "WITHOUT ROWID" in create and "\"note\" TEXT DEFAULT '-'" in create
    assert [(e["table"], e["columns"]) for e in logs
            if e["event"] == "table_columns_extra"] == [(contract.FACT_TABLE, ["note"])]
    assert logs[-1]["event"] == "schema_migrated"


@pytest.mark.slow  # a process
def test_migrate_refuses_while_a_daemon_of_the_old_release_runs(released: Settings) -> None:
    """That daemon could not load into the migrated tables; this release's own daemon
    would hold the lock on a current database, which `migrate` leaves as it is."""
    def migrate_command() -> subprocess.CompletedProcess[str]:
        return subprocess.run(process.daemon_argv("migrate", "--db", str(released.db_file)),
                              cwd=ROOT, capture_output=True, text=True, timeout=60,
                              check=False)

    held = InstanceLock(released.lock_file)
    held.acquire()
    try:
        refused = migrate_command()
    finally:
        held.release()
    assert refused.returncode == 2
    [line] = [e for e in map(json.loads, refused.stderr.splitlines())
              if e["event"] == "database_unavailable"]
    assert "a daemon is running" in line["reason"] and "stop that daemon" in line["hint"]
    assert contents(released.db_file)["version"] == 3
    done = migrate_command()
    assert done.returncode == 0 and "migrated from version 3" in done.stdout, done.stderr
    assert contents(released.db_file)["version"] == schema.SCHEMA_VERSION
