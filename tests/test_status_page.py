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

from config import contract
from tests.conftest import DaemonProcess, day_table, drop, write_parquet
from tests.http_client import url_of

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

Start = Callable[..., DaemonProcess]
GOOD = {"2026-03-01": 25, "2026-03-02": 60}
BAD = contract.file_name_for("2026-03-03")


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

    browser.get(url_of(daemon) + "/")
    assert browser.title == "filedrop-etl status"
    assert browser.find_element(By.ID, "state").text == "Running; 1 failed file waiting"

    [failed] = browser.find_elements(By.CSS_SELECTOR, "#failed tbody tr")
    name, stage, reason, _, retry = (c.text for c in failed.find_elements(By.TAG_NAME, "td"))
    assert (name, stage) == (BAD, "read")
    assert "not a readable Parquet file" in reason
    assert retry == f"filedrop-etl retry {BAD}"

    loads = [[c.text for c in row.find_elements(By.TAG_NAME, "td")]
             for row in browser.find_elements(By.CSS_SELECTOR, "#loads tbody tr")]
    # Newest first: id, file, status, then rows and the four counts.
    assert [row[1:4] for row in loads] == [
        [BAD, "failed", ""],
        [contract.file_name_for("2026-03-02"), "processed", "60"],
        [contract.file_name_for("2026-03-01"), "processed", "25"]]
    assert loads[1][4:8] == ["60", "0", "0", "0"]
    # Times as the commands print them: to the second, UTC, on one line.
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", row[8]) for row in loads)

    bars = browser.find_elements(By.CSS_SELECTOR, "#days svg g.bar")
    labels = [[t.text for t in bar.find_elements(By.TAG_NAME, "text")] for bar in bars]
    assert labels == [["2026-03-01", "25"], ["2026-03-02", "60"]]
    widths = [bar.find_element(By.TAG_NAME, "rect").size["width"] for bar in bars]
    assert widths[1] > widths[0] > 0
    assert abs(widths[0] / widths[1] - 25 / 60) < 0.02
    assert daemon.stop() == 0


def test_the_page_tells_a_fresh_install_there_is_nothing_yet(start_daemon: Start,
                                                              browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    daemon = start_daemon("--http", "127.0.0.1:0")
    browser.get(url_of(daemon) + "/")
    assert browser.find_element(By.ID, "state").text == "Running"
    sections = {s.get_attribute("id"): s.text for s in
                browser.find_elements(By.TAG_NAME, "section")}
    assert sections == {"failed": "Failed files\nNone.",
                        "loads": "Recent loads\nNo loads yet.",
                        "days": "Rows per day\nNo rows loaded yet."}
    facts = browser.find_element(By.TAG_NAME, "dl").text.splitlines()
    assert facts[:2] == ["last success", "never"]
    assert daemon.stop() == 0
