"""`python -m tools.torture [--full] [--seed N] [--postgres URL]`: crash, kill and flood the
daemon; print figures.

Runs every named crash point (in both write modes), streams of drops under random
SIGKILLs, and a burst with an inotify overflow, each on its own case directory under a
temporary root, and audits each. With `--postgres URL` it runs the crash points and the
random kills again against that server, each case in a schema of its own (`torture_*`,
made before the case and dropped after it), so no case sees another's tables. Prints the
figures, with the backend of each row, and writes `tools/torture/results.json`. Exit
status 1 if any case diverged or could not be driven; the case directories (and schemas)
of a failed run are kept for inspection. The default plan is a smoke run of about a
minute (more with `--postgres`); `--full` is the one whose figures docs/robustness.md
quotes (`make torture`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from filedrop_etl.daemon.warehouse.postgresql import books
from tools import pg_scratch
from tools.torture import scenarios
from tools.torture.scenarios import Result
from tools.torture.service import TortureError

HERE = Path(__file__).resolve().parent
SCHEMA_PREFIX = "torture_"


@dataclass(frozen=True)
class Plan:
    name: str
    crash_repeats: int  # per point, alternating merge and replace
    random_drops: int  # per write mode
    burst_files: int
    # The same on PostgreSQL, with `--postgres` (the burst is the watcher's: SQLite only).
    pg_crash_repeats: int = 0
    pg_random_drops: int = 0
    points: tuple[str, ...] = scenarios.CRASH_POINTS


QUICK = Plan("quick", crash_repeats=2, random_drops=30, burst_files=1_000,
             pg_crash_repeats=1, pg_random_drops=10)
FULL = Plan("full", crash_repeats=10, random_drops=300, burst_files=10_000,
            pg_crash_repeats=10, pg_random_drops=100)


@dataclass(frozen=True)
class Case:
    name: str
    backend: str  # "sqlite", or "postgresql": run in a schema of its own
    run: partial[Result]  # called with the case directory (and db_url on PostgreSQL)


def _backend_cases(plan: Plan, seed: int, backend: str, repeats: int,
                   drops: int) -> list[Case]:
    prefix = "pg-" if backend == "postgresql" else ""
    cases = []
    for i, point in enumerate(plan.points):
        for repeat in range(repeats):
            # Alternating by run, the first at every other point in replace mode: one run
            # per point (PostgreSQL's quick plan) still has both modes among the points.
            mode = ("merge", "replace")[(i + repeat) % 2]
            cases.append(Case(f"{prefix}crash-{point}-{repeat}", backend,
                              partial(scenarios.crash_at_point, point=point, repeat=repeat,
                                      seed=seed, write_mode=mode)))
    if drops:
        cases += [Case(f"{prefix}random-{mode}", backend,
                       partial(scenarios.random_kills, drops_count=drops, seed=seed,
                               write_mode=mode)) for mode in ("merge", "replace")]
    return cases


def _cases(plan: Plan, seed: int, postgres: bool = False) -> list[Case]:
    cases = _backend_cases(plan, seed, "sqlite", plan.crash_repeats, plan.random_drops)
    if plan.burst_files:
        cases.append(Case("burst", "sqlite",
                          partial(scenarios.burst, files=plan.burst_files, seed=seed)))
    if postgres:
        cases += _backend_cases(plan, seed, "postgresql", plan.pg_crash_repeats,
                                plan.pg_random_drops)
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
    by_point: dict[tuple[str, str], list[Result]] = {}
    for r in crashes:
        by_point.setdefault((r.backend, str(r.details["point"])), []).append(r)
    randoms = [r for r in results if r.scenario == "random-kills"]
    bursts = [r for r in results if r.scenario == "burst"]
    verdict = ["lost", "duplicated", "divergences"]
    out = ["Crash points (SIGKILL while frozen at the point, restart, audit)",
           _table(["backend", "point", "runs", "merge", "replace", "kills", "resumed",
                   *verdict],
                  [[b, p, len(rs), sum(r.write_mode == "merge" for r in rs),
                    sum(r.write_mode == "replace" for r in rs), sum(r.kills for r in rs),
                    sum(int(str(r.details["resumed"])) for r in rs),
                    _lost(rs), _duplicated(rs), _divergences(rs)]
                   for (b, p), rs in by_point.items()]),
           "", "Random SIGKILLs during a stream of drops",
           _table(["backend", "mode", "drops", "kills", "resumed", "already loaded", *verdict,
                   "seconds"],
                  [[r.backend, r.write_mode, r.drops, r.kills, r.details["resumed"],
                    r.details["already_loaded"], _lost([r]), _duplicated([r]),
                    _divergences([r]), r.seconds] for r in randoms]),
           "", "Burst with an inotify queue overflow",
           _table(["backend", "files", "files/s", "overflows", "rescans", "found by rescan",
                   "found by event", *verdict],
                  [[r.backend, r.drops, r.details["files_per_second"], r.details["overflows"],
                    r.details["overflow_rescans"], r.details["found_by_rescan"],
                    r.details["found_by_event"], _lost([r]), _duplicated([r]),
                    _divergences([r])] for r in bursts])]
    for r in results:
        for divergence in r.divergences:
            out.append(f"DIVERGENCE {r.scenario} ({r.write_mode}, {r.backend}): {divergence}")
    out.append(f"\nTotal: {sum(r.kills for r in crashes)} crash-point kills, "
               f"{sum(r.kills for r in randoms)} random kills, "
               f"{sum(r.drops for r in results)} drops: {_lost(results)} lost, "
               f"{_duplicated(results)} duplicated (files or rows), "
               f"{_divergences(results)} divergences of any kind.")
    return "\n".join(out)


def _run(case: Case, directory: Path, server: str | None, keep: bool,
         kept: list[str]) -> Result:
    """Run `case`; on PostgreSQL in a schema of its own, dropped after unless the case
    failed or `keep` is set (then it is named in `kept`)."""
    if case.backend == "sqlite":
        return case.run(directory)
    assert server is not None
    schema, url = pg_scratch.create_schema(server, SCHEMA_PREFIX)
    try:
        result = case.run(directory, db_url=url)
    except TortureError:
        kept.append(schema)  # the case could not be driven: what its tables hold may say why
        raise
    except BaseException:
        pg_scratch.drop_schema(server, schema)
        raise
    result.details["schema"] = schema
    if keep or result.divergences:
        kept.append(schema)
    else:
        pg_scratch.drop_schema(server, schema)
    return result


def run(plan: Plan, seed: int, root: Path, server: str | None = None,
        keep: bool = False) -> tuple[list[Result], list[str], list[str]]:
    """Every case of `plan` (PostgreSQL's too with a `server` URL), each in a directory
    under `root`: the results, the errors of cases that could not be driven, and the
    schemas kept."""
    results: list[Result] = []
    errors: list[str] = []
    kept: list[str] = []
    started = time.monotonic()
    for case in _cases(plan, seed, server is not None):
        print(f"[{time.monotonic() - started:6.1f}s] {case.name}", file=sys.stderr, flush=True)
        try:
            results.append(_run(case, root / case.name, server, keep, kept))
        except TortureError as exc:
            errors.append(f"{case.name}: {exc}")
    return results, errors, kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.torture", description=__doc__)
    parser.add_argument("--full", action="store_true",
                        help="the sizes docs/robustness.md quotes (minutes)")
    parser.add_argument("--seed", type=int, default=1, help="replays a run exactly")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="also run the crash points and random kills against this "
                        "PostgreSQL database, each case in a schema torture_* of its own "
                        "(made and dropped); SQLite only without it")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--keep", action="store_true",
                        help="keep the case directories (and PostgreSQL schemas)")
    args = parser.parse_args(argv)
    plan = FULL if args.full else QUICK
    root = Path(tempfile.mkdtemp(prefix="torture-"))
    started = time.monotonic()
    results, errors, kept = run(plan, args.seed, root, args.postgres, args.keep)
    print(render(results))
    for error in errors:
        print(f"ERROR {error}")
    failed = bool(errors) or any(r.divergences for r in results)
    args.out.write_text(json.dumps({"plan": asdict(plan), "seed": args.seed,
                                    "backends": sorted({r.backend for r in results}),
                                    "seconds": round(time.monotonic() - started, 1),
                                    "results": [asdict(r) for r in results],
                                    "errors": errors}, indent=2) + "\n")
    if failed or args.keep:
        print(f"case directories kept in {root}")
    else:
        shutil.rmtree(root)
    if kept:
        # Each with the bookkeeping schema its daemons made beside it.
        schemas = [name for s in kept for name in (s, books.default_for(s))]
        print(f"PostgreSQL schemas kept: {', '.join(schemas)} "
              "(DROP SCHEMA ... CASCADE when done)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
