"""`python -m tools.bench [--full]`: the daemon's per-file path and the running daemon, measured.

Quick mode (the default, seconds; CI runs it as a smoke test) and full mode (`--full`,
minutes; the numbers of docs/performance.md) run the same sections at different sizes:
per-file cases through `daemon --once` beside the floor (`bench.floor`) on copies of
the same database; the prototype's approach; one large file end to end through the
running daemon; small-file latency; a burst; day 1 against the last day of a long
history; then declared feeds with composite keys through the warehouse seam against the
floor with the same key (`bench.composite`), on SQLite and on PostgreSQL. It prints
tables, writes `tools/bench/results.json` and, in full mode, exits 1 if a target is missed
(quick sizes are too small to judge the targets by).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from tools.bench import composite, postgres, report
from tools.bench.report import Target, table
from tools.bench.suite import FULL, QUICK, Bench

RESULTS = Path(__file__).resolve().parent / "results.json"


def _section(label: str) -> float:
    print(f"\n{label} ...", flush=True)
    return time.perf_counter()


def run_postgres(server: str | None, full: bool, bench: Bench) -> dict[str, Any] | None:
    """The PostgreSQL column, or None (said why) without a server that answers."""
    if server is None:
        print("\nPostgreSQL column skipped: no --postgres URL")
        return None
    try:
        psycopg.connect(server, connect_timeout=5).close()
    except psycopg.Error as exc:
        print(f"\nPostgreSQL column skipped: {server} does not answer: {str(exc).strip()}")
        return None
    plan = postgres.PG_FULL if full else postgres.PG_QUICK
    big = bench.day_file(plan.history_rows // 100_000 + 1, plan.file_rows)
    _section(f"PostgreSQL: {plan.file_rows:,} rows into {plan.history_rows:,}, "
             "drop -> archived, against its floor")
    large = postgres.large_file(server, plan, big, bench.root)
    print(f"  daemon {large['daemon_s']:.3f} s, floor {large['floor_s']:.3f} s: "
          f"{large['vs_floor']:.2f}x")
    _section(f"PostgreSQL: {plan.shared_files} files of {plan.shared_rows:,} rows, "
             f"shared by {', '.join(map(str, plan.daemons))} daemons")
    files = [bench.day_file(200 + i, plan.shared_rows) for i in range(plan.shared_files)]
    shared = postgres.sharing(server, plan, files, bench.root)
    for one in shared:
        print(f"  {one['daemons']} daemon(s): {one['seconds']:.2f} s, "
              f"{one['loads_per_minute']:.1f} loads/min")
    feed_plan = composite.FEED_FULL if full else composite.FEED_QUICK
    _section(f"PostgreSQL: declared feeds, {feed_plan.rows:,} rows into "
             f"{feed_plan.rows * feed_plan.history_days:,}, seam against the floor")
    declared = composite.on_postgres(server, feed_plan, bench.root)
    _log_feeds(declared)
    return {"large_file": large, "sharing": shared, "feeds": declared}


def _log_feeds(results: list[dict[str, Any]]) -> None:
    for one in results:
        print(f"  {one['feed']} ({one['shape']}): seam {one['seam_s']:.3f} s, floor "
              f"{one['floor_s']:.3f} s: {one['vs_floor']:.2f}x")


def feed_targets(results: list[dict[str, Any]], backend: str) -> list[Target]:
    return [Target(f"{backend}: {one['feed']} ({one['shape']}), {one['rows']:,} rows into "
                   f"{one['history_rows']:,} / floor with the same key", one["vs_floor"],
                   one["limit"]) for one in results]


def render_feeds(results: list[dict[str, Any]], backend: str) -> str:
    return table(f"{backend}: declared feeds with composite keys, one new day through the "
                 "warehouse seam (stage, ledger row, merge, commit) against the floor on a "
                 "plain table with the same primary key",
                 ["feed", "key", "shape", "history rows", "rows", "seam s", "floor s",
                  "x floor", "target"],
                 [[f["feed"], f["key"], f["shape"], f["history_rows"], f["rows"], f["seam_s"],
                   f["floor_s"], f["vs_floor"], f"<= {f['limit']:g}"] for f in results])


def run(bench: Bench) -> dict[str, Any]:
    plan = bench.plan
    empty = bench.template("empty", 0, 0)
    history = bench.template("history", plan.history_days, plan.history_rows)
    label = f"{plan.history_days}x{plan.history_rows // 1000}k"
    results: dict[str, Any] = {"cases": []}
    _section("per-file path: daemon --once against the floor")
    for rows in plan.sizes:
        for name, template in (("empty", empty), (label, history)):
            results["cases"] += bench.case(rows, name, template)
    _section("the prototype's approach")
    results["prototype"] = bench.prototype_runs(history)
    _section(f"end to end: {plan.e2e_rows:,} rows dropped into the running daemon")
    results["end_to_end"] = bench.end_to_end(history)
    _section(f"small files: {plan.drops} drops each way, then a burst of {plan.burst}")
    results["small_files"] = bench.latency_and_burst()
    _section(f"history growth: days from day 1 against days from day {plan.growth_days + 1}")
    results["growth"] = bench.growth()
    feed_plan = composite.FEED_FULL if plan is FULL else composite.FEED_QUICK
    _section(f"declared feeds: {feed_plan.rows:,} rows into "
             f"{feed_plan.rows * feed_plan.history_days:,}, seam against the floor")
    results["feeds"] = composite.sqlite(feed_plan, bench.root)
    _log_feeds(results["feeds"])
    return results


def postgres_targets(pg: dict[str, Any] | None) -> list[Target]:
    if pg is None:
        return []
    large, shared = pg["large_file"], {s["daemons"]: s for s in pg["sharing"]}
    return [*feed_targets(pg["feeds"], "PostgreSQL"),
        Target(f"PostgreSQL: {large['rows']:,} rows into {large['history_rows']:,} / floor",
               large["vs_floor"], 1.2),
        Target("PostgreSQL: loads/min, 2 daemons / 1 daemon",
               shared[2]["loads_per_minute"] / shared[1]["loads_per_minute"], 1.0,
               at_most=False),
    ]


def render_postgres(pg: dict[str, Any] | None) -> str:
    if pg is None:
        return "PostgreSQL: skipped (no server)"
    large = pg["large_file"]
    return "\n\n".join([
        table("PostgreSQL: one file into a warehouse with history (running daemon, drop -> "
              "archived)", ["history rows", "rows", "daemon s", "floor s", "x floor"],
              [[large["history_rows"], large["rows"], large["daemon_s"], large["floor_s"],
                large["vs_floor"]]]),
        table("PostgreSQL: daemons sharing one inbox (files dropped at once)",
              ["daemons", "files", "rows each", "seconds", "loads/min"],
              [[s["daemons"], s["files"], s["rows_each"], s["seconds"], s["loads_per_minute"]]
               for s in pg["sharing"]]),
        render_feeds(pg["feeds"], "PostgreSQL"),
    ])


def targets(results: dict[str, Any]) -> list[Target]:
    e2e, small, growth = results["end_to_end"], results["small_files"], results["growth"]
    rate = results["prototype"][-1]["rows_per_s"]
    measured = results["prototype"][-1]["rows"] == e2e["rows"]
    biggest = max(c["rows"] for c in results["cases"])
    merge_at_e2e = next(c for c in results["cases"] if c["rows"] == e2e["rows"]
                        and c["mode"] == "merge" and c["history"] != "empty")
    return [
        Target(f"{e2e['rows']:,} rows end to end / simplest loader (stretch: below 1.0)",
               e2e["first_s"] / e2e["floor_first_s"], 1.1),
        Target(f"{e2e['rows']:,} rows end to end, keys shuffled / sorted",
               e2e["unsorted_s"] / e2e["first_s"], 1.2),
        Target(f"prototype ({'measured' if measured else 'extrapolated'}) / daemon end to "
               f"end, {e2e['rows']:,} rows", e2e["rows"] / rate / e2e["first_s"], 15,
               at_most=False),
        Target("identical re-run / first run, end to end", e2e["rerun_s"] / e2e["first_s"], 1.0),
        Target("pages an identical re-run changed (ledger row only)",
               merge_at_e2e["rerun_changed_pages"], 8),
        Target(f"a day after {growth['history_days']} days / a day after none (medians)",
               growth["ratio"], 1.3),
        Target(f"peak RSS MB, {biggest:,}-row file",
               max(c["peak_rss_mb"] for c in results["cases"] if c["rows"] == biggest), 300),
        *(Target(f"small files, {how} drop, p{q} ms", small[how][f"p{q}_ms"], limit)
          for how in ("rename", "in_place") for q, limit in ((50, 50), (99, 200))),
        Target("burst files/s", small["burst"]["files_per_s"], 100, at_most=False),
        *feed_targets(results["feeds"], "SQLite"),
    ]


def render(results: dict[str, Any]) -> str:
    cases = [[c["rows"], c["history"], c["mode"], c["first_s"], c["floor_first_s"],
              c["vs_floor_first"], c["rerun_s"], c["floor_rerun_s"], c["vs_floor_rerun"],
              c["rerun_changed_pages"], c["peak_rss_mb"]] for c in results["cases"]]
    rate = results["prototype"][-1]["rows_per_s"]
    firsts = {(c["rows"], c["history"]): c["first_s"] for c in results["cases"]
              if c["mode"] == "merge" and c["history"] != "empty"}
    proto = [[rows, seconds, "measured" if any(p["rows"] == rows for p in results["prototype"])
              else "extrapolated", daemon, seconds / daemon]
             for (rows, _), daemon in firsts.items() for seconds in [rows / rate]]
    e2e = results["end_to_end"]
    proto.append([e2e["rows"], e2e["rows"] / rate, "end to end", e2e["first_s"],
                  e2e["rows"] / rate / e2e["first_s"]])
    small, growth = results["small_files"], results["growth"]
    lat = [[how, small[how]["drops"], small[how]["p50_ms"], small[how]["p95_ms"],
            small[how]["p99_ms"]] for how in ("rename", "in_place")]
    return "\n\n".join([
        table("Per-file path (daemon --once; seconds are the daemon's own duration_ms)",
              ["rows", "history", "mode", "first s", "floor s", "x floor", "re-run s",
               "floor s", "x floor", "re-run pages", "RSS MB"], cases),
        table("Prototype's approach vs the daemon (merge, with history)",
              ["rows", "prototype s", "", "daemon s", "speed-up"], proto),
        table("End to end through the running daemon (drop -> archived), against the "
              "simplest correct loader", ["rows", "first s", "re-drop s", "floor s", "x floor",
                                          "shuffled s", "x sorted", "RSS MB"],
              [[e2e["rows"], e2e["first_s"], e2e["rerun_s"], e2e["floor_first_s"],
                e2e["first_s"] / e2e["floor_first_s"], e2e["unsorted_s"],
                e2e["unsorted_s"] / e2e["first_s"], e2e["peak_rss_mb"]]]),
        table("Small files (25 rows), one at a time", ["drop", "n", "p50 ms", "p95 ms",
                                                       "p99 ms"], lat),
        table("Burst", ["files", "seconds", "files/s", "daemon RSS MB"],
              [[small["burst"]["files"], small["burst"]["seconds"],
                small["burst"]["files_per_s"], small["peak_rss_mb"]]]),
        table("History growth (running daemon; median per-file seconds of consecutive new "
              "days)", ["rows/day", "days", "from day 1 s", "days before", "from then s",
                        "ratio"],
              [[growth["rows_per_day"], growth["days_each"], growth["day1_s"],
                growth["history_days"], growth["day_last_s"], growth["ratio"]]]),
        render_feeds(results["feeds"], "SQLite"),
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the sizes of the targets (minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="a PostgreSQL database to measure the PostgreSQL column in "
                        "(it makes and drops schemas bench_*); skipped without one")
    parser.add_argument("--only", choices=("sqlite", "postgres"), default=None,
                        help="run one column only (default: both)")
    parser.add_argument("--work", type=Path, default=None,
                        help="where to build inputs and databases (default: the temp dir)")
    args = parser.parse_args(argv)
    plan = FULL if args.full else QUICK
    root = Path(tempfile.mkdtemp(prefix="etl-bench-", dir=args.work))
    started = time.perf_counter()
    try:
        machine = report.machine()
        print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
        bench = Bench(plan, root)
        results = run(bench) if args.only != "postgres" else {}
        results["postgres"] = (run_postgres(args.postgres, args.full, bench)
                               if args.only != "sqlite" else None)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sqlite = args.only != "postgres"
    judged = (targets(results) if sqlite else []) + postgres_targets(results["postgres"])
    print("\n" + (render(results) + "\n\n" if sqlite else "")
          + render_postgres(results["postgres"]))
    print(f"\nTargets ({'full' if args.full else 'quick sizes, not judged'}):")
    print("\n".join(t.line() for t in judged))
    results = {"mode": "full" if args.full else "quick", "machine": machine,
               "seconds": time.perf_counter() - started, **results,
               "targets": [{**vars(t), "met": t.met} for t in judged]}
    report.write_json(args.out, results)
    print(f"\nwrote {args.out}")
    return 1 if args.full and not all(t.met for t in judged) else 0


if __name__ == "__main__":
    sys.exit(main())
