"""The benchmark's sections: what is run, on which inputs, in which order.

Sizes come from a `Plan` (quick or full). Each per-file case loads one generated day
into copies of one template database, through the floor and through `daemon --once` in
both write modes, first run and identical re-run, interleaved so that the machine's
noise falls on both sides of every ratio.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from tools.bench import fixtures, floor, prototype, runs, service
from tools.harness import drop as harness_drop


@dataclass(frozen=True)
class Plan:
    """The sizes of one benchmark run; see QUICK and FULL."""

    sizes: tuple[int, ...]
    history_days: int
    history_rows: int
    repeats: int
    prototype_sizes: tuple[int, ...]
    e2e_rows: int
    drops: int
    burst: int
    growth_days: int
    growth_rows: int


QUICK = Plan((10_000, 100_000), 5, 10_000, 1, (10_000,), 100_000, 30, 100, 30, 10_000)
# The prototype runs on the end-to-end file itself (1M rows: about two minutes).
FULL = Plan((10_000, 100_000, 1_000_000, 5_000_000), 30, 100_000, 3, (1_000_000,),
            1_000_000, 200, 1_000, 364, 100_000)


def median(values: list[float]) -> float:
    return statistics.median(values)


class Bench:
    """Runs the sections of one plan in a scratch directory `root`, printing progress."""

    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan, self.root = plan, root
        self.files = root / "files"
        self.log = print

    def day_file(self, index: int, rows: int) -> Path:
        path = self.files / str(rows) / f"transactions_{fixtures.day(index).isoformat()}.parquet"
        return path if path.exists() else fixtures.write_day(path.parent, fixtures.day(index), rows)

    def template(self, name: str, days: int, rows: int) -> Path:
        path = self.root / f"template-{name}.db"
        if not path.exists():
            fixtures.build_history(path, days, rows)
        return path

    def floor_template(self, template: Path) -> Path:
        """The floor's own database holding the rows of the daemon's `template`."""
        path = template.with_name(f"floor-{template.name}")
        return path if path.exists() else floor.make_history(path, template)

    def case(self, rows: int, history: str, template: Path) -> list[dict[str, Any]]:
        """Floor and daemon (merge and replace), first run and identical re-run."""
        parquet = self.day_file(self.plan.history_days, rows)
        reps = 1 if rows >= 5_000_000 else self.plan.repeats
        times: dict[str, list[float]] = {}
        rss: dict[str, float] = {}
        pages: dict[str, int] = {}
        for rep in range(reps):
            db = fixtures.copy_db(self.floor_template(template), self.root / "floor.db")
            for run in ("first", "rerun"):
                times.setdefault(f"floor/{run}", []).append(runs.floor_once(db, parquet).seconds)
            for mode in ("merge", "replace"):
                case_dir = self.root / f"case-{rep}-{mode}"
                shutil.rmtree(case_dir, ignore_errors=True)
                db = fixtures.copy_db(template, self.root / "daemon.db")
                for run in ("first", "rerun"):
                    before = self.root / "before.db"
                    if run == "rerun" and rep == 0:
                        shutil.copyfile(db, before)
                    result = runs.daemon_once(case_dir, db, parquet, mode)
                    times.setdefault(f"{mode}/{run}", []).append(result.seconds)
                    rss[mode] = max(rss.get(mode, 0.0), result.peak_rss_mb)
                    if run == "rerun" and rep == 0:
                        pages[mode] = runs.changed_pages(before, db)
                        if result.counts["unchanged"] != rows:
                            raise RuntimeError(f"an identical re-run changed rows: {result}")
        floor_first, floor_rerun = median(times["floor/first"]), median(times["floor/rerun"])
        out = []
        for mode in ("merge", "replace"):
            first, rerun = median(times[f"{mode}/first"]), median(times[f"{mode}/rerun"])
            out.append({"rows": rows, "history": history, "mode": mode, "repeats": reps,
                        "first_s": first, "rerun_s": rerun, "floor_first_s": floor_first,
                        "floor_rerun_s": floor_rerun, "vs_floor_first": first / floor_first,
                        "vs_floor_rerun": rerun / floor_rerun, "rerun_vs_first": rerun / first,
                        "rerun_changed_pages": pages[mode], "peak_rss_mb": rss[mode]})
            self.log(f"  {rows:>9,} rows, {history:>9}, {mode:7}: first {first:.3f} s "
                     f"({first / floor_first:.2f}x floor), re-run {rerun:.3f} s")
        return out

    def prototype_runs(self, template: Path) -> list[dict[str, Any]]:
        out = []
        for rows in self.plan.prototype_sizes:
            db = fixtures.copy_db(template, self.root / "prototype.db")
            seconds = prototype.load(db, self.day_file(self.plan.history_days, rows))
            out.append({"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds})
            self.log(f"  prototype {rows:,} rows: {seconds:.2f} s")
        return out

    def shuffled(self, parquet: Path) -> Path:
        """The same rows as `parquet`, keys in a random (fixed) order."""
        path = self.files / "shuffled" / parquet.name
        if not path.exists():
            table = pq.read_table(parquet)
            order = np.random.default_rng(7).permutation(table.num_rows)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.take(order), path)
        return path

    def end_to_end(self, template: Path) -> dict[str, Any]:
        """The daemon as a user runs it (drop, then archived) against the floor on the same
        prior rows, interleaved run by run; then the same file again, and the same rows
        with their keys shuffled into a fresh copy of the history."""
        rows = self.plan.e2e_rows
        parquet = self.day_file(self.plan.history_days, rows)
        shuffled = self.shuffled(parquet)
        times: dict[str, list[float]] = {"first": [], "rerun": [], "floor": [], "unsorted": []}
        rss = 0.0
        for _ in range(self.plan.repeats):
            times["floor"].append(runs.floor_once(
                fixtures.copy_db(self.floor_template(template), self.root / "floor.db"),
                parquet).seconds)
            for runs_of_file in (("first", "rerun"), ("unsorted",)):
                source = shuffled if runs_of_file == ("unsorted",) else parquet
                db = fixtures.copy_db(template, self.root / "service.db")
                root = self.root / "e2e"
                shutil.rmtree(root, ignore_errors=True)
                with service.running(root, db) as daemon:
                    for run in runs_of_file:
                        daemon.done.pop(source.name, None)
                        started = harness_drop.renamed(daemon.inbox, source.name,
                                                       source.read_bytes())
                        times[run].append(daemon.wait_done({source.name})[source.name]
                                          - started)
                    rss = max(rss, daemon.peak_rss_mb())
        out = {"rows": rows, "repeats": self.plan.repeats,
               **{f"{run}_s": median(seconds) for run, seconds in times.items()
                  if run != "floor"},
               "floor_first_s": median(times["floor"]), "peak_rss_mb": rss}
        self.log(f"  {rows:,} rows dropped into the running daemon: {out['first_s']:.3f} s "
                 f"(floor {out['floor_first_s']:.3f} s), re-drop {out['rerun_s']:.3f} s, "
                 f"keys shuffled {out['unsorted_s']:.3f} s")
        return out

    def latency_and_burst(self) -> dict[str, Any]:
        db = fixtures.build_history(self.root / "small.db", 0, 0)
        root = self.root / "small"
        shutil.rmtree(root, ignore_errors=True)
        out: dict[str, Any] = {}
        offset = 1000
        with service.running(root, db) as daemon:
            for how, drop in (("rename", harness_drop.renamed),
                              ("in_place", service.drop_in_place)):
                latencies = []
                for _ in range(self.plan.drops):
                    name, data = self.small(offset)
                    offset += 1
                    started = drop(daemon.inbox, name, data)
                    latencies.append((daemon.wait_done({name})[name] - started) * 1000)
                out[how] = {"drops": len(latencies), "p50_ms": service.percentile(latencies, 50),
                            "p95_ms": service.percentile(latencies, 95),
                            "p99_ms": service.percentile(latencies, 99)}
                self.log(f"  {how}: {out[how]}")
            outbox = root / "outbox"
            outbox.mkdir()
            names = []
            for _ in range(self.plan.burst):
                name, data = self.small(offset)
                offset += 1
                (outbox / name).write_bytes(data)
                names.append(name)
            started = time.time()
            for name in names:
                (outbox / name).rename(daemon.inbox / name)
            finished = max(daemon.wait_done(set(names)).values())
            out["burst"] = {"files": len(names), "seconds": finished - started,
                            "files_per_s": len(names) / (finished - started)}
            out["peak_rss_mb"] = daemon.peak_rss_mb()
            self.log(f"  burst: {out['burst']}")
        return out

    def small(self, index: int) -> tuple[str, bytes]:
        path = self.day_file(index, fixtures.SMALL_ROWS)
        return path.name, path.read_bytes()

    def growth(self) -> dict[str, Any]:
        """Per-file time of the first days into an empty fact against the days after a
        long history, each a run of consecutive new days dropped into a running daemon
        (as it runs for months; a fresh process per file would time its cold start)."""
        rows, days = self.plan.growth_rows, self.plan.growth_days
        empty = fixtures.copy_db(self.template("empty", 0, 0), self.root / "growth-early.db")
        early = self._days_into(empty, 0, rows, "growth-early")
        # The long history is used in place: a copy would cost gigabytes.
        late = self._days_into(self.template(f"growth-{days}", days, rows), days, rows,
                               "growth-late")
        out = {"rows_per_day": rows, "history_days": days, "day1_s": median(early),
               "day_last_s": median(late), "ratio": median(late) / median(early),
               "days_each": len(early)}
        self.log(f"  days 1-{len(early)} {out['day1_s']:.3f} s, days {days + 1}-"
                 f"{days + len(late)} {out['day_last_s']:.3f} s (medians)")
        return out

    def _days_into(self, db: Path, first: int, rows: int, name: str) -> list[float]:
        root = self.root / name
        shutil.rmtree(root, ignore_errors=True)
        seconds = []
        with service.running(root, db) as daemon:
            for index in range(first, first + self.plan.repeats + 2):
                path = self.day_file(index, rows)
                harness_drop.renamed(daemon.inbox, path.name, path.read_bytes())
                daemon.wait_done({path.name})
                seconds.append(float(daemon.done[path.name]["duration_ms"]) / 1000)
        return seconds
