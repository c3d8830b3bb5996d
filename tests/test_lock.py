"""The instance lock as the `status` command probes it: never blocking, never in the way.

A real second process holds the lock, as a running daemon does.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from filedrop_etl.daemon import lock
from filedrop_etl.daemon.errors import AlreadyRunning
from tests.conftest import ROOT

HOLDER = """
import sys
from pathlib import Path
from filedrop_etl.daemon.lock import InstanceLock
InstanceLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
sys.stdin.read()
"""
MAKE = shutil.which("make")


def test_probe_of_a_lock_file_that_does_not_exist_creates_none(tmp_path: Path) -> None:
    path = tmp_path / "etl.db.lock"
    assert lock.probe(path) == lock.LockState(False, None, path)
    assert not path.exists()


def test_probe_sees_the_holder_and_its_pid_and_leaves_it_holding(tmp_path: Path) -> None:
    path = tmp_path / "etl.db.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        for _ in range(3):
            assert lock.probe(path) == lock.LockState(True, holder.pid, path)
        # Still its: a second daemon is refused.
        with pytest.raises(AlreadyRunning, match=f"pid {holder.pid}"):
            lock.InstanceLock(path).acquire()
    finally:
        holder.communicate("")
    # Gone, the lock with it; the pid it left in the file is not reported.
    assert lock.probe(path) == lock.LockState(False, None, path)
    mine = lock.InstanceLock(path)
    mine.acquire()
    mine.release()


def test_a_daemon_starting_during_a_probe_still_takes_the_lock(tmp_path: Path) -> None:
    """The probe's shared lock, held for an instant, must not pass for a daemon."""
    path = tmp_path / "etl.db.lock"
    path.touch()
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe caught in the middle
    releaser = threading.Timer(0.005, lambda: fcntl.flock(fd, fcntl.LOCK_UN))
    releaser.start()
    daemon = lock.InstanceLock(path)
    try:
        daemon.acquire()
        assert path.read_text() == f"{os.getpid()}\n"
    finally:
        releaser.join()
        daemon.release()
        os.close(fd)


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_make_clean_removes_the_lock_file_beside_the_database(tmp_path: Path) -> None:
    """The lock file is never deleted by the daemon (see `daemon.lock`): `make clean`,
    which removes the runtime data, must take it with the database it guards."""
    for name in ("etl.db", "etl.db-wal", "etl.db-shm", "etl.db.lock"):
        (tmp_path / name).write_bytes(b"")
    assert MAKE is not None
    subprocess.run([MAKE, "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C",
                    str(tmp_path), "clean"], check=True, capture_output=True, timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
