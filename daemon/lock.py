"""The single-instance lock: one daemon per database, enforced by `fcntl.flock`.

The lock file sits beside the database and is never deleted: deleting it would let a
second daemon lock a fresh inode while the first still holds the old one. The holder
writes its pid into it so that a refused daemon can say who holds it. The kernel drops
the lock when the process dies, so a crash never leaves a stale lock behind. `probe`
tells a reader (the `status` command) whether a daemon holds it, without waiting.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import AlreadyRunning

# `probe` holds a shared lock for an instant: a daemon starting in that instant would
# take it for another daemon. It tries again over this long before giving up.
_ACQUIRE_GRACE_SECONDS = (0.01, 0.02, 0.05)


@dataclass(frozen=True)
class LockState:
    """Whether a daemon holds the lock, and the pid it wrote there (None if unknown)."""

    held: bool
    pid: int | None
    path: Path


def probe(path: Path) -> LockState:
    """Whether a daemon holds the lock at `path`; never blocks, creates nothing.

    A shared, non-blocking lock taken and dropped at once: it fails only while a daemon
    holds its exclusive lock, and it never makes one wait (see `_ACQUIRE_GRACE_SECONDS`).
    The pid in the file is a stopped daemon's once the lock is free, so it is only
    reported while the lock is held.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return LockState(False, None, path)  # no daemon ever started on this database
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return LockState(True, _pid_in(fd), path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return LockState(False, None, path)
    finally:
        os.close(fd)


def _pid_in(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


class InstanceLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `AlreadyRunning` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if not _lock_exclusive(fd):
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another daemon (pid {holder}) is already running on this database "
                f"(lock file {self.path})",
                hint="stop that daemon first, or give this one its own --db",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _lock_exclusive(fd: int) -> bool:
    """Take the exclusive lock without blocking; a `probe` in progress is waited out."""
    for pause in (*_ACQUIRE_GRACE_SECONDS, None):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if pause is None:
                return False
            time.sleep(pause)
    raise AssertionError("unreachable: the last pause is None")
