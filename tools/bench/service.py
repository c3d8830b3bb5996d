"""The running daemon, measured from outside as a producer sees it: drop, then archived.

The daemon runs as a real process watching a real inbox. A drop's latency is from just
before the producer's rename (or in-place `open`) to the timestamp of the daemon's
`file_processed` line for that file, so detection, settling, claim, hashing, the load
and the archive move are all inside it, and polling granularity is not. Drops are one
at a time for latency, all at once for a burst.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.harness import process as daemon_process
from tools.harness.logtail import LogTail, events_in

TIMEOUT_SECONDS = 600.0


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Daemon:
    """A daemon process on one case directory, with its JSON log read incrementally."""

    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    tail: LogTail
    done: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    def _read(self) -> None:
        events, _ = self.tail.read()
        for event in events:
            if event["event"] in ("file_processed", "file_failed"):
                self.done[str(event["file"])] = event

    def wait_done(self, names: set[str]) -> dict[str, float]:
        """Wait until each file in `names` is archived; its `file_processed` epoch time."""
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while not names <= self.done.keys():
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited {self.process.returncode}; see "
                                   f"{self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {len(names - self.done.keys())} "
                                   f"files; see {self.log_path}")
            time.sleep(0.002)
            self._read()
        failed = [n for n in names if self.done[n]["event"] != "file_processed"]
        if failed:
            raise RuntimeError(f"the daemon failed {failed[:3]}; see {self.log_path}")
        return {n: _epoch(str(self.done[n]["timestamp"])) for n in names}

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="ascii")
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024


@contextmanager
def running(root: Path, db: Path, write_mode: str = "merge") -> Iterator[Daemon]:
    """Start `python -m filedrop_etl` on `root`/{inbox,processed,failed,work} and `db`; stop it
    with SIGTERM afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "daemon.log"
    argv = daemon_process.daemon_argv(
        "--inbox", str(root / "inbox"), "--db", str(db), "--processed", str(root / "processed"),
        "--failed", str(root / "failed"), "--work", str(root / "work"),
        "--write-mode", write_mode)
    process = daemon_process.start(argv, log_path)
    daemon = Daemon(root, process, log_path, LogTail(log_path))
    try:
        deadline = time.monotonic() + 60
        while not any(e["event"] == "daemon_started" for e in events_in(log_path)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start; see {log_path}")
            time.sleep(0.01)
        yield daemon
    finally:
        daemon_process.stop(process, timeout=120)


def drop_in_place(inbox: Path, name: str, data: bytes) -> float:
    """Create the file under its final name and write it; the time just before the open."""
    started = time.time()
    with (inbox / name).open("wb") as sink:
        sink.write(data)
    return started


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of `values` (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
