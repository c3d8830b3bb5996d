"""The status page's charts as SVG: what a reader could not read on them (issue 24, 15).

Each test reads the markup `daemon.ops.charts` returns, with a width estimate of its own
(`label_width`), independent of the module's: the rows-per-day axis lost the 3 of
"300,000" to a fixed margin; a burst of 200 loads and 10 failures in one quarter hour
was one blue mark and one red one at the same x, with nothing to say that the blue one
stood for 200 loads. What needs a browser's layout is in tests/test_status_page.py.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from filedrop_etl.daemon.ops import charts
from filedrop_etl.daemon.warehouse.api import LoadBin

NOW = datetime(2026, 3, 1, 10, 5, 30, tzinfo=UTC)
SLICE = int(NOW.timestamp()) // charts.SLICE_SECONDS


def label_width(text: str, size: float = 11.0) -> float:
    """At least the width of `text` in DejaVu Sans (Debian's sans-serif, chromium's here):
    digits are .636 em, the comma and the point .318, a space .318, `s` .521."""
    return size * sum(.32 if c in ",. " else .64 for c in text)


def svg_of(markup: str) -> ET.Element:
    [svg] = re.findall(r"<svg .*?</svg>", markup, flags=re.S)
    return ET.fromstring(svg)  # noqa: S314  # the markup the test just made, not a stranger's


def labels_left_of_the_plot(svg: ET.Element) -> list[tuple[str, float]]:
    """The tick labels right-aligned to the plot's left edge: each text and its x."""
    return [(t.text or "", float(t.get("x", 0))) for t in svg.iter("text")
            if t.get("text-anchor") == "end"]


@pytest.mark.parametrize("top", [7, 85, 2_000, 300_000, 5_000_000, 123_456_789])
def test_the_rows_axis_fits_its_widest_label_in_the_chart(top: int) -> None:
    svg = svg_of(charts.rows_per_day([("2026-03-01", top // 3), ("2026-03-02", top)], 31))
    labels = labels_left_of_the_plot(svg)
    assert len(labels) >= 2 and any(text.replace(",", "").isdigit() and int(
        text.replace(",", "")) >= top for text, _ in labels), labels
    for text, x in labels:
        assert x - label_width(text) >= 0, f"{text!r} is cut at the chart's left edge"
    # The columns begin right of the labels.
    first = min(float(r.get("x", 0)) for r in svg.iter("rect"))
    assert first >= max(x for _, x in labels)


def test_the_timelines_axis_fits_its_labels_and_its_latest_mark() -> None:
    bins = [LoadBin(SLICE, "processed", 1, 1000, 120.0, 120.0, 120.0, "a.parquet")]
    svg = svg_of(charts.timeline(bins, NOW))
    for text, x in labels_left_of_the_plot(svg):
        assert x - label_width(text) >= 0, text
    # The mark of the quarter hour now running stays whole, within the chart.
    [mark] = svg.iter("circle")
    assert float(mark.get("cx", 0)) + float(mark.get("r", 0)) <= charts.WIDTH


def burst(processed: int, failed: int) -> list[LoadBin]:
    """A burst in the quarter hour now running, the failed loads as slow as the others."""
    return [LoadBin(SLICE, "processed", processed, processed * 2000, 0.01, 0.3, 20.0, None),
            LoadBin(SLICE, "failed", failed, 0, 0.01, 0.3, 0.5, None)]


def test_a_bursts_failed_mark_is_beside_the_processed_one_and_on_top() -> None:
    markup = charts.timeline(burst(200, 10), NOW)
    svg = svg_of(markup)
    marks = {c.get("class"): c for c in svg.iter("circle")}
    blue, red = marks["processed"], marks["failed"]
    # Not at the same x, so that the red one never sits hidden in the blue one.
    assert abs(float(red.get("cx", 0)) - float(blue.get("cx", 0))) >= 4
    # Drawn after it (on top), and after every line.
    assert markup.index('<circle class="failed"') > markup.index('<circle class="processed"')
    assert markup.index('<circle class="failed"') > markup.rindex("</path>")
    # Each says how many loads it stands for, in its colour's class, beside it.
    counts = {t.get("class"): t.text for t in svg.iter("text")
              if "count" in (t.get("class") or "")}
    assert counts == {"count processed": "200", "count failed": "10"}


def test_marks_of_one_status_in_a_quarter_hour_stay_at_its_time() -> None:
    """Only a quarter hour of both statuses moves its marks apart."""
    bins = [LoadBin(SLICE - 8, "processed", 5, 50, 0.1, 0.2, 0.7, None),
            LoadBin(SLICE - 4, "failed", 1, 0, 0.1, 0.2, 0.2, "x.parquet")]
    before = NOW - timedelta(hours=2)
    one = svg_of(charts.timeline(bins[:1], before))
    both = svg_of(charts.timeline(bins, before))
    assert [c.get("cx") for c in one.iter("circle")] == [
        c.get("cx") for c in both.iter("circle") if c.get("class") == "processed"]


def test_counts_are_written_for_a_few_marks_only() -> None:
    """A steady flow of ten loads a quarter hour: a count beside every third mark would
    be noise; the largest few are counted, and no count covers another."""
    bins = [LoadBin(SLICE - i, "processed", 10 + i % 4, 100, 0.1, 0.5, 1.0, None)
            for i in range(96)]
    svg = svg_of(charts.timeline(bins, NOW))
    counted = [t for t in svg.iter("text") if "count" in (t.get("class") or "")]
    assert 1 <= len(counted) <= charts.COUNTED
    assert {t.text for t in counted} == {"13"}
