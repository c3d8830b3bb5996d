"""What the daemon refuses to trust: paths from events, names as SQL, links, other readers.

"What the daemon trusts" (docs/robustness.md, in short in the README) is these tests in
words. Symlinks and unreadable files have their own cases in the hostile-input corpus;
sidecars written through a planted link in `test_files.py`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.warehouse.sqlite import staging
from filedrop_etl.daemon.watch.inbox import Inbox
from tests.conftest import as_warehouse, day_table, fact_rows, ledger, write_parquet

NAME = "transactions_2026-02-10.parquet"


def test_event_paths_that_leave_the_inbox_are_never_candidates(tmp_path: Path) -> None:
    inbox_dir = tmp_path / "inbox"
    elsewhere = tmp_path / "elsewhere"
    for directory in (inbox_dir / "sub", elsewhere):
        directory.mkdir(parents=True)
        (directory / NAME).write_bytes(b"PAR1")
    inbox = Inbox(inbox_dir, settle_seconds=0.0, feeds=Feeds((TRANSACTIONS,)))
    for path in (inbox_dir / ".." / "elsewhere" / NAME, inbox_dir / "sub" / NAME,
                 elsewhere / NAME, Path("/") / NAME):
        assert inbox.note(path, "moved", "event") is None
    assert inbox.candidates == {}
    # A listing of the inbox does not descend into its subdirectories either.
    assert inbox.scan("sweep") == []


def test_a_file_name_is_stored_as_data_never_run_as_sql(settings: Settings,
                                                        fresh_db: sqlite3.Connection) -> None:
    pipeline = Pipeline(settings, as_warehouse(fresh_db))
    loaded = write_parquet(settings.work, day_table("2026-02-09"),
                           "transactions_2026-02-09.parquet")
    assert pipeline.process(loaded).status == "processed"
    before = fact_rows(settings.db_file)
    hostile = """transactions_2026-02-10'); DROP TABLE "fact_transactions"; --.parquet"""
    path = write_parquet(settings.work, day_table("2026-02-10"), hostile)
    outcome = pipeline.process(path)
    assert outcome.status == "failed" and outcome.path.name == hostile
    assert fact_rows(settings.db_file) == before
    assert ledger(settings.db_file)[-1]["file_name"] == hostile


def test_staged_rows_are_readable_only_by_the_daemon(settings: Settings,
                                                     fresh_db: sqlite3.Connection) -> None:
    batches = day_table("2026-02-10").to_batches()
    with staging.staged(settings.db_file, iter(batches), TRANSACTIONS) as (path, rows):
        assert rows == 25
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent == settings.db_file.parent

