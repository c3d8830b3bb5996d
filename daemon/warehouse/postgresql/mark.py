"""The mark of the warehouse that the daemons sharing one inbox load into.

Each PostgreSQL daemon holds, shared, a mark named after its warehouse in the inbox's work
root; a daemon that finds another warehouse's mark held is refused (`AlreadyRunning`), as
two daemons with different databases on one inbox would split its files between them. A
SQLite daemon, which holds its inbox alone, is refused by the inbox's own lock instead
(`daemon.lock.DirectoryLock`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from filedrop_etl.daemon import files
from filedrop_etl.daemon.errors import AlreadyRunning
from filedrop_etl.daemon.lock import flock_holder, lock_at_once


class WarehouseMark:
    """Which warehouse the daemons sharing one inbox load into. Each holds, shared, a
    mark named after its warehouse in the inbox's work root (`.warehouse-<digest>.lock`,
    hidden, so no daemon takes it for a file); a daemon that finds another warehouse's
    mark held is refused, as two daemons with different databases on one inbox would
    split its files between them.

    To tell a held mark from a stale one, a daemon tries it exclusively for an instant: a
    daemon of that warehouse starting in that instant waits it out (`daemon.lock.lock_at_once`).
    """

    PREFIX = ".warehouse-"

    def __init__(self, root: Path, identity: str, shown: str) -> None:
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.root, self.shown = root, shown
        self.path = root / f"{self.PREFIX}{digest}{files.LOCK_SUFFIX}"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Hold this warehouse's mark; `AlreadyRunning` if another's is held."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            if not lock_at_once(fd, shared=True):
                raise AlreadyRunning(f"the warehouse mark {self.path} is held exclusively",
                                     hint="try again: another daemon was looking at it")
            if os.fstat(fd).st_size == 0:
                os.pwrite(fd, f"{self.shown}\n".encode(), 0)
            self._refuse_others()
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _refuse_others(self) -> None:
        for other in sorted(self.root.glob(f"{self.PREFIX}*{files.LOCK_SUFFIX}")):
            if other == self.path:
                continue
            try:
                fd = os.open(other, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pid, _ = flock_holder(os.fstat(fd))
                    used = os.pread(fd, 512, 0).decode(errors="replace").strip()
                    raise AlreadyRunning(
                        f"another daemon (pid {pid or 'unknown'}) loads files from this inbox "
                        f"into another warehouse ({used or 'unknown'}); this daemon's is "
                        f"{self.shown}", hint="daemons sharing an inbox must share one "
                        "warehouse: give this daemon the same --db, or its own --inbox") from None
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

