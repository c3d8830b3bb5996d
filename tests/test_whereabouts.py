"""Telling a file another daemon claimed from one someone deleted, on real directories.

`daemon.whereabouts` on its own, then through `Pipeline.claim` as the worker calls it
(after the inbox's last look at the file), on both backends: with PostgreSQL several
daemons share the inbox; with SQLite nobody else claims, so a file gone is vanished.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon import files
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.watch.inbox import Inbox
from filedrop_etl.daemon.whereabouts import Elsewhere, Whereabouts, identity
from tests.conftest import day_table, on_both_backends, write_parquet

NAME = "transactions_2026-07-01.parquet"


@pytest.fixture
def places(tmp_path: Path) -> Whereabouts:
    """A shared inbox's work root with this node's directory (`a`), another node's (`b`)
    and its lock file, and the archives."""
    root = tmp_path / ".inbox.work"
    for directory in (root / "a", root / "b", tmp_path / "processed", tmp_path / "failed"):
        directory.mkdir(parents=True)
    (root / "b.lock").touch()
    return Whereabouts(root / "a", tmp_path / "processed", tmp_path / "failed")


def dropped(tmp_path: Path, name: str = NAME) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    path = inbox / name
    path.write_bytes(b"a drop")
    return path


def test_a_file_is_found_where_another_node_or_an_archive_holds_it(
        tmp_path: Path, places: Whereabouts) -> None:
    path = dropped(tmp_path)
    seen = identity(path.lstat())
    # Another daemon's claim, then its archive under a `~1` name (the first was taken).
    other = files.move_unique(path, places.work.parent / "b")
    assert places.claimed_elsewhere(NAME, seen) == Elsewhere("b")
    (places.processed / NAME).write_bytes(b"yesterday's drop of this name")
    files.move_unique(other, places.processed)
    assert places.claimed_elsewhere(NAME, seen) == Elsewhere(None)
    # Deleted there: found nowhere, and a file of the same name is not the same file.
    (places.processed / f"{NAME[:-8]}~1.parquet").unlink()
    assert places.claimed_elsewhere(NAME, seen) is None
    # (It is likely to get the inode number freed just now: its size and mtime differ.)
    (places.work.parent / "b" / NAME).write_bytes(b"another file of that name")
    assert places.claimed_elsewhere(NAME, seen) is None
    assert places.claimed_elsewhere(NAME, None) is None  # never seen: nothing to find


def test_only_other_nodes_directories_are_looked_in(tmp_path: Path,
                                                    places: Whereabouts) -> None:
    """Not this node's own directory, nor a link in the work root, nor a lock file."""
    path = dropped(tmp_path)
    seen = identity(path.lstat())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (places.work.parent / "c").symlink_to(elsewhere)
    files.move_unique(path, elsewhere)
    assert places.claimed_elsewhere(NAME, seen) is None
    files.move_unique(elsewhere / NAME, places.work)
    assert places.claimed_elsewhere(NAME, seen) is None


def test_the_inbox_tells_a_file_another_daemon_took_from_a_deleted_one(
        tmp_path: Path, places: Whereabouts) -> None:
    """Guards a found bug (issue 21): every file another daemon claimed was logged as
    `file_vanished` by each daemon that had detected it."""
    taken, deleted = dropped(tmp_path), dropped(tmp_path, "transactions_2026-07-02.parquet")
    inbox = Inbox(taken.parent, 60.0, feeds=Feeds((TRANSACTIONS,)), whereabouts=places)
    assert len(inbox.scan("sweep")) == 2
    with capture_logs() as logs:
        files.move_unique(taken, places.work.parent / "b")
        deleted.unlink()
        assert inbox.scan("rescan") == [] and inbox.candidates == {}
    assert sorted(logs, key=lambda e: e["event"]) == [
        {"event": "file_claimed_elsewhere", "log_level": "info", "file": NAME,
         "feed": "transactions", "by": "b"},
        {"event": "file_vanished", "log_level": "info", "file": deleted.name,
         "feed": "transactions"}]
    assert (inbox.claimed_elsewhere, inbox.vanished) == (1, 1)


@on_both_backends
def test_a_claim_another_daemon_made_first_is_not_a_vanished_file(
        settings: Settings, pipeline: Pipeline) -> None:
    """The worker claims a file the inbox saw; another daemon renamed it first (into its
    node directory on a shared inbox; with SQLite there is no other daemon, and a file
    moved away by anyone is gone). A file deleted is vanished on both."""
    settings.inbox.mkdir(parents=True, exist_ok=True)
    taken = write_parquet(settings.inbox, day_table("2026-07-01"), run_date="2026-07-01")
    deleted = write_parquet(settings.inbox, day_table("2026-07-02"), run_date="2026-07-02")
    inbox = Inbox(settings.inbox, 60.0, feeds=settings.feeds,
                  whereabouts=Whereabouts.of(settings))
    inbox.scan("sweep")
    other = settings.work.parent / "other-node"
    files.move_unique(taken, other)
    deleted.unlink()
    with capture_logs() as logs:
        first = pipeline.claim(taken, inbox.taken(taken))
        second = pipeline.claim(deleted, inbox.taken(deleted))
    if settings.shared:
        assert (first.status, logs[0]) == ("claimed_elsewhere", {
            "event": "file_claimed_elsewhere", "log_level": "info", "file": taken.name,
            "feed": "transactions", "by": "other-node"})
    else:
        assert (first.status, logs[0]["event"]) == ("vanished", "file_vanished")
    assert (second.status, logs[1]) == ("vanished", {
        "event": "file_vanished", "log_level": "info", "file": deleted.name,
        "feed": "transactions"})
    assert (other / taken.name).exists() and not list(settings.work.iterdir())
