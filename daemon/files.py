"""Names, hashing and moves of the files the daemon handles: the filesystem side of a load.

Owns which inbox names are ignored, how a name is shown, the name of the feed a file
belongs to as logs carry it (which feed, its run date and what a name matching none is
told are `daemon.routing`'s), the no-follow open, the SHA-256, and the moves between
inbox, work and processed (atomic renames within one filesystem that never overwrite,
under a name whose error sidecar is free too); the move to failed/ is
`daemon.load.quarantine`'s, the Parquet-footer probe `daemon.framing`'s. It knows
nothing of SQLite or of what the rows mean.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import itertools
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from filedrop_etl.config import ConfigError
from filedrop_etl.daemon.errors import BadInput

# Kept as data, as watchfiles keeps its filters: producers write under these names first.
IGNORED_PREFIXES: tuple[str, ...] = (".",)
IGNORED_SUFFIXES: tuple[str, ...] = (".tmp", ".part")
SIDECAR_SUFFIX = ".error.json"
NAME_MAX = 255  # bytes in one file name on ext4, xfs, btrfs and tmpfs
_CHUNK = 1 << 20
# About a tenth of a second of hashing here, so the worker's life shows at that pace.
PROGRESS_BYTES = 64 << 20


def is_ignored(name: str) -> bool:
    """Hidden and temporary names belong to writers still at work."""
    return name.startswith(IGNORED_PREFIXES) or name.endswith(IGNORED_SUFFIXES)


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
