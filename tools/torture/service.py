"""The daemon under torture: a real `python -m filedrop_etl` process that is killed and restarted.

One `Service` owns one case directory (inbox, work, processed, failed, the database) and
at most one daemon process at a time. It starts the daemon (optionally with a crash
point armed), reads its JSON log incrementally across restarts, kills it with SIGKILL,
freezes and thaws it, and stops it cleanly. Every log line must be JSON: one that is
not is reported as a failure of the daemon, not skipped.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.harness import process
from tools.harness.logtail import LogTail

TIMEOUT_SECONDS = 120.0


class TortureError(RuntimeError):
    """The harness could not drive the daemon (it hung, or exited when it should not)."""


def wait_for(condition: Callable[[], bool], what: str,
             timeout: float = TIMEOUT_SECONDS) -> None:
    """Poll `condition` until true; `TortureError` naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TortureError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.005)


class Service:
    """A case directory and the daemon process currently serving it."""

    def __init__(self, root: Path, write_mode: str = "merge", *extra: str,
                 db_url: str | None = None) -> None:
        self.root = root
        # A PostgreSQL warehouse instead of the case's own SQLite file, when given.
        self.db_url = db_url
        self.write_mode = write_mode
        self.extra = extra
        for name in ("inbox", "work", "processed", "failed"):
            (root / name).mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        self.process: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self.starts = 0
        self.kills = 0
        self._tail = LogTail(self.log_path)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        # Whatever happened, no daemon outlives its case: a stray one would go on
        # rescanning the directory by name, even once it is deleted and made again.
        self.kill()

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def db(self) -> Path | str:
        return self.db_url or self.root / "etl.db"

    @property
    def log_path(self) -> Path:
        return self.root / "daemon.log"

    def directory(self, name: str) -> Path:
        return self.root / name

    def start(self, crash_at: str | None = None, *, wait: bool = True) -> None:
        """Start a daemon and (unless not `wait`) wait until it has swept the inbox; arm
        `crash_at` if given."""
        if self.process is not None and self.process.poll() is None:
            raise TortureError("a daemon is already running on this case")
        env = process.clean_environ({"ETL_CRASH_AT": crash_at} if crash_at else None)
        argv = process.daemon_argv(
            "--inbox", str(self.inbox), "--work", str(self.root / "work"),
            "--processed", str(self.root / "processed"), "--failed", str(self.root / "failed"),
            "--db", str(self.db),
            # A restart finds its claims lapsed soon (PostgreSQL; SQLite ignores it).
            "--lease-seconds", "2",
            "--write-mode", self.write_mode, "--settle-seconds", "0.2",
            "--rescan-seconds", "1", *self.extra)
        swept_before = self.count("inbox_swept")
        self.process = process.start(argv, self.log_path, env=env, append=True)
        self.starts += 1
        if not wait:
            return
        # Swept, not only started: the observer is watching, so what is dropped from now
        # on is seen by its event.
        self.wait_event("inbox_swept", swept_before + 1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the daemon (running or frozen) and reap it."""
        if self.process is not None and process.kill(self.process, TIMEOUT_SECONDS):
            self.kills += 1

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code (0 for a clean stop)."""
        assert self.process is not None
        return process.stop(self.process, timeout=TIMEOUT_SECONDS)

    def read(self) -> list[dict[str, Any]]:
        """Parse the log lines written since the last call; return all events so far."""
        events, stray = self._tail.read()
        if stray:
            raise TortureError(f"the daemon wrote a line that is not JSON: {stray[0]!r}")
        self.events += events
        return self.events

    def count(self, event: str, **keys: object) -> int:
        return sum(1 for e in self.read()
                   if e.get("event") == event and all(e.get(k) == v for k, v in keys.items()))

    def wait_event(self, event: str, count: int = 1, **keys: object) -> None:
        """Wait until `event` has been logged `count` times in all; the daemon must live."""
        def seen() -> bool:
            if self.count(event, **keys) >= count:
                return True
            if self.process is not None and self.process.poll() is not None:
                raise TortureError(f"the daemon exited ({self.process.returncode}) before "
                                   f"{event}; see {self.log_path}")
            return False

        wait_for(seen, f"{count} x {event} in {self.log_path}")
