"""What the soak sees of the daemon: /proc samples, its JSON log, and the archive.

Owns the observer's side: a `Sample` of the process's memory, descriptors and threads
with the backlog, the log read incrementally with each outcome line matched to its drop,
and the accounting of every archived file by name and SHA-256. It never imports the
daemon: it sees it only as a process, a log and directories.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.harness.logtail import LogTail
from tools.soak.drops import Drop

# Warnings and errors a soak expects: a bad file's own canonical line.
EXPECTED_PROBLEM_EVENTS = frozenset({"file_failed"})
_SUFFIX = re.compile(r"~\d+(?=\.parquet$)")


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the first drop
    phase: str  # drops, drain, final
    rss_mb: float
    anon_mb: float  # of rss_mb: the heap, where a leak of objects shows
    file_mb: float  # of rss_mb: mapped files (libraries, SQLite's WAL index)
    fds: int
    threads: int
    dropped: int
    archived: int
    backlog: int  # visible files in the inbox plus claimed files in the work directory
    db_mb: float


class DaemonLog:
    """The daemon's JSON log read incrementally; outcome lines matched to drops by name."""

    def __init__(self, path: Path) -> None:
        self.path, self._tail = path, LogTail(path)
        self.events: Counter[str] = Counter()
        self.problems: list[dict[str, Any]] = []
        self.stray: list[str] = []
        self.unmatched: list[dict[str, Any]] = []
        self._waiting: dict[str, deque[Drop]] = {}
        self.archived = 0

    def expect(self, drop: Drop) -> None:
        self._waiting.setdefault(drop.name, deque()).append(drop)

    def read(self) -> None:
        events, stray = self._tail.read()
        self.stray += stray
        for event in events:
            name = str(event.get("event"))
            self.events[name] += 1
            if (event.get("level") in ("warning", "error", "critical")
                    and name not in EXPECTED_PROBLEM_EVENTS):
                self.problems.append(event)
            if name in ("file_processed", "file_failed"):
                self.archived += 1
                self._match(event)

    def _match(self, event: dict[str, Any]) -> None:
        waiting = self._waiting.get(str(event["file"]))
        if not waiting:
            self.unmatched.append(event)
            return
        drop = waiting.popleft()
        drop.outcome = "processed" if event["event"] == "file_processed" else "failed"
        stamp = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
        drop.latency_s = stamp.timestamp() - drop.at
        drop.logged = {k: event.get(k) for k in (
            "rows", "inserted", "updated", "unchanged", "deleted", "duration_ms", "stage",
            "sha256")}


def proc_status(pid: int) -> tuple[float, float, float, int, int]:
    """(VmRSS, RssAnon, RssFile + RssShmem in MB, open descriptors, threads) of a process."""
    text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def mb(*keys: str) -> float:
        return round(sum(int(fields[k].split()[0]) for k in keys) / 1024, 1)

    fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return (mb("VmRSS"), mb("RssAnon"), mb("RssFile", "RssShmem"), fds,
            int(fields["Threads"]))


def visible_files(directory: Path) -> int:
    return sum(1 for p in directory.iterdir() if not p.name.startswith("."))


def base_name(archived: str) -> str:
    """The dropped name of an archived file: `transactions_D~3.parquet` -> `..._D.parquet`."""
    return _SUFFIX.sub("", archived)


def reconcile(expected: Iterable[tuple[str, str, str]],
              found: Iterable[tuple[str, str, str]]) -> dict[str, list[list[str]]]:
    """Compare (place, name, sha256) multisets: what is `lost` and what is `extra`
    (archived twice, or in the wrong place, or never dropped)."""
    want, got = Counter(expected), Counter(found)
    return {"lost": [list(k) for k in (want - got).elements()],
            "extra": [list(k) for k in (got - want).elements()]}


def archived_files(work: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(place, dropped name, sha256) of every archived file, and failed files without a
    sidecar."""
    found, orphans = [], []
    for place in ("processed", "failed"):
        for path in sorted((work / place).iterdir()):
            if path.name.endswith(".error.json"):
                continue
            if place == "failed" and not path.with_name(path.name + ".error.json").exists():
                orphans.append(path.name)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found.append((place, base_name(path.name), digest))
    return found, orphans
