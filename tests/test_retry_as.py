"""`retry NAME --as NEW_NAME`, and the name a misnamed file most likely meant (issue 24).

The likely name is `routing.likely_name`'s, for the built-in feed and declared ones (their
own date formats); `retry`'s refusal, `status --json`, the page and the `file_failed`
line and sidecar offer it; `--as` sends a failed file back under a name the daemon loads,
recorded as any retry (the `retries` row's file_name is the new name), on both backends.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.config.file_names import Feeds, name_pattern
from filedrop_etl.daemon import routing
from filedrop_etl.daemon.app import cli
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.ops import folders, page
from tests import backends
from tests.conftest import day_table, on_both_backends, table_rows, write_parquet
from tests.feed_orders import ORDERS
from tests.test_commands import restored_logging, where
from tests.test_page import WELL, parsed

__all__ = ["restored_logging"]  # the autouse fixture, imported to apply here too
DAY = "2026-01-01"
RIGHT = f"transactions_{DAY}.parquet"
DAY_FIRST = replace(ORDERS, date_format="%d-%m-%Y",
                    file_name_pattern=name_pattern("orders_{date}.parquet", "%d-%m-%Y"))
COMPACT = replace(ORDERS, name="sales", date_format="%Y%m%d",
                  file_name_template="Sales-{date}.csv",
                  file_name_pattern=name_pattern("Sales-{date}.csv", "%Y%m%d"))


@pytest.mark.parametrize(("name", "meant"), [
    # The three, each of which failed and paged someone.
    ("Transactions_2026-01-01.parquet", RIGHT),
    ("transactions_2026-1-1.parquet", RIGHT),
    ("transactions_2026-01-01.PARQUET", RIGHT),
    ("transaction_2026-01-01.parquet", RIGHT),  # a letter off
    ("transactions-20260101.parquet", RIGHT),
    ("transactions_2026-1-1~2.parquet", f"transactions_{DAY}~2.parquet"),  # its ~N kept
    # Declared feeds: the date rewritten in the feed's own format.
    ("Orders_1-3-2026.parquet", "orders_01-03-2026.parquet"),
    ("orders_2026-03-01.parquet", "orders_01-03-2026.parquet"),  # ISO for a day-first feed
    ("sales-2026-3-1.CSV", "Sales-20260301.csv"),
    # Nothing likely: a name that loads, another feed's, no date, no calendar date.
    (RIGHT, None), ("refunds_2026-01-01.parquet", None), ("2026-01-01.parquet", None),
    ("notes.txt", None), ("transactions_2026-02-30.parquet", None),
])
def test_the_likely_name_of_a_misnamed_file(name: str, meant: str | None) -> None:
    assert routing.likely_name(name, Feeds((TRANSACTIONS, DAY_FIRST, COMPACT))) == meant


def retries_rows(settings: Settings) -> list[dict[str, object]]:
    if backends.on_postgresql(settings):
        return backends._pg_rows(
            settings, f'SELECT * FROM {backends.books_of(settings.db).retries} ORDER BY "id"')
    return table_rows(settings.db_file, "retries")


def as_json(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str
            ) -> tuple[int, Any]:
    code = cli.main([*argv, *where(settings), "--json"])
    return code, json.loads(capsys.readouterr().out)


@on_both_backends
def test_a_misnamed_file_is_retried_as_the_name_it_most_likely_meant(
        settings: Settings, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 24, item 9: `Transactions_2026-01-01.parquet` went to failed/, and `retry`
    refused it without a word of the obvious name nor a way to retry it under one."""
    wrong = "Transactions_2026-01-01.parquet"
    with capture_logs() as logs:
        assert pipeline.process(write_parquet(settings.work, day_table(DAY), wrong)).status \
            == "failed"
    [failed] = [e for e in logs if e["event"] == "file_failed"]
    assert failed["suggested_name"] == RIGHT
    sidecar = json.loads((settings.failed / f"{wrong}.error.json").read_text())
    assert sidecar["suggested_name"] == RIGHT
    # As it runs from any folder: the daemon's own options (issue 24, item 4).
    assert sidecar["hint"].endswith(f" {wrong} --as {RIGHT}`")
    assert "; or, once it is in failed/, `filedrop-etl retry --db " in sidecar["hint"]
    capsys.readouterr()

    code, [refused] = as_json(settings, capsys, "retry", wrong)
    assert (code, refused["outcome"], refused["suggested_name"]) == (1, "refused", RIGHT)
    assert refused["hint"].startswith("`filedrop-etl retry --db ")
    assert refused["hint"].endswith(f" {wrong} --as {RIGHT}` (the name it most likely meant)")
    code, status = as_json(settings, capsys, "status")
    assert code == 1
    [listed] = status["failed"]["files"]
    assert (listed["name"], listed["suggested_name"]) == (wrong, RIGHT)
    shown = "".join(parsed(page.render(WELL, folders.failed_files(settings.failed), [], {},
                                       settings.feeds)).text)
    assert f"filedrop-etl retry {wrong} --as {RIGHT}" in shown

    # A name no feed takes, a taken one, and --as for more than one file: refused.
    code, [bad] = as_json(settings, capsys, "retry", wrong, "--as",
                          "transactions_2026-1-1.parquet")
    assert (code, bad["outcome"]) == (1, "refused")
    assert bad["reason"].startswith("--as transactions_2026-1-1.parquet: file name ")
    assert "transactions_YYYY-MM-DD.parquet" in bad["hint"]
    (settings.inbox / RIGHT).write_bytes(b"waiting")
    code, [taken] = as_json(settings, capsys, "retry", wrong, "--as", RIGHT)
    assert (code, taken["reason"]) == (1, f"the inbox already holds a file named {RIGHT}")
    assert f" {wrong} --as transactions_{DAY}~1.parquet`" in taken["hint"]
    (settings.inbox / RIGHT).unlink()
    assert cli.main(["retry", "--all", "--as", RIGHT, *where(settings)]) == 2
    assert retries_rows(settings) == [] and (settings.failed / wrong).exists()

    code, [sent] = as_json(settings, capsys, "retry", wrong, "--as", RIGHT)
    assert (code, sent["outcome"], sent["file_name"]) == (0, "retried", RIGHT)
    assert (settings.inbox / RIGHT).exists() and list(settings.failed.iterdir()) == []
    [row] = retries_rows(settings)
    assert (row["file_name"], row["failed_as"]) == (RIGHT, wrong)
    assert json.loads(str(row["sidecar"]))["file"] == wrong
    assert isinstance(row["requested_at"], str | datetime)
    if isinstance(row["requested_at"], datetime):
        assert row["requested_at"].tzinfo is not None
        assert row["requested_at"] <= datetime.now(UTC)
