"""`make soak`: steady drops into a real daemon for an hour; its RSS and open fds stay flat.

Owns the producer's and the observer's side of a long run, and its verdict. It starts
`python -m daemon` on a fresh work directory (JSON log to `daemon.log` there), drops a
file every `--interval` seconds in a fixed cycle of kinds (a new day, small new days, an
identical re-drop, a corrected re-drop, three kinds of bad file), by rename from a staging
directory on the same filesystem or written in place, and samples the daemon's VmRSS,
open descriptors and threads from /proc, with the files archived and the backlog. At the
end it drains, accounts for every drop in processed/ or failed/ exactly once (by name and
SHA-256), checks the log's counts against what each drop must do, stops the daemon with
SIGTERM and judges flatness: the end window against the warm-up window (runs of 30
minutes or more; shorter ones are smoke runs). Exit 0 if all of it held, 1 if anything
did not, 2 if the soak could not run. It must not import the daemon (it sees it only as a
process, a log and directories), and it is not run by CI. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from generator.transactions import generate_table

ROOT = Path(__file__).resolve().parent.parent
SMALL_ROWS = 25
CORRECTION_STRIDE = 100  # a corrected re-drop changes the amount of every 100th row
FIRST_DAY = date(2020, 1, 1)
START_SECONDS = 60.0
NAME_FREE_SECONDS = 120.0  # how long a drop waits for an earlier drop of its name to be taken
DRAIN_SECONDS = 600.0
STOP_SECONDS = 120.0
# The flatness verdict: medians of the warm-up window against the end window. The warm-up
# is not the start: SQLite's page cache (64 MiB, bounded) fills while the history grows,
# over the first seven minutes at the default rate (the daemon's anonymous memory rises
# ~10 MB a minute, then stops). A shorter run is a smoke run: its flatness is shown, not
# judged, as `make bench-quick` is not judged; its files are still accounted for.
JUDGE_MINUTES = 30.0
WARM_WINDOW = (0.10, 0.20)
END_WINDOW = (0.90, 1.00)
RSS_GROWTH_MB = 25.0
RSS_GROWTH_PCT = 10.0
FD_SLACK = 2
# (kind, how): fifteen seconds of drops at the default interval; every kind both ways.
CYCLE: tuple[tuple[str, str], ...] = (
    ("new_day", "rename"), ("small", "in_place"), ("identical", "rename"),
    ("small", "rename"), ("corrected", "rename"), ("bad", "rename"),
    ("new_day", "in_place"), ("identical", "in_place"), ("corrected", "in_place"),
    ("bad", "in_place"),
)
BAD_KINDS = ("bad_empty", "bad_csv", "bad_checks")
# Warnings and errors a soak expects: a bad file's own canonical line.
EXPECTED_PROBLEM_EVENTS = frozenset({"file_failed"})
_SUFFIX = re.compile(r"~\d+(?=\.parquet$)")


class SoakError(Exception):
    """The soak cannot go on: the daemon did not start, or did not take a drop in time."""


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


@dataclass
class Drop:
    seq: int
    kind: str
    how: str
    name: str
    sha256: str
    at: float  # epoch seconds just before the rename or the open
    expect: str  # processed or failed
    rows: int
    inserted: int
    updated: int
    outcome: str | None = None
    latency_s: float | None = None
    logged: dict[str, Any] = field(default_factory=dict)

    def counts_right(self) -> bool:
        if self.outcome != self.expect:
            return False
        got = (self.logged.get("rows"), self.logged.get("inserted"),
               self.logged.get("updated"), self.logged.get("deleted"))
        return self.expect == "failed" or got == (self.rows, self.inserted, self.updated, 0)


@dataclass
class Day:
    day: date
    rows: int
    version: int = 0  # corrections sent so far; a re-drop sends the latest

    @property
    def name(self) -> str:
        return f"transactions_{self.day.isoformat()}.parquet"

    def table(self) -> pa.Table:
        table = generate_table(self.day, self.rows)
        if not self.version:
            return table
        amounts = table.column("amount").to_numpy().copy()
        amounts[::CORRECTION_STRIDE] += self.version
        index = table.schema.get_field_index("amount")
        return table.set_column(index, table.schema.field(index), pa.array(amounts))


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def bad_bytes(kind: str, day: Day) -> bytes:
    """A zero-byte file, a CSV under a .parquet name, or Parquet that fails the checks."""
    if kind == "bad_empty":
        return b""
    table = generate_table(day.day, SMALL_ROWS)
    if kind == "bad_csv":
        lines = [",".join(table.column_names)]
        lines += [",".join(str(v) for v in row.values()) for row in table.to_pylist()]
        return ("\n".join(lines) + "\n").encode()
    index = table.schema.get_field_index("amount")
    amounts = table.column("amount").to_numpy().copy()
    amounts[0] = -1.0
    return parquet_bytes(table.set_column(index, table.schema.field(index), pa.array(amounts)))


class Producer:
    """Decides each drop from the cycle and writes it into the inbox."""

    def __init__(self, work: Path, new_day_rows: int) -> None:
        self.inbox, self.staging = work / "inbox", work / "staging"
        self.new_day_rows = new_day_rows
        self.days: list[Day] = []
        self.bad = 0
        self.waited_s = 0.0

    def _next_day(self, rows: int) -> Day:
        day = Day(FIRST_DAY + timedelta(days=len(self.days)), rows)
        self.days.append(day)
        return day

    def plan(self, seq: int) -> tuple[str, str, Day, bytes, str, int, int]:
        """(kind, how, day, content, expected outcome, expected inserted, expected updated)."""
        kind, how = CYCLE[seq % len(CYCLE)]
        if kind in ("new_day", "small"):
            day = self._next_day(self.new_day_rows if kind == "new_day" else SMALL_ROWS)
            return kind, how, day, parquet_bytes(day.table()), "processed", day.rows, 0
        if kind == "bad":
            bad, self.bad = BAD_KINDS[self.bad % len(BAD_KINDS)], self.bad + 1
            return bad, how, self.days[-1], bad_bytes(bad, self.days[-1]), "failed", 0, 0
        day = self.days[(seq * 37) % len(self.days)]
        if kind == "identical":
            return kind, how, day, parquet_bytes(day.table()), "processed", 0, 0
        day.version += 1
        changed = len(range(0, day.rows, CORRECTION_STRIDE))
        return kind, how, day, parquet_bytes(day.table()), "processed", 0, changed

    def drop(self, seq: int, alive: Callable[[], bool]) -> Drop:
        kind, how, day, data, expect, inserted, updated = self.plan(seq)
        target = self.inbox / day.name
        # Never replace an earlier drop of this name that the daemon has not taken yet.
        waited_from = time.monotonic()
        while os.path.lexists(target):
            if not alive() or time.monotonic() - waited_from > NAME_FREE_SECONDS:
                raise SoakError(f"{target.name} was not taken from the inbox in time")
            time.sleep(0.05)
        self.waited_s += time.monotonic() - waited_from
        if how == "rename":
            staged = self.staging / f"{seq:06d}-{day.name}"
            staged.write_bytes(data)
            at = time.time()
            staged.rename(target)
        else:
            at = time.time()
            with target.open("xb") as sink:
                for start in range(0, max(len(data), 1), 1 << 16):
                    sink.write(data[start:start + (1 << 16)])
                    sink.flush()
        rows = day.rows if expect == "processed" else 0
        return Drop(seq, kind, how, day.name, hashlib.sha256(data).hexdigest(), at, expect,
                    rows, inserted, updated)


class LogTail:
    """The daemon's JSON log read incrementally; outcome lines matched to drops by name."""

    def __init__(self, path: Path) -> None:
        self.path, self._offset, self._pending = path, 0, ""
        self.events: Counter[str] = Counter()
        self.problems: list[dict[str, Any]] = []
        self.stray: list[str] = []
        self.unmatched: list[dict[str, Any]] = []
        self._waiting: dict[str, deque[Drop]] = {}
        self.archived = 0

    def expect(self, drop: Drop) -> None:
        self._waiting.setdefault(drop.name, deque()).append(drop)

    def read(self) -> None:
        with self.path.open(encoding="utf-8", errors="replace") as log:
            log.seek(self._offset)
            chunk = log.read()
            self._offset = log.tell()
        lines = (self._pending + chunk).split("\n")
        self._pending = lines.pop()
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                self.stray.append(line)
                continue
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


def window(samples: Sequence[Sample], duration: float, bounds: tuple[float, float]
           ) -> list[Sample]:
    """The drop-phase samples between two fractions of it; 1.0 takes the last one too."""
    low, high = bounds[0] * duration, bounds[1] * duration if bounds[1] < 1 else math.inf
    return [s for s in samples if s.phase == "drops" and low <= s.t <= high]


def judge_flat(samples: Sequence[Sample], duration: float) -> dict[str, Any]:
    """Medians of the end window against the warm-up window: RSS growth within both
    tolerances, open descriptors within `FD_SLACK`. Too few samples is not flat."""
    warm, end = window(samples, duration, WARM_WINDOW), window(samples, duration, END_WINDOW)
    if not warm or not end:
        return {"flat": False, "rss_flat": False, "fds_flat": False,
                "reason": "no samples in the warm-up or the end window"}
    rss_warm = statistics.median(s.rss_mb for s in warm)
    rss_end = statistics.median(s.rss_mb for s in end)
    fds_warm = statistics.median(s.fds for s in warm)
    fds_end = statistics.median(s.fds for s in end)
    growth_mb = rss_end - rss_warm
    growth_pct = 100 * growth_mb / rss_warm
    rss_flat = growth_mb <= RSS_GROWTH_MB and growth_pct <= RSS_GROWTH_PCT
    fds_flat = fds_end - fds_warm <= FD_SLACK
    return {"flat": rss_flat and fds_flat, "rss_flat": rss_flat, "fds_flat": fds_flat,
            "warm_samples": len(warm), "end_samples": len(end),
            "rss_warm_mb": rss_warm, "rss_end_mb": rss_end, "rss_growth_mb": growth_mb,
            "rss_growth_pct": growth_pct, "fds_warm": fds_warm, "fds_end": fds_end,
            "fds_growth": fds_end - fds_warm, "limits": {
                "rss_growth_mb": RSS_GROWTH_MB, "rss_growth_pct": RSS_GROWTH_PCT,
                "fd_slack": FD_SLACK, "warm_window": WARM_WINDOW, "end_window": END_WINDOW}}


class Soak:
    """One run: the daemon process, the producer, the samples, and the final checks."""

    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work, self.args = work, args
        self.duration = args.minutes * 60
        self.sample_s = args.sample_seconds or min(10.0, max(2.0, self.duration / 60))
        for sub in ("inbox", "processed", "failed", "work", "staging"):
            (work / sub).mkdir(parents=True)
        self.log = LogTail(work / "daemon.log")
        self.producer = Producer(work, args.rows)
        self.drops: list[Drop] = []
        self.samples: list[Sample] = []
        self.argv = [sys.executable, "-m", "daemon", "--inbox", str(work / "inbox"),
                     "--processed", str(work / "processed"), "--failed", str(work / "failed"),
                     "--work", str(work / "work"), "--db", str(work / "etl.db")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
        with self.log.path.open("wb") as sink:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=sink,
                                            stderr=subprocess.STDOUT)
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
        if alive:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
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


def _cell(value: float | str, spec: str) -> str:
    return value if isinstance(value, str) else format(value, spec)


def report(soak: Soak, verdict: dict[str, Any]) -> str:
    samples, drops, flat = soak.samples, soak.drops, verdict["flatness"]
    args = soak.args
    relative = " ".join(a.replace(str(soak.work), "W") for a in ["python", *soak.argv[1:]])
    out = [f"Soak: {args.minutes:g} min of drops, one every {args.interval:g} s; a sample "
           f"every {soak.sample_s:g} s ({len(samples)} samples); W = {soak.work}",
           f"  $ {relative}", ""]
    warm = window(samples, soak.duration, WARM_WINDOW)
    end = window(samples, soak.duration, END_WINDOW)
    out.append(f"{'':>12}{'start':>9}{'warm':>9}{'end':>9}{'min':>9}{'max':>9}   (warm "
               f"{WARM_WINDOW[0]:.0%}-{WARM_WINDOW[1]:.0%} and end {END_WINDOW[0]:.0%}-"
               f"{END_WINDOW[1]:.0%} of the drops: medians)")
    for label, attr, spec in (("RSS MB", "rss_mb", ".1f"), ("anon MB", "anon_mb", ".1f"),
                              ("file MB", "file_mb", ".1f"), ("open fds", "fds", "g"),
                              ("threads", "threads", "g"), ("db MB", "db_mb", ".1f"),
                              ("backlog", "backlog", "g")):
        values: list[float] = [getattr(s, attr) for s in samples]
        cells: list[float | str] = [
            values[0], statistics.median(getattr(s, attr) for s in warm) if warm else "-",
            statistics.median(getattr(s, attr) for s in end) if end else "-",
            min(values), max(values)]
        out.append(f"{label:>12}" + "".join(f"{_cell(c, spec):>9}" for c in cells))
    out += ["", "By tenth of the drop phase (medians; archived and db MB at its end)",
            f"{'minutes':>12}{'RSS MB':>9}{'anon MB':>9}{'file MB':>9}{'fds':>6}"
            f"{'archived':>10}{'db MB':>9}"]
    for tenth in range(10):
        low, high = tenth * soak.duration / 10, (tenth + 1) * soak.duration / 10
        part = [s for s in samples if s.phase == "drops" and low <= s.t < high]
        if part:
            out.append(f"{f'{low / 60:g}-{high / 60:g}':>12}"
                       f"{statistics.median(s.rss_mb for s in part):>9.1f}"
                       f"{statistics.median(s.anon_mb for s in part):>9.1f}"
                       f"{statistics.median(s.file_mb for s in part):>9.1f}"
                       f"{statistics.median(s.fds for s in part):>6g}"
                       f"{part[-1].archived:>10}{part[-1].db_mb:>9.1f}")
    out += ["", f"{'kind':<11}{'drops':>7}{'rename':>8}{'in place':>9}{'processed':>10}"
            f"{'failed':>8}{'rows':>10}{'p50 s':>8}{'max s':>8}"]
    for kind in dict.fromkeys(d.kind for d in drops):
        mine = [d for d in drops if d.kind == kind]
        late = sorted(d.latency_s for d in mine if d.latency_s is not None) or [0.0]
        rows = sum(int(d.logged.get("rows") or 0) for d in mine if d.outcome == "processed")
        out.append(f"{kind:<11}{len(mine):>7}{sum(d.how == 'rename' for d in mine):>8}"
                   f"{sum(d.how == 'in_place' for d in mine):>9}"
                   f"{sum(d.outcome == 'processed' for d in mine):>10}"
                   f"{sum(d.outcome == 'failed' for d in mine):>8}"
                   f"{rows:>10}"
                   f"{statistics.median(late):>8.3f}{late[-1]:>8.3f}")
    inserted = sum(int(d.logged.get("inserted") or 0) for d in drops)
    minutes = (drops[-1].at - drops[0].at) / 60 if len(drops) > 1 else 0.0
    out += ["", f"Throughput: {len(drops)} files in {minutes:.1f} min "
            f"({len(drops) / max(minutes, 1e-9):.1f} files/min); {inserted:,} fact rows inserted",
            f"Drained {soak.drain_s:.1f} s after the last drop; the producer waited "
            f"{soak.producer.waited_s:.1f} s in all for a name to be taken from the inbox",
            "", f"Verdict: {'FLAT' if flat['flat'] else 'NOT FLAT'}"
            f"{'' if flat['judged'] else f' (not judged: shorter than {JUDGE_MINUTES:g} min)'}; "
            f"{'all checks held' if verdict['ok'] else 'FAILED'}"]
    ok = {True: "  ok     ", False: "  FAILED "}
    shown = ok if flat["judged"] else {True: "  ok     ", False: "  (no)   "}
    if "rss_warm_mb" in flat:
        out.append(shown[flat["rss_flat"]] + f"RSS {flat['rss_warm_mb']:.1f} MB -> "
                   f"{flat['rss_end_mb']:.1f} MB: {flat['rss_growth_mb']:+.1f} MB, "
                   f"{flat['rss_growth_pct']:+.1f}% (limit +{RSS_GROWTH_MB:g} MB and "
                   f"+{RSS_GROWTH_PCT:g}%)")
        out.append(shown[flat["fds_flat"]] + f"open fds {flat['fds_warm']:g} -> "
                   f"{flat['fds_end']:g}: {flat['fds_growth']:+g} (limit +{FD_SLACK})")
    else:
        out.append(shown[False] + flat["reason"])
    acc, counts, daemon, log = (verdict[k] for k in ("accounting", "counts", "daemon", "log"))
    out.append(ok[acc["ok"]] + f"{acc['dropped']} dropped, {acc['processed']} in processed/, "
               f"{acc['failed']} in failed/: lost {len(acc['lost'])}, extra {len(acc['extra'])}, "
               f"left behind {acc['left_behind']}, failed without sidecar "
               f"{len(acc['failed_without_sidecar'])}")
    out.append(ok[counts["ok"]] + f"outcome and counts as expected for every drop (wrong: "
               f"{counts['wrong_total']}, unmatched log lines: "
               f"{len(counts['unmatched_log_lines'])})")
    out.append(ok[daemon["ok"]] + f"daemon alive to the end: {daemon['alive_at_end']}; "
               f"SIGTERM exit code {daemon['exit_code']}"
               + (f"; stalled: {daemon['stalled']}" if daemon["stalled"] else ""))
    out.append(ok[log["ok"]] + f"log: {log['problems_total']} unexpected warnings or errors, "
               f"{len(log['stray_lines'])} non-JSON lines")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/soak.py", description="Drop files into a real daemon at a steady rate "
        "and check that its RSS and open descriptors stay flat and no file is lost.")
    parser.add_argument("--minutes", type=float, default=60.0,
                        help=f"drop phase (default 60; flatness is judged from "
                        f"{JUDGE_MINUTES:g})")
    parser.add_argument("--interval", type=float, default=1.5,
                        help="seconds between drops (default 1.5)")
    parser.add_argument("--sample-seconds", type=float, default=None,
                        help="seconds between samples (default: the run / 60, from 2 to 10)")
    parser.add_argument("--rows", type=int, default=10_000,
                        help="rows of a new day (default 10000)")
    parser.add_argument("--out", type=Path, default=None, help="write samples and verdict here")
    parser.add_argument("--work", type=Path, default=None,
                        help="a new or empty directory to run in (kept); default a temp dir")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (it is always kept when the soak fails)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        print(f"soak: {args.work} is not empty; give a new or empty directory", file=sys.stderr)
        return 2
    work = (args.work or Path(tempfile.mkdtemp(prefix="soak-"))).resolve()
    ok = False
    try:
        soak = Soak(work, args)
        try:
            soak.wait_started()
            print(f"soak: daemon pid {soak.process.pid}, {args.minutes:g} min from now; "
                  f"log {soak.log.path}", flush=True)
            soak.run()
        finally:
            alive, code = soak.stop()
        verdict = soak.verdict(alive, code)
        ok = bool(verdict["ok"])
        print(report(soak, verdict))
        if args.out is not None:
            args.out.write_text(json.dumps({
                "argv": sys.argv, "machine": {"python": platform.python_version(),
                                              "platform": platform.platform(),
                                              "cpus": os.cpu_count()},
                "work": str(work), "verdict": verdict,
                "samples": [asdict(s) for s in soak.samples],
                "drops": [asdict(d) for d in soak.drops]}, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {args.out}")
    except SoakError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.work is None and ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
