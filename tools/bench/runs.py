"""One file through the real daemon, the warehouse seam or the floor, each as its own process.

`daemon --once` drains an inbox holding one file and exits; its `file_processed` line
gives the per-file time the daemon itself measured (claim to archive, with the hashing,
reading, checks, merge, commit and fsyncs), and `wait4` gives the peak resident memory of
that process alone. The floor runs the same way on its own copy of the same database.
Also here: how many database pages a run changed, by comparing the file before and after.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.harness.process import daemon_argv

PAGE_BYTES = 4096
# Linux keeps the high-water RSS across fork and exec, so a child forked from this big
# process would report our size as its own: a small launcher forks the measured process.
_LAUNCHER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "sys.stderr.write(f'\\nmaxrss_kb={usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    counts: dict[str, int]


def _run(argv: list[str]) -> tuple[str, float]:
    """Run `argv` to its end; its stdout and the peak RSS (MB) of that process alone."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.call([sys.executable, "-S", "-c", _LAUNCHER, *argv],
                               stdout=out, stderr=err)
        out.seek(0)
        err.seek(0)
        errors = err.read()
        if code != 0:
            raise RuntimeError(f"{' '.join(argv[1:4])} exited {code}: "
                               f"{(out.read() + errors)[-3000:]}")
        rss_kb = int(errors.rsplit("maxrss_kb=", 1)[1].split()[0])
        return out.read(), rss_kb / 1024


def daemon_once(case: Path, db: Path, parquet: Path, write_mode: str = "merge") -> Run:
    """Drop a copy of `parquet` into the case's inbox and let `daemon --once` load it."""
    inbox = case / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(parquet, inbox / f".{parquet.name}.tmp")
    (inbox / f".{parquet.name}.tmp").rename(inbox / parquet.name)
    argv = daemon_argv("--once", "--inbox", str(inbox), "--db", str(db),
                       "--processed", str(case / "processed"), "--failed", str(case / "failed"),
                       "--work", str(case / "work"), "--write-mode", write_mode)
    stdout, rss = _run(argv)
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    done = [e for e in events if e["event"] in ("file_processed", "file_failed")]
    if len(done) != 1 or done[0]["event"] != "file_processed":
        raise RuntimeError(f"the daemon did not process {parquet.name}: {done or events[-3:]}")
    line = done[0]
    counts = {k: int(line[k]) for k in ("rows", "inserted", "updated", "unchanged", "deleted")}
    return Run(float(line["duration_ms"]) / 1000, rss, counts)


def floor_once(db: Path, parquet: Path, feed: str = "transactions") -> Run:
    stdout, rss = _run([sys.executable, "-m", "tools.bench.floor", str(db), str(parquet),
                        feed])
    return Run(float(json.loads(stdout)["seconds"]), rss, {})


def seam_once(db: str, feed: str, parquet: Path) -> Run:
    """One file of a `tools.bench.feeds` feed through the warehouse seam (`bench.seam`)."""
    stdout, rss = _run([sys.executable, "-m", "tools.bench.seam", db, feed, str(parquet)])
    result = json.loads(stdout)
    return Run(float(result.pop("seconds")), rss, {k: int(v) for k, v in result.items()})


def changed_pages(before: Path, after: Path) -> int:
    """Pages that differ between two copies of a database file (appended ones count)."""
    a = np.memmap(before, dtype=np.uint8, mode="r")
    b = np.memmap(after, dtype=np.uint8, mode="r")
    common = min(len(a), len(b)) // PAGE_BYTES * PAGE_BYTES
    pages = a[:common].reshape(-1, PAGE_BYTES) != b[:common].reshape(-1, PAGE_BYTES)
    return int(pages.any(axis=1).sum()) + abs(len(a) - len(b)) // PAGE_BYTES

