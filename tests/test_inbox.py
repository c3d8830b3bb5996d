"""Unit tests for `daemon.watch.inbox.Inbox` on fake monotonic and wall clocks: no sleeps."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import structlog

from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon.watch.inbox import STALLED_WRITER_SETTLES, Hint, Inbox
from tests.conftest import day_table, write_parquet

SETTLE = 10.0
NAME = "transactions_2026-02-10.parquet"
FEEDS = Feeds((TRANSACTIONS,))


class Clocks:
    """A monotonic clock and a wall clock that move only when told."""

    def __init__(self) -> None:
        self.mono = 5_000.0
        self.wall = 1_800_000_000.0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds

    def wall_ns(self, offset: float = 0.0) -> int:
        return int((self.wall + offset) * 1e9)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def inbox_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "inbox"
    directory.mkdir()
    return directory


@pytest.fixture
def inbox(inbox_dir: Path, clocks: Clocks) -> Inbox:
    return Inbox(inbox_dir, SETTLE, feeds=FEEDS, clock=clocks.monotonic)


def put(clocks: Clocks, directory: Path, name: str = NAME, content: bytes | None = None,
        age: float = 0.0) -> Path:
    """Write a file (by default a complete Parquet file) whose mtime is `age` seconds
    before the fake wall clock's now."""
    path = directory / name
    path.write_bytes(parquet_bytes() if content is None else content)
    mtime = clocks.wall_ns(-age)
    os.utime(path, ns=(mtime, mtime))
    return path


def test_moved_file_is_due_at_once(inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    path = put(clocks, inbox_dir)
    candidate = inbox.note(path, "moved", "event")
    assert candidate is not None
    assert candidate.complete
    assert candidate.found_by == "event"
    assert inbox.due() == ([path], None)


@functools.cache
def parquet_bytes(rows: int = 25) -> bytes:
    """A complete Parquet file's bytes, footer included."""
    sink = pa.BufferOutputStream()
    pq.write_table(day_table("2026-02-10", rows), sink)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize("hint", [None, "created", "modified"])
def test_fresh_file_waits_for_settle(inbox: Inbox, inbox_dir: Path, clocks: Clocks,
                                     hint: Hint | None) -> None:
    path = put(clocks, inbox_dir)
    assert inbox.note(path, hint, "sweep") is not None
    assert inbox.due() == ([], SETTLE)
    clocks.advance(SETTLE - 2.5)
    ready, wait = inbox.due()
    assert ready == []
    assert wait == pytest.approx(2.5)
    clocks.advance(2.5)
    assert inbox.due() == ([path], None)


def test_settle_counts_our_own_observation_when_mtime_is_in_future(
    inbox: Inbox, inbox_dir: Path, clocks: Clocks
) -> None:
    # The wall clock cannot vouch for the file (mtime ahead of now): only quiet time counts.
    path = put(clocks, inbox_dir, age=-100.0)
    inbox.note(path, None, "sweep")
    clocks.advance(SETTLE - 1)
    assert inbox.due()[0] == []
    clocks.advance(1)
    assert inbox.due() == ([path], None)


@pytest.mark.parametrize("age", [SETTLE, SETTLE * 10 + 1, 86_400.0])
def test_an_old_mtime_does_not_count_toward_settle(inbox: Inbox, inbox_dir: Path,
                                                   clocks: Clocks, age: float) -> None:
    """Guards a found bug: quiet time was the larger of our own observation and the wall
    clock's distance from the mtime, so a file written in place by a producer (or on an
    NFS server) whose clock lags by more than ten settle times was taken mid-write."""
    path = put(clocks, inbox_dir, content=b"PAR1 still being written", age=age)
    inbox.note(path, "created", "event")
    assert inbox.due() == ([], SETTLE)
    clocks.advance(SETTLE)
    # Still being written (no footer), so it waits the stalled-writer time from here on.
    ready, wait = inbox.due()
    assert ready == [] and wait == pytest.approx(SETTLE * (STALLED_WRITER_SETTLES - 1))


def test_size_change_restarts_settle(inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    path = put(clocks, inbox_dir, content=parquet_bytes(10))
    inbox.note(path, None, "sweep")
    clocks.advance(SETTLE - 1)
    assert inbox.due()[0] == []
    put(clocks, inbox_dir, content=parquet_bytes(20))
    ready, wait = inbox.due()
    assert ready == []
    assert wait == pytest.approx(SETTLE)
    clocks.advance(SETTLE - 1)
    assert inbox.due()[0] == []
    clocks.advance(1)
    assert inbox.due() == ([path], None)


def test_size_change_with_old_mtime_still_restarts_settle(
    inbox: Inbox, inbox_dir: Path, clocks: Clocks
) -> None:
    path = put(clocks, inbox_dir, content=b"part")
    inbox.note(path, None, "sweep")
    clocks.advance(SETTLE - 1)
    path.write_bytes(b"partial and more")
    os.utime(path, ns=(clocks.wall_ns(), clocks.wall_ns()))
    inbox.note(path, "modified", "event")
    assert inbox.due()[0] == []


def test_change_after_moved_makes_it_incomplete_again(
    inbox: Inbox, inbox_dir: Path, clocks: Clocks
) -> None:
    path = put(clocks, inbox_dir)
    inbox.note(path, "moved", "event")
    put(clocks, inbox_dir, content=b"still being written")
    assert inbox.due() == ([], SETTLE)


def test_closed_with_footer_is_due_at_once(inbox: Inbox, inbox_dir: Path,
                                           clocks: Clocks) -> None:
    path = write_parquet(inbox_dir, day_table("2026-02-10"))
    os.utime(path, ns=(clocks.wall_ns(), clocks.wall_ns()))
    inbox.note(path, "closed", "event")
    assert inbox.due() == ([path], None)


@pytest.mark.parametrize("content", [b"", b"partial", b"PAR1" + b"\x00" * 64])
def test_closed_without_footer_waits(inbox: Inbox, inbox_dir: Path, clocks: Clocks,
                                     content: bytes) -> None:
    path = put(clocks, inbox_dir, content=content)
    inbox.note(path, "closed", "event")
    assert inbox.due() == ([], SETTLE)
    # Complete is not valid: after the settle it is handed over all the same.
    clocks.advance(SETTLE)
    assert inbox.due() == ([path], None)


@pytest.mark.parametrize("name", [".hidden", f".{NAME}", f"{NAME}.tmp", f"{NAME}.part"])
@pytest.mark.parametrize("hint", [None, "moved", "closed"])
def test_ignored_names_are_never_candidates(inbox: Inbox, inbox_dir: Path, clocks: Clocks,
                                            name: str, hint: Hint | None) -> None:
    path = put(clocks, inbox_dir, name=name, age=SETTLE * 10)
    assert inbox.note(path, hint, "event") is None
    assert inbox.scan("sweep") == []
    assert inbox.candidates == {}
    assert inbox.due() == ([], None)


def test_path_outside_the_inbox_is_not_a_candidate(inbox: Inbox, tmp_path: Path,
                                                    clocks: Clocks) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    path = put(clocks, outside)
    assert inbox.note(path, "moved", "event") is None
    assert inbox.candidates == {}


def _make_dir(path: Path) -> None:
    path.mkdir()


def _make_fifo(path: Path) -> None:
    os.mkfifo(path)


@pytest.mark.parametrize("make", [_make_dir, _make_fifo], ids=["directory", "fifo"])
def test_non_file_entry_is_skipped_with_one_warning(
    inbox: Inbox, inbox_dir: Path, clocks: Clocks, make: Callable[[Path], None]
) -> None:
    path = inbox_dir / NAME
    make(path)
    with structlog.testing.capture_logs() as logs:
        assert inbox.scan("sweep") == []
        assert inbox.note(path, "moved", "event") is None
        assert inbox.note(path, "closed", "event") is None
        assert inbox.scan("rescan") == []
    assert inbox.candidates == {}
    assert inbox.due() == ([], None)
    skipped = [e for e in logs if e["event"] == "inbox_entry_skipped"]
    assert len(skipped) == 1
    assert skipped[0]["log_level"] == "warning"
    assert skipped[0]["file"] == NAME
    assert skipped[0]["hint"]


def test_skipped_entry_warns_again_after_it_went_away(inbox: Inbox, inbox_dir: Path) -> None:
    path = inbox_dir / "subdir"
    with structlog.testing.capture_logs() as logs:
        path.mkdir()
        inbox.scan("sweep")
        path.rmdir()
        inbox.scan("sweep")
        path.mkdir()
        inbox.scan("sweep")
    assert [e["event"] for e in logs] == ["inbox_entry_skipped"] * 2


def test_file_replaced_by_a_directory_is_no_longer_a_candidate(
    inbox: Inbox, inbox_dir: Path, clocks: Clocks
) -> None:
    path = put(clocks, inbox_dir)
    inbox.note(path, "moved", "event")
    path.unlink()
    path.mkdir()
    with structlog.testing.capture_logs():
        inbox.scan("rescan")
    clocks.advance(SETTLE * 10)
    # The worker would be handed a directory to load.
    assert inbox.due() == ([], None)
    assert inbox.candidates == {}


@pytest.mark.parametrize("dangling", [False, True], ids=["to-file", "dangling"])
def test_symlink_is_due_at_once(inbox: Inbox, inbox_dir: Path, tmp_path: Path,
                                clocks: Clocks, dangling: bool) -> None:
    target = tmp_path / "target.parquet"
    if not dangling:
        target.write_bytes(b"partial")
    link = inbox_dir / NAME
    link.symlink_to(target)
    found = inbox.scan("sweep")
    assert [c.path for c in found] == [link]
    assert inbox.due() == ([link], None)


def test_vanished_file_disappears_from_candidates(inbox: Inbox, inbox_dir: Path,
                                                  clocks: Clocks) -> None:
    """Guards a found bug: a detected file deleted before its claim was dropped without
    a word, so its `file_detected` line was the last the log said of it."""
    first = put(clocks, inbox_dir, name="transactions_2026-02-10.parquet")
    second = put(clocks, inbox_dir, name="transactions_2026-02-11.parquet")
    third = put(clocks, inbox_dir, name="transactions_2026-02-12.parquet")
    assert len(inbox.scan("sweep")) == 3
    with structlog.testing.capture_logs() as logs:
        first.unlink()
        clocks.advance(SETTLE)
        assert inbox.due() == ([second, third], None)
        assert set(inbox.candidates) == {second.name, third.name}
        second.unlink()
        assert inbox.scan("rescan") == []
        assert set(inbox.candidates) == {third.name}
        third.unlink()
        assert inbox.note(third, "moved", "event") is None
        assert inbox.candidates == {}
        assert inbox.due() == ([], None)
        # A name never detected vanishes without a line: there is nothing to close.
        assert inbox.note(inbox_dir / "transactions_2026-02-13.parquet", "created",
                          "event") is None
    assert logs == [{"event": "file_vanished", "log_level": "info", "file": path.name,
                     "feed": "transactions"} for path in (first, second, third)]


def test_scan_returns_only_newly_found(inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    a = put(clocks, inbox_dir, name="transactions_2026-02-10.parquet")
    b = put(clocks, inbox_dir, name="transactions_2026-02-11.parquet")
    first = inbox.scan("sweep")
    assert sorted(c.path for c in first) == [a, b]
    assert {c.found_by for c in first} == {"sweep"}
    c = put(clocks, inbox_dir, name="transactions_2026-02-12.parquet")
    second = inbox.scan("rescan")
    assert [(x.path, x.found_by) for x in second] == [(c, "rescan")]
    assert inbox.scan("rescan") == []
    assert inbox.candidates[a.name].found_by == "sweep"
    assert inbox.candidates[c.name].found_by == "rescan"


def test_note_returns_candidate_only_when_new(inbox: Inbox, inbox_dir: Path,
                                              clocks: Clocks) -> None:
    path = put(clocks, inbox_dir)
    assert inbox.note(path, "created", "event") is not None
    assert inbox.note(path, "modified", "event") is None
    assert inbox.scan("sweep") == []
    assert inbox.candidates[NAME].found_by == "event"


def test_due_files_come_by_day_and_a_days_drops_in_drop_order(
        inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    # Dropped in this order: the ~1 of the 10th before the plain name of the 10th.
    names = ["transactions_2026-02-12.parquet", "transactions_2026-02-10~1.parquet",
             "transactions_2026-02-11.parquet", "transactions_2026-02-10.parquet"]
    for name in names:
        inbox.note(put(clocks, inbox_dir, name=name), "moved", "event")
    ready, wait = inbox.due()
    assert [p.name for p in ready] == [
        "transactions_2026-02-10~1.parquet", "transactions_2026-02-10.parquet",
        "transactions_2026-02-11.parquet", "transactions_2026-02-12.parquet"]
    assert wait is None


def _same_ctime(inbox: Inbox, paths: list[Path]) -> None:
    """What a filesystem with coarse timestamps records for drops close together."""
    for path in paths:
        inbox.candidates[path.name].ctime_ns = 1_700_000_000 * 10**9


def test_drops_of_one_day_at_the_same_time_go_by_their_suffix_as_a_number(
        inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    """Guards a found bug: by name, `~10` sorts before `~2`, so an older drop could be
    applied last."""
    names = ["transactions_2026-02-10~10.parquet", "transactions_2026-02-10~2.parquet",
             "transactions_2026-02-10.parquet", "transactions_2026-02-10~1.parquet"]
    paths = [put(clocks, inbox_dir, name=name) for name in names]
    for path in paths:
        inbox.note(path, "moved", "event")
    _same_ctime(inbox, paths)
    assert [p.name for p in inbox.due()[0]] == [
        "transactions_2026-02-10.parquet", "transactions_2026-02-10~1.parquet",
        "transactions_2026-02-10~2.parquet", "transactions_2026-02-10~10.parquet"]


def test_a_later_drop_of_a_day_waits_for_an_earlier_one_still_settling(
        inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    earlier = put(clocks, inbox_dir, content=b"PAR1 being written")
    inbox.note(earlier, "created", "event")
    later = put(clocks, inbox_dir, name="transactions_2026-02-10~1.parquet")
    inbox.note(later, "moved", "event")
    other_day = put(clocks, inbox_dir, name="transactions_2026-02-11.parquet")
    inbox.note(other_day, "moved", "event")
    # The other day goes; the later drop of the 10th waits behind the earlier one.
    assert inbox.due() == ([other_day], SETTLE)
    inbox.taken(other_day)
    earlier.write_bytes(parquet_bytes())  # its writer finishes and closes it
    inbox.note(earlier, "closed", "event")
    # Complete only now, after the renamed one: by its last write, it is the later drop.
    assert [p.name for p in inbox.due()[0]] == [later.name, earlier.name]


def test_due_wait_is_the_nearest_remaining(inbox: Inbox, inbox_dir: Path,
                                           clocks: Clocks) -> None:
    moved = put(clocks, inbox_dir, name="a.parquet")
    inbox.note(moved, "moved", "event")
    put(clocks, inbox_dir, name="b.parquet")
    inbox.scan("sweep")
    clocks.advance(7.0)
    put(clocks, inbox_dir, name="c.parquet")
    inbox.scan("rescan")
    ready, wait = inbox.due()
    assert ready == [moved]
    assert wait == pytest.approx(SETTLE - 7.0)


def test_taken_forgets_the_file(inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    path = put(clocks, inbox_dir)
    inbox.note(path, "moved", "event")
    inbox.taken(path)
    assert inbox.candidates == {}
    assert inbox.due() == ([], None)


@pytest.mark.parametrize("breakage", ["missing", "a file"])
def test_an_inbox_that_cannot_be_listed_is_reported_not_fatal(
        inbox: Inbox, inbox_dir: Path, breakage: str) -> None:
    inbox_dir.rmdir()
    if breakage == "a file":
        inbox_dir.write_bytes(b"")
    with structlog.testing.capture_logs() as logs:
        assert inbox.scan("rescan") == []
    [line] = logs
    assert line["event"] == "inbox_unavailable" and line["log_level"] == "error"
    assert line["reason"] and line["hint"]


@pytest.mark.parametrize("hint", ["created", "modified"])
def test_an_unfinished_file_its_writer_holds_open_waits_longer(
        inbox: Inbox, inbox_dir: Path, clocks: Clocks, hint: Hint) -> None:
    """Guards a found bug: a writer pausing longer than the settle time had its half-
    written file quarantined, then went on writing into the quarantined copy."""
    path = put(clocks, inbox_dir, content=b"PAR1 first row group")
    inbox.note(path, hint, "event")
    clocks.advance(SETTLE)
    ready, wait = inbox.due()
    assert ready == [] and wait == pytest.approx(SETTLE * (STALLED_WRITER_SETTLES - 1))
    clocks.advance(SETTLE * (STALLED_WRITER_SETTLES - 1))
    assert inbox.due() == ([path], None)  # a stalled writer is not waited on forever


def test_a_closed_unfinished_file_waits_only_the_settle_time(
        inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    path = put(clocks, inbox_dir, content=b"PAR1 truncated")
    inbox.note(path, "created", "event")
    inbox.note(path, "closed", "event")  # the writer is done, whatever it wrote
    clocks.advance(SETTLE)
    assert inbox.due() == ([path], None)


def test_an_unfinished_file_a_listing_found_waits_as_if_its_writer_held_it(
        inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    """Guards a found bug: a file written in place while the daemon started was found by
    the sweep, with no event to say its writer still held it, and was taken after one
    settle time, half-written."""
    path = put(clocks, inbox_dir, content=b"PAR1 first row group")
    assert [c.path for c in inbox.scan("sweep")] == [path]
    clocks.advance(SETTLE)
    ready, wait = inbox.due()
    assert ready == [] and wait == pytest.approx(SETTLE * (STALLED_WRITER_SETTLES - 1))
    inbox.note(path, "closed", "event")  # now an event says the writer is done
    assert inbox.due() == ([path], None)


def test_a_file_a_listing_found_is_timed_by_our_clock_whatever_its_mtime(
        inbox: Inbox, inbox_dir: Path, clocks: Clocks) -> None:
    complete = put(clocks, inbox_dir, age=SETTLE * 100)
    # Left half-written long ago, or still being written by a host whose clock lags: the
    # mtime cannot tell the two apart, so it is waited on like any writer's file.
    unfinished = put(clocks, inbox_dir, "transactions_2026-02-11.parquet", b"PAR1 cut",
                     age=SETTLE * 100)
    inbox.scan("sweep")
    assert inbox.due()[0] == []
    clocks.advance(SETTLE)
    assert inbox.due()[0] == [complete]
    inbox.taken(complete)
    clocks.advance(SETTLE * (STALLED_WRITER_SETTLES - 1))
    assert inbox.due()[0] == [unfinished]


def test_a_scan_lists_files_in_name_order(inbox: Inbox, inbox_dir: Path,
                                          clocks: Clocks) -> None:
    """The order they are loaded in: `file_detected` lines of a sweep read the same way
    (directory order is whatever the filesystem keeps)."""
    days = [f"transactions_2026-02-{d:02}.parquet" for d in (17, 3, 28, 10, 1, 22, 5, 14)]
    for name in days:
        put(clocks, inbox_dir, name=name)
    assert [c.path.name for c in inbox.scan("sweep")] == sorted(days)
