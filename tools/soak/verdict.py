"""Whether a soak's samples are flat: its end window against its warm-up window.

Owns the judgement and its limits, so that the unit tests can show that a leak fails
it and that noise does not.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from tools.soak.observe import Sample

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
