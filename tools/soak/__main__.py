"""`python -m tools.soak` (`make soak`): an hour of steady drops; RSS and fds stay flat.

Owns the command line, the work directory and the JSON record of a run. A run starts
`python -m filedrop_etl` on a fresh work directory (JSON log to `daemon.log` there), drops a
file every `--interval` seconds in a fixed cycle of kinds (a new day, small new days, an
identical re-drop, a corrected re-drop, three kinds of bad file), by rename from a staging
directory on the same filesystem or written in place, and samples the daemon's VmRSS,
open descriptors and threads from /proc, with the files archived and the backlog. At the
end it drains, accounts for every drop in processed/ or failed/ exactly once (by name and
SHA-256), checks the log's counts against what each drop must do, stops the daemon with
SIGTERM and judges flatness: the end window against the warm-up window (runs of 30
minutes or more; shorter ones are smoke runs). Exit 0 if all of it held, 1 if anything
did not, 2 if the soak could not run. The package never imports the daemon (it sees it
only as a process, a log and directories), and CI does not run it. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tools.soak.drops import SoakError
from tools.soak.report import report
from tools.soak.run import Soak
from tools.soak.verdict import JUDGE_MINUTES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.soak", description="Drop files into a real daemon at a steady rate "
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
