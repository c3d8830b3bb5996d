"""The benchmark's own arithmetic (percentiles, page diffs, target verdicts), and the
variants tool at a small size."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.bench import page, variants
from tools.bench.report import Target
from tools.bench.runs import PAGE_BYTES, changed_pages
from tools.bench.service import percentile


@pytest.mark.parametrize(("q", "expected"), [(50, 50.0), (95, 95.0), (99, 99.0), (100, 100.0)])
def test_percentile_is_nearest_rank(q: float, expected: float) -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, q) == expected


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 50) == percentile([7.0], 99) == 7.0


def test_changed_pages_counts_differing_and_appended_pages(tmp_path: Path) -> None:
    before = bytes(PAGE_BYTES * 4)
    after = bytearray(before)
    after[PAGE_BYTES + 10] = 1  # page 1 changed
    after[3 * PAGE_BYTES] = 1  # page 3 changed
    after += bytes(PAGE_BYTES * 2)  # two pages appended
    (tmp_path / "a").write_bytes(before)
    (tmp_path / "b").write_bytes(bytes(after))
    assert changed_pages(tmp_path / "a", tmp_path / "b") == 4
    assert changed_pages(tmp_path / "a", tmp_path / "a") == 0


@pytest.mark.parametrize(("value", "limit", "at_most", "met"), [
    (1.1, 1.2, True, True), (1.3, 1.2, True, False), (1.2, 1.2, True, True),
    (16.0, 15.0, False, True), (14.0, 15.0, False, False),
])
def test_target_verdict(value: float, limit: float, at_most: bool, met: bool) -> None:
    target = Target("x", value, limit, at_most)
    assert target.met is met
    assert ("MISSED" in target.line()) is not met


def test_the_variants_measure_each_design_on_the_same_rows(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`tools.bench.variants` at a small size: every design merged, the floor at 1.00x."""
    assert variants.main(["--rows", "2000", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2,000 new rows into 6,000: the merge's SQL")
    lines = {line.split("  ")[1].strip(): line for line in out.splitlines()[1:5]}
    assert set(lines) == set(variants.DESIGNS)
    assert "1.00x floor" in lines["the floor's plain table"]
    assert "counted on the date index" in out


def test_the_page_bench_measures_a_small_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    """`tools.bench.page` at a small size (SQLite, no daemon run): it runs, and says the
    page took one read session per page made."""
    assert page.main(["--loads", "200", "--viewers", "3", "--files", "0",
                      "--only", "sqlite"]) == 0
    said = capsys.readouterr().out
    assert "200 loads in the last 24 h" in said and "answers [200, 200, 200]" in said
