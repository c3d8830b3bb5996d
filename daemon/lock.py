"""The single-instance locks: one daemon per database, per inbox and per work directory.

All are `fcntl.flock` locks, which the kernel drops when the process dies, so a crash
never leaves a stale lock behind. The database's lock file sits beside the database and
is never deleted: deleting it would let a second daemon lock a fresh inode while the
first still holds the old one. The holder writes its pid into it so that a refused daemon
can say who holds it; `probe` tells a reader (the `status` command) whether a daemon
holds it, without waiting. The inbox and the work directory are each locked on the
directory itself (`DirectoryLock`): no file is added where producers drop theirs, and
the holder's pid is read from the kernel's lock table.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from filedrop_etl.daemon.errors import AlreadyRunning

log = structlog.get_logger("daemon.lock")

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

    def acquire(self, *, create: bool = True) -> bool:
        """Take the lock or raise `AlreadyRunning` naming the holder; True once held.

        Not `create`: a lock file that does not exist is left so (False), as no daemon
        holds it. A start asks so first, before it makes anything, so that a daemon
        refused for another lock (an inbox's) leaves no lock file of its own behind.
        """
        if self._fd is not None:
            return True
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0),
                         0o644)
        except FileNotFoundError:
            if create:
                raise
            return False
        if not lock_at_once(fd):
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
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_at_once(fd: int, *, shared: bool = False) -> bool:
    """Take the exclusive (or `shared`) lock without blocking; a `probe` in progress, or
    another daemon's look at a warehouse mark (`warehouse.postgresql.mark`), is waited out."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    for pause in (*_ACQUIRE_GRACE_SECONDS, None):
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if pause is None:
                return False
            time.sleep(pause)
    raise AssertionError("unreachable: the last pause is None")


class DirectoryLock:
    """A lock on a directory itself: one daemon at a time may take files from an inbox,
    or keep claimed files in a work directory. Two daemons with different databases on one
    inbox would otherwise split its files between them, silently.

    Daemons sharing a PostgreSQL warehouse share an inbox: each holds it `shared`, which
    refuses, in either order, a daemon that would hold it alone (a SQLite daemon, whose
    claims the others can not see), and is refused by it.

    Where the filesystem cannot lock a directory (NFS emulates `flock` with byte-range
    locks, which a directory opened read-only cannot take), `acquire` returns False and
    the caller says so; nothing else is lost.
    """

    def __init__(self, directory: Path, what: str, hint: str, *, shared: bool = False) -> None:
        self.directory = directory
        self.what = what  # "the inbox", "the work directory"
        self.hint = hint
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Lock the directory; `AlreadyRunning` naming the holder if another daemon has,
        False if this filesystem cannot lock it. A lock taken before (of a directory since
        deleted or replaced) is let go first."""
        self.release()
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if not lock_at_once(fd, shared=self.shared):
                pid, kind = flock_holder(os.fstat(fd))
                raise AlreadyRunning(
                    f"another daemon (pid {pid or 'unknown'}) is already using {self.what} "
                    f"{self.directory}{_HOLDER_KINDS.get((self.shared, kind), '')}",
                    hint=self.hint)
        except OSError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


# Who holds an inbox this daemon may not have, by (this daemon shares it, the holder's
# lock): the reason says which kind of daemon is in the way.
_HOLDER_KINDS: dict[tuple[bool, str | None], str] = {
    (False, "READ"): ", shared by daemons on a PostgreSQL warehouse (a daemon with a "
                     "warehouse of its own would take their files and claims as its own)",
    (True, "WRITE"): " with a warehouse of its own (SQLite): daemons sharing a PostgreSQL "
                     "warehouse can not share that inbox with it",
}


class DirectoryLocks:
    """The inbox and the work directory, each locked for the daemon's lifetime."""

    def __init__(self, inbox: Path, work: Path, *, shared: bool = False) -> None:
        # Shared: daemons on one PostgreSQL warehouse may share an inbox (each claims into
        # its own work directory), but no daemon may share it with one of another kind.
        self.inbox = DirectoryLock(
            inbox, "the inbox", shared=shared,
            hint="stop that daemon first: two daemons with different warehouses on one "
            "inbox would split its files between them; give each its own --inbox")
        self.work = DirectoryLock(
            work, "the work directory", hint="stop that daemon first, or give this one "
            "its own --work")

    @property
    def _locks(self) -> tuple[DirectoryLock, ...]:
        return (self.inbox, self.work)

    @property
    def held(self) -> bool:
        return all(lock.held for lock in self._locks)

    def acquire(self, *, existing: bool = False) -> None:
        """Lock both (each unless held already); `AlreadyRunning` if another daemon holds
        either. `existing`: only those that exist now, and without a word where one can
        not be locked (said at the full acquire): a start asks so before it makes any
        folder, so that a daemon refused leaves none behind."""
        for lock in self._locks:
            if lock.held or (existing and not lock.directory.is_dir()):
                continue
            if not lock.acquire() and not existing:
                log.warning("directory_unlocked", directory=str(lock.directory),
                            reason=f"{lock.what}'s filesystem cannot lock a directory (NFS?)",
                            hint="make sure yourself that no other daemon uses it")

    def relock_inbox(self) -> None:
        """Lock the inbox again once it was made anew (deleted, replaced, re-pointed):
        the old lock holds the directory that is gone."""
        try:
            self.inbox.acquire()
        except AlreadyRunning as exc:
            log.error("daemon_already_running", reason=exc.message, hint=exc.hint)

    def release(self) -> None:
        for lock in self._locks:
            lock.release()


def flock_holder(status: os.stat_result) -> tuple[int | None, str | None]:
    """The pid holding a flock on the file `status` describes, and how (`READ`: shared,
    `WRITE`: exclusive), from /proc/locks (Linux), whose lines read
    `1: FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF`."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None, None
    wanted = (os.major(status.st_dev), os.minor(status.st_dev), status.st_ino)
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue  # a waiter, or another kind of lock
        major, minor, inode = fields[5].split(":")
        if (int(major, 16), int(minor, 16), int(inode)) == wanted and fields[4].isdigit():
            return int(fields[4]), fields[3]
    return None, None

