"""The status page at `/`, as a person sees it in a real headless browser.

The real daemon serves it (`--http 127.0.0.1:0`) after real loads; Debian's chromium,
driven through Selenium, reads what is on the screen: the state line, the failed file
with its reason and the command that retries it, the latest loads, and the bars of the
rows-per-day chart, whose lengths must follow the numbers written beside them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from filedrop_etl.config import contract
from tests.conftest import DaemonProcess, day_table, drop, write_parquet
from tests.http_client import url_of

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

Start = Callable[..., DaemonProcess]
# 2026-03-02 is never loaded: a gap in the rows-per-day chart.
GOOD = {"2026-03-01": 25, "2026-03-03": 60}
SCREEN = (1400, 1000)
BAD = contract.file_name_for("2026-03-04")


def test_a_person_sees_the_state_the_failures_the_loads_and_the_chart(
        tmp_path: Path, start_daemon: Start, browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    daemon = start_daemon("--http", "127.0.0.1:0")
    for day, rows in GOOD.items():
        drop(write_parquet(tmp_path / "out", day_table(day, rows), contract.file_name_for(day)),
             daemon.settings.inbox)
        daemon.wait_for("file_processed", file=contract.file_name_for(day))
    (tmp_path / "out" / BAD).write_bytes(b"txn_id,amount\n1,2\n")
    drop(tmp_path / "out" / BAD, daemon.settings.inbox)
    daemon.wait_for("file_failed", file=BAD)

    browser.set_window_size(*SCREEN)
    browser.get(url_of(daemon) + "/")
    assert browser.title == "filedrop-etl status"
    assert browser.find_element(By.ID, "state").text == "Running; 1 failed file waiting"
    fold = browser.execute_script("return window.innerHeight")

    # At the top: today's counts and the last day's pace.
    figures = {d.find_element(By.TAG_NAME, "dt").text: d.find_element(By.TAG_NAME, "dd").text
               for d in browser.find_elements(By.CSS_SELECTOR, "dl.figures > div")}
    assert (figures["processed today"], figures["failed today"],
            figures["rows loaded today"]) == ("2", "1", "85")
    assert figures["loads per hour"] == "0.1" and figures["worst load"].endswith(("ms", "s"))

    # The loads over time: a mark per quarter hour and status (the two processed ones
    # may fall in one or in two), the failed one red.
    marks = browser.find_elements(By.CSS_SELECTOR, "#timeline svg circle.processed")
    assert sum(int(m.get_attribute("data-loads") or 0) for m in marks) == 2
    [red] = browser.find_elements(By.CSS_SELECTOR, "#timeline svg circle.failed")
    assert red.get_attribute("data-loads") == "1"
    assert red.value_of_css_property("fill") == "rgb(221, 17, 17)"
    # The rows per day, above the fold: a column per day, the missing day a gap.
    columns = {c.get_attribute("data-day"): c.find_element(By.TAG_NAME, "rect").size["height"]
               for c in browser.find_elements(By.CSS_SELECTOR, "#days svg g.day")}
    assert set(columns) == set(GOOD)
    assert browser.find_elements(By.CSS_SELECTOR, '#days svg g.gap[data-day="2026-03-02"]')
    first, last = columns["2026-03-01"], columns["2026-03-03"]
    assert abs(first / last - 25 / 60) < 0.03
    for chart in ("#timeline svg", "#days svg"):
        box = browser.find_element(By.CSS_SELECTOR, chart).rect
        assert box["y"] + box["height"] <= fold, f"{chart} is below the fold"

    [failed] = browser.find_elements(By.CSS_SELECTOR, "#failed tbody tr")
    name, stage, reason, _, retry = (c.text for c in failed.find_elements(By.TAG_NAME, "td"))
    assert (name, stage) == (BAD, "read")
    assert "not a readable Parquet file" in reason
    # As it runs from any folder: with the options that find this daemon.
    assert retry.startswith("filedrop-etl retry --db ") and retry.endswith(f" {BAD}")

    loads = [[c.text for c in row.find_elements(By.TAG_NAME, "td")]
             for row in browser.find_elements(By.CSS_SELECTOR, "#loads tbody tr")]
    # Newest first: id, file, status, then rows and the four counts.
    assert [row[1:4] for row in loads] == [
        [BAD, "failed", ""],
        [contract.file_name_for("2026-03-03"), "processed", "60"],
        [contract.file_name_for("2026-03-01"), "processed", "25"]]
    assert loads[1][4:8] == ["60", "0", "0", "0"]
    # Times as the commands print them: to the second, UTC, on one line.
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", row[8]) for row in loads)
    # The reason is said once, in the failed files; the load points at it.
    assert loads[0][9] == "see Failed files"
    # File names stay on one line: as high as a one-word cell beside them.
    name_cell, status_cell = browser.find_elements(By.CSS_SELECTOR, "#loads tbody tr td")[1:3]
    assert name_cell.size["height"] == status_cell.size["height"]

    # What the screen shows, as a picture: red where the failed load's mark is.
    shot = tmp_path / "status-page.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as picture:
        assert picture.size[0] == SCREEN[0]
        ratio = picture.size[0] / browser.execute_script("return window.innerWidth")
        center = red.rect
        x = (center["x"] + center["width"] / 2) * ratio
        y = (center["y"] + center["height"] / 2) * ratio
        pixel = picture.convert("RGB").getpixel((round(x), round(y)))
    assert isinstance(pixel, tuple)
    r, g, b = pixel[:3]
    assert r > 180 and g < 90 and b < 90, (r, g, b)
    # It refreshes itself, unless the reader has scrolled.
    [script] = browser.find_elements(By.TAG_NAME, "script")
    assert "scrollY" in (script.get_attribute("innerHTML") or "")
    assert daemon.stop() == 0


# Issue 24: a day of six-digit rows, failed files of long and wrong names.
BIG_DAY, BIG_ROWS = "2026-03-05", 100_001
LONG = "transactions_2026-03-06_resent_by_the_vendor_after_the_outage_v2.parquet"
WRONG = "Transactions_2026-03-07.parquet"
# Each label's box within its chart's, to half a pixel (sub-pixel text positioning).
_CUT_LABELS = """
var cut = [];
document.querySelectorAll('svg').forEach(function (svg) {
  var box = svg.getBoundingClientRect();
  svg.querySelectorAll('text').forEach(function (t) {
    var r = t.getBoundingClientRect();
    if (r.left < box.left - .5 || r.right > box.right + .5 ||
        r.top < box.top - .5 || r.bottom > box.bottom + .5) { cut.push(t.textContent); }
  });
});
return cut;"""


@pytest.mark.parametrize("width", [1400, 800])
def test_the_page_fits_the_window_and_every_label_its_chart(
        tmp_path: Path, start_daemon: Start, browser: WebDriver, width: int) -> None:
    """At 800 px the failed files' table scrolled sideways (at 1400 px too, given a long
    name); "300,000" lost its 3 at the chart's left edge; a name failure's "to retry" was
    a paragraph."""
    from selenium.webdriver.common.by import By

    daemon = start_daemon("--http", "127.0.0.1:0")
    out = tmp_path / "out"
    drop(write_parquet(out, day_table(BIG_DAY, BIG_ROWS), contract.file_name_for(BIG_DAY)),
         daemon.settings.inbox)
    for name in (LONG, WRONG):
        drop(write_parquet(out, day_table("2026-03-06", 5), name), daemon.settings.inbox)
    drop(write_parquet(out, day_table("2026-03-08", 5), contract.file_name_for("2026-03-09")),
         daemon.settings.inbox)  # its rows are of another day: it fails its checks
    daemon.wait_for("file_processed", file=contract.file_name_for(BIG_DAY))
    daemon.wait_for("file_failed", count=3)

    browser.set_window_size(width, 1000)
    browser.get(url_of(daemon) + "/")
    assert browser.execute_script("return window.innerWidth") == width
    page_width, window = browser.execute_script(
        "var d = document.documentElement; return [d.scrollWidth, d.clientWidth];")
    assert page_width <= window, f"the page scrolls sideways at {width} px"
    table = browser.find_element(By.CSS_SELECTOR, "#failed table")
    assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0]"
                                  ".clientWidth && arguments[0].getBoundingClientRect()"
                                  ".right <= window.innerWidth", table)
    # The rows axis reaches six digits, and no label of any chart is cut.
    assert "150,000" in browser.find_element(By.CSS_SELECTOR, "#days svg").text
    assert browser.execute_script(_CUT_LABELS) == []
    # A name failure's "to retry": a command, or a few words on a line with what to do
    # folded under them.
    rows = {r.find_element(By.CSS_SELECTOR, "td.f").text: r
            for r in browser.find_elements(By.CSS_SELECTOR, "#failed tbody tr")}
    assert set(rows) == {LONG, WRONG, contract.file_name_for("2026-03-09")}
    # What is on the screen (innerText: not the fold's closed content).
    shown = [" ".join(browser.execute_script("return arguments[0].innerText",
                                             rows[n].find_element(By.CSS_SELECTOR, "td.retry"))
                      .split()) for n in (LONG, WRONG, contract.file_name_for("2026-03-09"))]
    assert shown[0] == "its name can never load: retry it under a new name what to do"
    # The name it most likely meant is plain: the command that retries it so.
    assert shown[1].startswith("filedrop-etl retry --db ") and shown[1].endswith(
        f" {WRONG} --as {contract.file_name_for('2026-03-07')}")
    assert shown[2].startswith("filedrop-etl retry --db ") and shown[2].endswith(
        f" {contract.file_name_for('2026-03-09')}")
    assert daemon.stop() == 0


def test_the_page_tells_a_fresh_install_there_is_nothing_yet(start_daemon: Start,
                                                              browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    daemon = start_daemon("--http", "127.0.0.1:0")
    browser.get(url_of(daemon) + "/")
    assert browser.find_element(By.ID, "state").text == "Running"
    sections = {s.get_attribute("id"): s.text for s in
                browser.find_elements(By.TAG_NAME, "section")}
    assert {k: v for k, v in sections.items() if k != "figures"} == {
        "failed": "Failed files\nNone.", "loads": "Recent loads\nNo loads yet.",
        "timeline": "Loads, last 24 hours\nNo loads in the last 24 hours.",
        "days": "Rows per day\nNo rows loaded yet."}
    facts = browser.find_element(By.TAG_NAME, "dl").text.splitlines()
    assert facts[:2] == ["last success", "never"]
    assert daemon.stop() == 0
