"""Unit tests for `daemon.files`: names, the no-follow open, hashing, the footer probe, moves."""

from __future__ import annotations

import errno
import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon import files, framing, routing
from filedrop_etl.daemon.errors import FileNameError
from tests.conftest import day_table, write_parquet

NAME = "transactions_2026-02-10.parquet"


# --- is_ignored ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        (".hidden", True),
        (".transactions_2026-02-10.parquet", True),
        ("transactions_2026-02-10.parquet.tmp", True),
        ("transactions_2026-02-10.parquet.part", True),
        ("upload.part", True),
        (NAME, False),
        ("transactions_2026-02-10~1.parquet", False),
        ("notes.txt", False),
        ("x.tmp.parquet", False),
        ("partial.parquet", False),
        ("tmp", False),
    ],
)
def test_is_ignored(name: str, ignored: bool) -> None:
    assert files.is_ignored(name) is ignored


# --- run_date_from_name -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "run_date"),
    [
        (NAME, "2026-02-10"),
        ("transactions_2026-02-10~3.parquet", "2026-02-10"),
        ("transactions_2026-02-10~12345.parquet", "2026-02-10"),
        ("transactions_2024-02-29.parquet", "2024-02-29"),
        ("transactions_1999-12-31.parquet", "1999-12-31"),
    ],
)
def test_run_date_from_valid_name(name: str, run_date: str) -> None:
    assert routing.run_date_from_name(name, TRANSACTIONS) == run_date


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("sales_2026-02-10.parquet", "does not match"),
        ("Transactions_2026-02-10.parquet", "does not match"),
        ("transactions_2026-02-10.csv", "does not match"),
        ("transactions_2026-02-10.parquet.tmp", "does not match"),
        ("transactions_2026-02-10", "does not match"),
        ("transactions_2026-02-10~.parquet", "does not match"),
        ("transactions_2026-02-10~a.parquet", "does not match"),
        ("transactions_yesterday.parquet", "does not match"),
        ("transactions_20260210.parquet", "does not match"),
        ("transactions_2026-2-10.parquet", "does not match"),
        ("x_transactions_2026-02-10.parquet", "does not match"),
        # A file name may end in a newline on POSIX; it does not end in `.parquet`.
        ("transactions_2026-02-10.parquet\n", "does not match"),
        ("transactions_2026-02-30.parquet", "not a calendar date"),
        ("transactions_2025-02-29.parquet", "not a calendar date"),
        ("transactions_2026-13-01.parquet", "not a calendar date"),
        ("transactions_2026-00-10.parquet", "not a calendar date"),
        ("transactions_0000-01-01.parquet", "not a calendar date"),
        ("transactions_\uff12\uff10\uff12\uff16-02-10.parquet", "not a calendar date"),
    ],
)
def test_run_date_from_bad_name_raises_with_hint(name: str, says: str) -> None:
    with pytest.raises(FileNameError) as caught:
        routing.run_date_from_name(name, TRANSACTIONS)
    assert says in caught.value.message
    assert repr(name) in caught.value.message  # a newline shows as \n
    assert caught.value.hint
    assert caught.value.stage == "name"


def test_the_name_rule_in_words_holds_to_the_parser() -> None:
    """The hints that ask for a new name quote `name_rule`: its examples must do as it says."""
    assert "transactions_YYYY-MM-DD.parquet" in routing.name_rule(TRANSACTIONS)
    assert routing.run_date_from_name("transactions_2026-03-04~1.parquet",
                                    TRANSACTIONS) == "2026-03-04"
    assert "transactions_2026-03-04~1.parquet loads" in routing.name_rule(TRANSACTIONS)
    with pytest.raises(FileNameError):
        routing.run_date_from_name("transactions_2026-03-04-copy.parquet", TRANSACTIONS)
    assert ("transactions_2026-03-04-copy.parquet fails on its name"
            in routing.name_rule(TRANSACTIONS))


# --- open_no_follow -----------------------------------------------------------------------


def test_open_no_follow_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(b"payload")
    with files.open_no_follow(path) as handle:
        assert handle.read() == b"payload"


@pytest.mark.parametrize("dangling", [False, True], ids=["to-file", "dangling"])
def test_open_no_follow_refuses_a_symlink(tmp_path: Path, dangling: bool) -> None:
    target = tmp_path / "target.parquet"
    if not dangling:
        target.write_bytes(b"secret")
    link = tmp_path / NAME
    link.symlink_to(target)
    with pytest.raises(OSError) as caught:
        files.open_no_follow(link)
    assert caught.value.errno == errno.ELOOP


def test_open_no_follow_refuses_a_directory(tmp_path: Path) -> None:
    directory = tmp_path / NAME
    directory.mkdir()
    with pytest.raises(OSError) as caught:
        files.open_no_follow(directory)
    assert caught.value.errno == errno.EISDIR


def test_open_no_follow_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / NAME
    os.mkfifo(fifo)
    with pytest.raises(OSError) as caught:
        files.open_no_follow(fifo)
    assert caught.value.errno == errno.EISDIR


# --- sha256_of ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, 4096, files._CHUNK, files._CHUNK + 1, 2 * files._CHUNK + 17]
)
def test_sha256_of_matches_hashlib_and_rewinds(tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / NAME
    path.write_bytes(data)
    with files.open_no_follow(path) as handle:
        handle.seek(size // 2)  # a half-read handle is hashed from its start
        digest, seen = files.sha256_of(handle)
        assert handle.tell() == 0
        assert handle.read() == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert seen == size


# --- has_parquet_footer -------------------------------------------------------------------


@pytest.fixture
def parquet_bytes(tmp_path: Path) -> bytes:
    return write_parquet(tmp_path / "src", day_table("2026-02-10")).read_bytes()


def test_has_parquet_footer_true_for_a_real_file(tmp_path: Path, parquet_bytes: bytes) -> None:
    path = tmp_path / NAME
    path.write_bytes(parquet_bytes)
    assert framing.has_parquet_footer(path)


@pytest.mark.parametrize(
    "cut",
    [
        lambda n: n - 1,
        lambda n: n - 4,
        lambda n: n - 5,
        lambda n: n - 8,
        lambda n: n // 2,
        lambda n: 12,
        lambda n: 4,
        lambda n: 0,
    ],
    ids=["minus-1", "minus-4", "minus-5", "minus-8", "half", "12", "magic-only", "empty"],
)
def test_has_parquet_footer_false_for_a_truncated_copy(
    tmp_path: Path, parquet_bytes: bytes, cut: Callable[[int], int]
) -> None:
    path = tmp_path / NAME
    path.write_bytes(parquet_bytes[: cut(len(parquet_bytes))])
    assert not framing.has_parquet_footer(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"PAR1",
        b"PAR1PAR1",
        random.Random(0).randbytes(4096),
        b"txn_id,customer_id,amount,run_date\n20260210-0000,10,1.25,2026-02-10\n",
        # Both magics, but a footer length longer than the file.
        b"PAR1" + b"\x00" * 8 + (1000).to_bytes(4, "little") + b"PAR1",
        # Trailing magic only.
        b"\x00" * 12 + (0).to_bytes(4, "little") + b"PAR1",
    ],
    ids=["zero-bytes", "magic", "two-magics", "random", "csv", "footer-too-long",
         "no-head-magic"],
)
def test_has_parquet_footer_false_for_non_parquet(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / NAME
    path.write_bytes(content)
    assert not framing.has_parquet_footer(path)


def test_has_parquet_footer_false_for_symlink_directory_and_missing(
    tmp_path: Path, parquet_bytes: bytes
) -> None:
    real = tmp_path / "real.parquet"
    real.write_bytes(parquet_bytes)
    link = tmp_path / "link.parquet"
    link.symlink_to(real)
    directory = tmp_path / "dir.parquet"
    directory.mkdir()
    assert framing.has_parquet_footer(real)
    assert not framing.has_parquet_footer(link)
    assert not framing.has_parquet_footer(directory)
    assert not framing.has_parquet_footer(tmp_path / "missing.parquet")


# --- move_unique --------------------------------------------------------------------------


def _make(directory: Path, name: str, content: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "second", "third"),
    [
        (NAME, "transactions_2026-02-10~1.parquet", "transactions_2026-02-10~2.parquet"),
        ("README", "README~1", "README~2"),
        ("a.b.c", "a.b~1.c", "a.b~2.c"),
        (".hidden", ".hidden~1", ".hidden~2"),
    ],
)
def test_move_unique_never_overwrites(tmp_path: Path, name: str, second: str,
                                      third: str) -> None:
    dest = tmp_path / "processed"
    sources = [_make(tmp_path / f"src{i}", name, f"file {i}".encode()) for i in range(3)]
    moved = [files.move_unique(src, dest) for src in sources]
    assert [p.name for p in moved] == [name, second, third]
    assert all(p.parent == dest for p in moved)
    assert [p.read_bytes() for p in moved] == [b"file 0", b"file 1", b"file 2"]
    assert not any(src.exists() for src in sources)
    assert sorted(p.name for p in dest.iterdir()) == sorted([name, second, third])


def test_move_unique_shortens_a_utf8_name_between_characters(tmp_path: Path) -> None:
    """Guards a found bug: a 255-byte UTF-8 name was cut inside a character (to leave room
    for `.error.json`), so the daemon made it a name that is not UTF-8."""
    prefix = "transactions_2026-02-10__"  # 25 bytes, then two bytes per character
    src = _make(tmp_path / "work", prefix + "é" * 111 + ".parquet", b"x")
    moved = files.move_unique(src, tmp_path / "failed")
    # 236 bytes are left before `.parquet`: 105 whole characters, not 105 and a half.
    assert moved.name == prefix + "é" * 105 + ".parquet"
    assert len(os.fsencode(moved.name + files.SIDECAR_SUFFIX)) <= files.NAME_MAX


def test_move_unique_creates_the_directory_and_takes_a_new_name(tmp_path: Path) -> None:
    src = _make(tmp_path / "work", "whatever.bin", b"x")
    dest = tmp_path / "a" / "b"
    moved = files.move_unique(src, dest, name=NAME)
    assert moved == dest / NAME
    assert moved.read_bytes() == b"x"
    assert not src.exists()


def test_move_unique_skips_a_name_whose_sidecar_exists(tmp_path: Path) -> None:
    dest = tmp_path / "failed"
    dest.mkdir()
    sidecar = dest / (NAME + files.SIDECAR_SUFFIX)
    sidecar.write_text("{}")
    src = _make(tmp_path / "work", NAME, b"new")
    moved = files.move_unique(src, dest)
    assert moved.name == "transactions_2026-02-10~1.parquet"
    assert not (dest / NAME).exists()
    assert sidecar.read_text() == "{}"


def test_move_unique_moves_a_symlink_itself(tmp_path: Path) -> None:
    target = _make(tmp_path / "elsewhere", "target.parquet", b"target bytes")
    link = tmp_path / "inbox" / NAME
    link.parent.mkdir()
    link.symlink_to(target)
    moved = files.move_unique(link, tmp_path / "failed")
    assert moved.is_symlink()
    assert moved.readlink() == target
    assert not os.path.lexists(link)
    assert target.read_bytes() == b"target bytes"
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.parquet"]


def test_move_unique_keeps_a_dangling_symlink_taking_the_name(tmp_path: Path) -> None:
    dest = tmp_path / "failed"
    dest.mkdir()
    (dest / NAME).symlink_to(tmp_path / "nowhere")
    src = _make(tmp_path / "work", NAME, b"new")
    moved = files.move_unique(src, dest)
    assert moved.name == "transactions_2026-02-10~1.parquet"
    assert (dest / NAME).is_symlink()


# --- rename_no_replace --------------------------------------------------------------------


@pytest.fixture(params=["renameat2", "fallback"])
def rename_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the kernel's RENAME_NOREPLACE and with the check-then-rename path."""
    if request.param == "fallback":
        monkeypatch.setattr(files, "_renameat2", None)
    elif files._renameat2 is None:
        pytest.skip("renameat2 is not available in this libc")
    return str(request.param)


def test_rename_no_replace_renames(tmp_path: Path, rename_path: str) -> None:
    src = _make(tmp_path, "a", b"a")
    files.rename_no_replace(src, tmp_path / "b")
    assert not src.exists()
    assert (tmp_path / "b").read_bytes() == b"a"


def test_rename_no_replace_refuses_an_existing_file(tmp_path: Path, rename_path: str) -> None:
    src = _make(tmp_path, "a", b"source")
    dst = _make(tmp_path, "b", b"destination")
    with pytest.raises(FileExistsError):
        files.rename_no_replace(src, dst)
    assert src.read_bytes() == b"source"
    assert dst.read_bytes() == b"destination"


def test_rename_no_replace_refuses_a_dangling_symlink(tmp_path: Path, rename_path: str) -> None:
    src = _make(tmp_path, "a", b"source")
    dst = tmp_path / "b"
    dst.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        files.rename_no_replace(src, dst)
    assert src.read_bytes() == b"source"
    assert dst.is_symlink()
    assert dst.readlink() == tmp_path / "nowhere"


def test_rename_no_replace_missing_source_is_not_exists(tmp_path: Path,
                                                        rename_path: str) -> None:
    with pytest.raises(FileNotFoundError):
        files.rename_no_replace(tmp_path / "missing", tmp_path / "b")
    assert not os.path.lexists(tmp_path / "b")


def test_a_name_that_is_not_utf8_is_quoted_as_the_log_shows_it() -> None:
    name = os.fsdecode(b"transactions_2026-02-10\xff.parquet")
    with pytest.raises(FileNameError) as caught:
        routing.run_date_from_name(name, TRANSACTIONS)
    assert "transactions_2026-02-10\\xff.parquet" in caught.value.message
    assert "udcff" not in caught.value.message
