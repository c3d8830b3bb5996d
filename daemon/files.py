"""Names, hashing and moves of the files the daemon handles: the filesystem side of a load.

Owns which inbox names are ignored, which feed a name belongs to (or none, and what that
name is told), how a run date is read from a name by its feed's format, the no-follow
open, the SHA-256, the Parquet-footer probe, and the moves between inbox, work and
processed (atomic renames within one filesystem that never overwrite, under a name whose
error sidecar is free too); the move to failed/ is `daemon.load.quarantine`'s. It knows
nothing of SQLite or of what the rows mean.
"""

from __future__ import annotations

import ctypes
import difflib
import errno
import hashlib
import itertools
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from filedrop_etl.config import ConfigError
from filedrop_etl.config.contract import Contract
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon.errors import BadInput, FileNameError

# Kept as data, as watchfiles keeps its filters: producers write under these names first.
IGNORED_PREFIXES: tuple[str, ...] = (".",)
IGNORED_SUFFIXES: tuple[str, ...] = (".tmp", ".part")
SIDECAR_SUFFIX = ".error.json"
NAME_MAX = 255  # bytes in one file name on ext4, xfs, btrfs and tmpfs
PARQUET_MAGIC = b"PAR1"
_CHUNK = 1 << 20
# About a tenth of a second of hashing here, so the worker's life shows at that pace.
PROGRESS_BYTES = 64 << 20


def is_ignored(name: str) -> bool:
    """Hidden and temporary names belong to writers still at work."""
    return name.startswith(IGNORED_PREFIXES) or name.endswith(IGNORED_SUFFIXES)


def _quoted(name: str) -> str:
    """`repr(name)` (so a newline shows as `\\n`), with undecodable bytes as `\\xNN`, as the
    log and the ledger show them, not as Python's `\\udcNN` surrogates."""
    return re.sub(r"\\udc([89a-f][0-9a-f])", r"\\x\1", repr(name))


def name_rule(contract: Contract) -> str:
    """What `run_date_from_name` accepts for `contract`, in words, for every hint that asks
    a person for a new name (tests/test_files.py holds its two examples to the parser)."""
    stem, dot, ext = contract.file_name_for("2026-03-04").rpartition(".")
    return (f"{contract.file_name_example} with the run date of its rows (a ~N before "
            f"{dot}{ext} is allowed: {stem}~1{dot}{ext} loads, "
            f"{stem}-copy{dot}{ext} fails on its name)")


_REDROP = re.compile(r"(?P<stem>.*)~(?P<n>\d+)(?P<ext>\.[^.~]*)?", re.DOTALL)


def redrop_of(name: str) -> tuple[str, int]:
    """The name a `~N` re-drop shares with its first drop, and N (0 for the first):
    `transactions_D~10.parquet` is (`transactions_D.parquet`, 10)."""
    match = _REDROP.fullmatch(name)
    if match is None:
        return name, 0
    return match["stem"] + (match["ext"] or ""), int(match["n"])


def run_date_from_name(name: str, contract: Contract) -> str:
    """The ISO run date a file name promises, read with the feed's date format, or
    `FileNameError` saying what was expected."""
    match = contract.file_name_pattern.fullmatch(name)
    if match is None:
        raise FileNameError(
            f"file name {_quoted(name)} does not match {contract.file_name_example}",
            hint="rename the file to the contract's pattern and drop it again",
        )
    text = match["date"]
    try:
        # ASCII digits only: the pattern's `\d` (and `strptime`) take any script's.
        run_date = contract.run_date_of(name) if text.isascii() else None
    except ValueError:
        run_date = None
    if run_date is None:
        raise FileNameError(
            f"file name {_quoted(name)} holds {text!r}, which is not a calendar date",
            hint="rename the file with the real run date and drop it again",
        ) from None
    return run_date


# How alike (difflib's ratio) a name must be to a feed's names to be told it is nearest:
# `order_D.parquet` is 0.98 like `orders_D.parquet`, `notes.txt` 0.15 like any.
NEAREST_RATIO = 0.6


def nearest_feed(name: str, feeds: Feeds) -> Contract | None:
    """The feed whose file names look most like `name` (digits taken as alike, so a date
    counts as the feed's date), for the hint to a name that matches none; None if no
    feed's look like it (`NEAREST_RATIO`)."""
    def looks(text: str) -> str:
        return re.sub(r"\d", "0", text)

    shape = looks(name)
    scored = [(difflib.SequenceMatcher(None, shape, looks(c.file_name_for(
        "2026-03-04"))).ratio(), -i, c) for i, c in enumerate(feeds)]
    best = max(scored, key=lambda x: x[:2], default=None)
    return best[2] if best is not None and best[0] >= NEAREST_RATIO else None


def feed_of(name: str, feeds: Feeds) -> Contract:
    """The feed a file name belongs to, or `FileNameError` listing every feed's pattern
    and the nearest one. A daemon of one feed says what it always said."""
    contract = feeds.for_file(name)
    if contract is not None:
        return contract
    if len(feeds) == 1:
        run_date_from_name(name, feeds.all[0])  # raises its own words
    nearest = nearest_feed(name, feeds)
    raise FileNameError(
        f"file name {_quoted(name)} does not match any feed's pattern "
        f"({', '.join(feeds.examples)})"
        + (f"; the nearest is {nearest.file_name_example}" if nearest else ""),
        hint="rename the file to its feed's pattern and drop it again, or declare a feed "
        "whose pattern it matches" + (f"; the nearest feed, {nearest.name}, takes "
                                      f"{name_rule(nearest)}" if nearest else ""),
    )


def feed_name(name: str, feeds: Feeds) -> str:
    """The name of the feed a file name belongs to, as logs, metrics and the ledger
    carry it: `""` for a name that matches no feed."""
    contract = feeds.for_file(name)
    return "" if contract is None else contract.name


def left_unmatched(name: str, feeds: Feeds) -> bool:
    """Whether a file of this name stays in the inbox untouched: it matches no feed, and
    the operator chose `unmatched = "leave"` for such files."""
    return feeds.unmatched == "leave" and feeds.for_file(name) is None


def open_no_follow(path: Path) -> BinaryIO:
    """Open a regular file for reading without following a symlink or blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def sha256_of(handle: BinaryIO, progress: Callable[[], None] = lambda: None,
              limit: int | None = None) -> tuple[str, int]:
    """Lowercase hex SHA-256 and size of an open file, read from its start; rewinds it.

    `progress` is called after every `PROGRESS_BYTES` read: hashing a file of many
    gigabytes (or a sparse one) is work going on, not a stuck worker. With `limit` (the
    operator's `max_file_bytes`), at most `limit + 1` bytes are read: a file found longer
    is `BadInput` at stage `hash`, the rest unread. Its size was checked before, but a
    file can grow while it is read, and a size taken earlier says nothing of that.
    """
    handle.seek(0)
    digest = hashlib.sha256()
    size, next_progress = 0, PROGRESS_BYTES
    while chunk := handle.read(_CHUNK if limit is None else min(_CHUNK, limit + 1 - size)):
        if limit is not None and size + len(chunk) > limit:
            raise BadInput(
                f"the file grew while it was read, to more than max_file_bytes "
                f"({limit:,} bytes)", stage="hash",
                hint="have the producer write the file elsewhere (or under a temporary "
                "name) and move it into the inbox once it is complete; split it into "
                "smaller files, or raise max_file_bytes if files this large are expected")
        digest.update(chunk)
        size += len(chunk)
        if size >= next_progress:
            progress()
            next_progress += PROGRESS_BYTES
    handle.seek(0)
    return digest.hexdigest(), size


# Header magic, footer length, footer magic: the least bytes a Parquet file can hold.
SMALLEST_PARQUET = 12


@dataclass(frozen=True)
class ParquetFraming:
    """What the first and last bytes of a file say of it as Parquet."""

    size: int
    starts: bool  # with the magic
    ends: bool  # with the magic
    footer_fits: bool  # the footer length before the closing magic fits in the file

    @property
    def complete(self) -> bool:
        """The magic at both ends around a plausible footer: a whole file, by its frame."""
        return self.starts and self.ends and self.footer_fits

    @property
    def cut_short(self) -> bool:
        """Begun as Parquet, but without the footer a whole file ends with."""
        return self.starts and (self.size < SMALLEST_PARQUET or not self.ends)


def parquet_framing(handle: BinaryIO) -> ParquetFraming:
    """Read an open file's first four and last eight bytes; rewinds it."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    head = handle.read(4)
    handle.seek(max(size - 8, 0))
    tail = handle.read(8)
    handle.seek(0)
    footer_len = int.from_bytes(tail[:4], "little")
    return ParquetFraming(size, head == PARQUET_MAGIC, tail[-4:] == PARQUET_MAGIC,
                          size >= SMALLEST_PARQUET and footer_len + SMALLEST_PARQUET <= size)


def has_parquet_footer(path: Path) -> bool:
    """True when the file starts and ends with the Parquet magic around a plausible footer."""
    try:
        with open_no_follow(path) as handle:
            return parquet_framing(handle).complete
    except OSError:
        return False


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)


def rename_no_replace(src: Path, dst: Path) -> None:
    """Rename atomically, raising `FileExistsError` rather than replacing `dst`."""
    if _renameat2 is not None:
        rc = _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst),
                        _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        # EINVAL/ENOSYS: the filesystem or kernel lacks the flag; fall back below.
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    # Without the flag a name can only be taken between the check and the rename by a
    # process other than this single-instance daemon.
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    src.rename(dst)


def _fit(base: str, tail: str) -> str:
    """`base + tail`, with `base` cut so that the name and its sidecar fit NAME_MAX."""
    room = NAME_MAX - len(os.fsencode(tail + SIDECAR_SUFFIX))
    encoded = os.fsencode(base)
    cut = encoded[:max(room, 1)]
    if len(cut) < len(encoded) and _is_utf8(encoded):
        # Between characters: a UTF-8 name cut inside one would no longer be UTF-8.
        cut = cut.decode("utf-8", "ignore").encode()
    return os.fsdecode(cut) + tail


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def candidate_names(name: str) -> Iterator[str]:
    """`name`, then `stem~1.ext`, `stem~2.ext`, ..., each short enough to be created."""
    stem, dot, suffix = name.rpartition(".")
    base, ext = (stem, dot + suffix) if stem and len(suffix) < 16 else (name, "")
    for n in itertools.count():
        yield _fit(base, f"~{n}{ext}" if n else ext)


def move_unique(src: Path, directory: Path, name: str | None = None) -> Path:
    """Move `src` into `directory` under its name, or `name~N` if taken; never overwrite.

    A name is free only if its error sidecar is free too, so a sidecar written later can
    never land on an older one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for candidate in candidate_names(name or src.name):
        dst = directory / candidate
        if os.path.lexists(directory / (candidate + SIDECAR_SUFFIX)):
            continue
        try:
            rename_no_replace(src, dst)
        except FileExistsError:
            continue
        fsync_dir(directory)
        if src.parent != directory:
            fsync_dir(src.parent)
        return dst
    raise AssertionError("unreachable: the candidate names never run out")


def claim_key(handle: BinaryIO) -> str:
    """Identifies one claim of a file: the claim's rename gave the inode a new ctime."""
    st = os.fstat(handle.fileno())
    return f"{st.st_dev}:{st.st_ino}:{st.st_ctime_ns}"


def in_claim_order(directory: Path) -> list[Path]:
    """The claimed files in a work directory, oldest claim first.

    The claim is a rename, and a rename sets the inode's ctime: that, not the name (where
    `~10` sorts before `~2`), is the order the files arrived in. What is not a claimed
    file is left alone (`is_claimed_entry`).
    """
    entries = []
    for path in directory.iterdir():
        try:
            status = path.lstat()
        except FileNotFoundError:
            continue
        if is_claimed_entry(path, status):
            entries.append((status.st_ctime_ns, path.name, path))
    return [path for _, _, path in sorted(entries)]


# A node's lock file, `<work root>/<node>.lock`, beside its work directory (PostgreSQL).
LOCK_SUFFIX = ".lock"


def is_claimed_entry(path: Path, status: os.stat_result) -> bool:
    """Whether an entry of a work directory is a file some daemon claimed from the inbox:
    not a hidden or temporary name (the daemon's own journal), not a directory, and not a
    node's lock file beside its directory. A work root that daemons sharing a PostgreSQL
    warehouse used holds their work directories and lock files: they are never files."""
    if is_ignored(path.name) or stat.S_ISDIR(status.st_mode):
        return False
    if path.name.endswith(LOCK_SUFFIX):
        try:
            node = path.with_name(path.name.removesuffix(LOCK_SUFFIX)).lstat()
        except OSError:
            return True
        return not stat.S_ISDIR(node.st_mode)
    return True


def claimed_count(directory: Path) -> int:
    """How many claimed files a work directory holds (0 if it does not exist)."""
    try:
        return len(in_claim_order(directory))
    except FileNotFoundError:
        return 0


def display_name(name: str) -> str:
    """A file name safe for JSON, SQLite and terminals: undecodable bytes as `\\xNN`."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def prepare_directories(*directories: Path) -> list[Path]:
    """Create the directories and insist they share one filesystem, where rename is atomic;
    the ones that had to be created."""
    created = []
    try:
        for directory in directories:
            if not directory.is_dir():
                created.append(directory)
            directory.mkdir(parents=True, exist_ok=True)
        devices = {directory: directory.stat().st_dev for directory in directories}
    except OSError as exc:
        raise ConfigError(
            f"cannot prepare directory {exc.filename}: {exc.strerror or exc}",
            hint="make it a directory the daemon can write, or choose another path",
        ) from exc
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{d} (device {dev})" for d, dev in devices.items())
        raise ConfigError(
            f"the inbox, work, processed and failed directories are on different "
            f"filesystems: {listing}",
            hint="put them on one filesystem: a move between filesystems is not atomic",
        )
    return created
