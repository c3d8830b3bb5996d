"""The soak script's own judgement: the flatness verdict and the file accounting.

The soak runs for an hour outside CI; these check, on synthetic samples, that a leak
would fail it and that noise would not.
"""

from __future__ import annotations

from tools.soak.observe import Sample, base_name, reconcile
from tools.soak.verdict import judge_flat

MINUTES = 60
DURATION = MINUTES * 60.0


def samples(rss: list[float], fds: list[int]) -> list[Sample]:
    """One sample a minute over the drop phase, with the given RSS (MB) and fd counts."""
    step = DURATION / (len(rss) - 1)
    return [Sample(t=i * step, phase="drops", rss_mb=r, anon_mb=r, file_mb=0.0, fds=f,
                   threads=7, dropped=0, archived=0, backlog=0, db_mb=0.0)
            for i, (r, f) in enumerate(zip(rss, fds, strict=True))]


def test_steady_process_is_flat() -> None:
    verdict = judge_flat(samples([150.0] * 61, [10] * 61), DURATION)
    assert verdict["flat"] is True
    assert verdict["rss_growth_mb"] == 0


def test_bounded_warm_up_before_the_warm_window_is_flat() -> None:
    # A cache filling in the first five minutes, then steady.
    rss = [120.0 + 12 * min(i, 5) for i in range(61)]
    assert judge_flat(samples(rss, [10] * 61), DURATION)["flat"] is True


def test_rss_growing_half_a_megabyte_a_minute_is_a_leak() -> None:
    verdict = judge_flat(samples([150.0 + 0.5 * i for i in range(61)], [10] * 61), DURATION)
    assert verdict["flat"] is False
    assert verdict["rss_flat"] is False
    assert verdict["fds_flat"] is True


def test_one_descriptor_leaked_every_ten_minutes_is_a_leak() -> None:
    verdict = judge_flat(samples([150.0] * 61, [10 + i // 10 for i in range(61)]), DURATION)
    assert verdict["fds_flat"] is False
    assert verdict["flat"] is False


def test_a_file_in_flight_at_one_sample_is_not_a_leak() -> None:
    fds = [10] * 61
    fds[58] = 14  # a load in flight holds the file and its staging database open
    assert judge_flat(samples([150.0] * 61, fds), DURATION)["flat"] is True


def test_too_few_samples_is_not_flat() -> None:
    early = [s for s in samples([150.0] * 61, [10] * 61) if s.t < DURATION / 2]
    assert judge_flat(early, DURATION)["flat"] is False


def test_archived_names_map_back_to_the_dropped_name() -> None:
    assert base_name("transactions_2026-02-10~12.parquet") == "transactions_2026-02-10.parquet"
    assert base_name("transactions_2026-02-10.parquet") == "transactions_2026-02-10.parquet"


def test_reconcile_finds_lost_duplicated_and_misplaced_files() -> None:
    dropped = [("processed", "a", "h1"), ("processed", "a", "h1"), ("failed", "b", "h2"),
               ("processed", "c", "h3")]
    assert reconcile(dropped, dropped) == {"lost": [], "extra": []}
    found = [("processed", "a", "h1"), ("processed", "a", "h1"), ("processed", "a", "h1"),
             ("processed", "b", "h2")]
    assert reconcile(dropped, found) == {
        "lost": [["failed", "b", "h2"], ["processed", "c", "h3"]],
        "extra": [["processed", "a", "h1"], ["processed", "b", "h2"]],
    }
