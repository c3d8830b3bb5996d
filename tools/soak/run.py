"""One soak run: the daemon process, the drop and sample loop, the drain and the checks.

Owns the timeline (drop every `--interval` seconds, sample every `sample_s`, then drain)
and the final verdict that puts the flatness, the accounting, the counts, the daemon's
exit and its log together.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tools.harness import process
from tools.soak.drops import Drop, Producer, SoakError
from tools.soak.observe import (
    DaemonLog,
    Sample,
    archived_files,
    proc_status,
    reconcile,
    visible_files,
)
from tools.soak.verdict import JUDGE_MINUTES, judge_flat

START_SECONDS = 60.0
DRAIN_SECONDS = 600.0
STOP_SECONDS = 120.0


class Soak:
    """One run: the daemon process, the producer, the samples, and the final checks."""

    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work, self.args = work, args
        self.duration = args.minutes * 60
        self.sample_s = args.sample_seconds or min(10.0, max(2.0, self.duration / 60))
        for sub in ("inbox", "processed", "failed", "work", "staging"):
            (work / sub).mkdir(parents=True)
        self.log = DaemonLog(work / "daemon.log")
        self.producer = Producer(work, args.rows)
        self.drops: list[Drop] = []
        self.samples: list[Sample] = []
        self.argv = process.daemon_argv(
            "--inbox", str(work / "inbox"), "--processed", str(work / "processed"),
            "--failed", str(work / "failed"), "--work", str(work / "work"),
            "--db", str(work / "etl.db"))
        self.process = process.start(self.argv, self.log.path, env=process.clean_environ())
        self.started = 0.0
        self.stalled: str | None = None
        self.drain_s = 0.0

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_started(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while not self.log.events["daemon_started"]:
            if not self.alive() or time.monotonic() > deadline:
                raise SoakError(f"the daemon did not start; see {self.log.path}")
            time.sleep(0.05)
            self.log.read()

    def sample(self, phase: str) -> None:
        self.log.read()
        try:
            rss, anon, mapped, fds, threads = proc_status(self.process.pid)
        except OSError:  # it exited since the caller looked
            return
        db = sum(p.stat().st_size for p in self.work.glob("etl.db*") if p.is_file())
        backlog = visible_files(self.work / "inbox") + visible_files(self.work / "work")
        self.samples.append(Sample(round(time.monotonic() - self.started, 1), phase, rss,
                                   anon, mapped, fds, threads, len(self.drops),
                                   self.log.archived, backlog, round(db / 2**20, 1)))

    def run(self) -> None:
        """Drop and sample until the time is up, then sample the drain until it is done."""
        self.started = now = time.monotonic()
        next_drop = next_sample = now
        while (now := time.monotonic()) < self.started + self.duration and self.alive():
            if now >= next_sample:
                self.sample("drops")
                next_sample = max(next_sample + self.sample_s, time.monotonic())
            if now >= next_drop:
                try:
                    drop = self.producer.drop(len(self.drops), self.alive)
                except SoakError as exc:
                    self.stalled = str(exc)
                    break
                self.drops.append(drop)
                self.log.expect(drop)
                next_drop = max(next_drop + self.args.interval, time.monotonic())
            time.sleep(max(0.0, min(next_drop, next_sample) - time.monotonic()))
        if self.alive():
            self.sample("drops")  # the end of the drop phase
        drain_from = time.monotonic()
        while self.alive() and time.monotonic() < drain_from + DRAIN_SECONDS:
            self.sample("drain")
            if self.samples[-1].backlog == 0 and self.log.archived >= len(self.drops):
                break
            time.sleep(min(1.0, self.sample_s))
        self.drain_s = time.monotonic() - drain_from
        if self.alive():
            self.sample("final")

    def stop(self) -> tuple[bool, int | None]:
        """SIGTERM; (alive until then, exit code)."""
        alive = self.alive()
        try:
            code: int | None = process.stop(self.process, timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:  # killed and reaped by `stop`
            code = None
        self.log.read()
        return alive, code

    def verdict(self, alive: bool, code: int | None) -> dict[str, Any]:
        found, orphans = archived_files(self.work)
        accounts = reconcile(((d.expect, d.name, d.sha256) for d in self.drops), found)
        left = visible_files(self.work / "inbox") + visible_files(self.work / "work")
        wrong = [asdict(d) for d in self.drops if not d.counts_right()]
        checks: dict[str, Any] = {
            "flatness": {**judge_flat(self.samples, self.duration),
                         "judged": self.args.minutes >= JUDGE_MINUTES},
            "accounting": {**accounts, "ok": not any(accounts.values()) and not orphans
                           and not left, "dropped": len(self.drops), "left_behind": left,
                           "failed_without_sidecar": orphans,
                           "processed": sum(1 for p, _, _ in found if p == "processed"),
                           "failed": sum(1 for p, _, _ in found if p == "failed")},
            "counts": {"ok": not wrong and not self.log.unmatched, "wrong": wrong[:20],
                       "wrong_total": len(wrong), "unmatched_log_lines": self.log.unmatched},
            "daemon": {"ok": alive and code == 0 and not self.stalled, "alive_at_end": alive,
                       "exit_code": code, "stalled": self.stalled},
            "log": {"ok": not self.log.problems and not self.log.stray,
                    "problems": self.log.problems[:20], "problems_total": len(self.log.problems),
                    "stray_lines": self.log.stray[:20], "events": dict(self.log.events)},
        }
        checks["ok"] = all(bool(c["flat"] or not c["judged"] if k == "flatness" else c["ok"])
                           for k, c in checks.items())
        return checks
