"""`python -m tools.torture [--full] [--seed N]`: crash, kill and flood the daemon; print figures.

Runs every named crash point (in both write modes), streams of drops under random
SIGKILLs, and a burst with an inotify overflow, each on its own case directory under a
temporary root, and audits each. Prints the figures and writes `tools/torture/results.json`.
Exit status 1 if any case diverged or could not be driven; the case directories of a
failed run are kept for inspection. The default plan is a smoke run of about a minute;
`--full` is the one whose figures docs/robustness.md quotes (`make torture`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from tools.torture import scenarios
from tools.torture.scenarios import Result
from tools.torture.service import TortureError

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    name: str
    crash_repeats: int  # per point, alternating merge and replace
    random_drops: int  # per write mode
    burst_files: int


QUICK = Plan("quick", crash_repeats=2, random_drops=30, burst_files=1_000)
FULL = Plan("full", crash_repeats=10, random_drops=300, burst_files=10_000)


def _cases(plan: Plan, seed: int) -> list[tuple[str, Callable[[Path], Result]]]:
    cases: list[tuple[str, Callable[[Path], Result]]] = []
    for point in scenarios.CRASH_POINTS:
        for repeat in range(plan.crash_repeats):
            mode = ("merge", "replace")[repeat % 2]
            cases.append((f"crash-{point}-{repeat}",
                          partial(scenarios.crash_at_point, point=point, repeat=repeat,
                                  seed=seed, write_mode=mode)))
    for mode in ("merge", "replace"):
        cases.append((f"random-{mode}", partial(scenarios.random_kills,
                                                drops_count=plan.random_drops, seed=seed,
                                                write_mode=mode)))
    cases.append(("burst", partial(scenarios.burst, files=plan.burst_files, seed=seed)))
    return cases


def _table(header: list[str], rows: list[list[object]]) -> str:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
                     for row in cells)


def _lost(results: list[Result]) -> int:
    return sum(r.tally.get("files lost", 0) + r.tally.get("rows lost", 0) for r in results)


def _duplicated(results: list[Result]) -> int:
    return sum(r.tally.get("files duplicated", 0) + r.tally.get("rows repeated", 0)
               + r.tally.get("ledger rows extra", 0) for r in results)


def _divergences(results: list[Result]) -> int:
    return sum(len(r.divergences) for r in results)


def render(results: list[Result]) -> str:
    crashes = [r for r in results if r.scenario.startswith("crash:")]
    by_point: dict[str, list[Result]] = {}
    for r in crashes:
        by_point.setdefault(str(r.details["point"]), []).append(r)
    randoms = [r for r in results if r.scenario == "random-kills"]
    bursts = [r for r in results if r.scenario == "burst"]
    verdict = ["lost", "duplicated", "divergences"]
    out = ["Crash points (SIGKILL while frozen at the point, restart, audit)",
           _table(["point", "runs", "merge", "replace", "kills", "resumed", *verdict],
                  [[p, len(rs), sum(r.write_mode == "merge" for r in rs),
                    sum(r.write_mode == "replace" for r in rs), sum(r.kills for r in rs),
                    sum(int(str(r.details["resumed"])) for r in rs),
                    _lost(rs), _duplicated(rs), _divergences(rs)]
                   for p, rs in by_point.items()]),
           "", "Random SIGKILLs during a stream of drops",
           _table(["mode", "drops", "kills", "resumed", "already loaded", *verdict, "seconds"],
                  [[r.write_mode, r.drops, r.kills, r.details["resumed"],
                    r.details["already_loaded"], _lost([r]), _duplicated([r]),
                    _divergences([r]), r.seconds] for r in randoms]),
           "", "Burst with an inotify queue overflow",
           _table(["files", "files/s", "overflows", "rescans", "found by rescan",
                   "found by event", *verdict],
                  [[r.drops, r.details["files_per_second"], r.details["overflows"],
                    r.details["overflow_rescans"], r.details["found_by_rescan"],
                    r.details["found_by_event"], _lost([r]), _duplicated([r]),
                    _divergences([r])] for r in bursts])]
    for r in results:
        for divergence in r.divergences:
            out.append(f"DIVERGENCE {r.scenario} ({r.write_mode}): {divergence}")
    out.append(f"\nTotal: {sum(r.kills for r in crashes)} crash-point kills, "
               f"{sum(r.kills for r in randoms)} random kills, "
               f"{sum(r.drops for r in results)} drops: {_lost(results)} lost, "
               f"{_duplicated(results)} duplicated (files or rows), "
               f"{_divergences(results)} divergences of any kind.")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.torture", description=__doc__)
    parser.add_argument("--full", action="store_true",
                        help="the sizes docs/robustness.md quotes (minutes)")
    parser.add_argument("--seed", type=int, default=1, help="replays a run exactly")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--keep", action="store_true", help="keep the case directories")
    args = parser.parse_args(argv)
    plan = FULL if args.full else QUICK
    root = Path(tempfile.mkdtemp(prefix="torture-"))
    results: list[Result] = []
    errors: list[str] = []
    started = time.monotonic()
    for name, run in _cases(plan, args.seed):
        print(f"[{time.monotonic() - started:6.1f}s] {name}", file=sys.stderr, flush=True)
        try:
            results.append(run(root / name))
        except TortureError as exc:
            errors.append(f"{name}: {exc}")
    print(render(results))
    for error in errors:
        print(f"ERROR {error}")
    failed = bool(errors) or any(r.divergences for r in results)
    args.out.write_text(json.dumps({"plan": asdict(plan), "seed": args.seed,
                                    "seconds": round(time.monotonic() - started, 1),
                                    "results": [asdict(r) for r in results],
                                    "errors": errors}, indent=2) + "\n")
    if failed or args.keep:
        print(f"case directories kept in {root}")
    else:
        shutil.rmtree(root)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
