"""Named crash points in the per-file path, armed only by the crash-safety tests.

`ETL_CRASH_AT=<point>[@<n>]` arms one point: the n-th time (default the first) the
daemon passes it, it logs `crash_point_reached` and stops itself with SIGSTOP, frozen
at exactly that step, so that a test can SIGKILL it there and restart it. Unset (as
in production) `reached` is a function that returns at once: call sites say
`crashpoints.reached("<point>")`, once per file and step, never per row. `POINTS` lists
them in the order a file passes them; the quarantine's point is on a bad file's path.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping

import structlog

from filedrop_etl.config import ConfigError

log = structlog.get_logger("daemon.crashpoints")

ENV_VAR = "ETL_CRASH_AT"
POINTS = (
    "after_claim",        # the file is in the work directory, nothing read yet
    "during_staging",     # the first batch is in the staging database
    "after_checks",       # every check passed; no transaction yet
    "during_merge",       # inside the transaction: ledger row and upsert done, no COMMIT
    "after_commit",       # committed; the file is still in the work directory
    "during_move",        # renamed into processed/; no `file_processed` line yet
    "during_quarantine",  # the sidecar is in failed/; the file is still in the work directory
)
# Points on the way to the first file, not on every file's path.
START_POINTS = (
    "during_migration",  # the schema's migration has copied the fact table; no COMMIT
)


def _off(point: str) -> None:
    """The production `reached`: nothing armed."""


class _Armed:
    def __init__(self, point: str, hit: int) -> None:
        self.point = point
        self.hit = hit
        self.passes = 0

    def __call__(self, point: str) -> None:
        if point != self.point:
            return
        self.passes += 1
        if self.passes == self.hit:
            log.warning("crash_point_reached", point=point, hit=self.hit, pid=os.getpid())
            # Frozen, every thread with it: what the test's SIGKILL finds is this step.
            # Raised in this thread: sent to the process, the stop could reach this thread
            # only after it had run on (and committed, say), measured.
            signal.raise_signal(signal.SIGSTOP)


# Call as `crashpoints.reached(point)`: looked up at each call, so `arm` can swap it.
reached: Callable[[str], None] = _off


def arm(environ: Mapping[str, str] = os.environ) -> str | None:
    """Arm the point named by `ETL_CRASH_AT`, if set; return its name.

    `ConfigError` for an unknown point or count: a typo must not silently test nothing.
    """
    global reached
    spec = environ.get(ENV_VAR, "")
    if not spec:
        reached = _off
        return None
    point, at, count = spec.partition("@")
    if point not in (*POINTS, *START_POINTS) or (at and not (count.isdigit() and int(count) > 0)):
        raise ConfigError(f"{ENV_VAR}={spec!r} names no crash point",
                          hint=f"use one of {', '.join((*POINTS, *START_POINTS))}, "
                          "optionally @N for the N-th pass")
    reached = _Armed(point, int(count or 1))
    return point
