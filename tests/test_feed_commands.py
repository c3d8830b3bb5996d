"""The operator's commands and the status page with two feeds declared: transactions
and orders (a composite key leading with its date, a decimal, a nullable column).

`feeds` runs as the console script (it needs no database, and no [feeds] to list the
built-in feed); with two feeds, every command runs through `daemon.ops.commands.run` with
settings holding both, as `cli.main` hands them over when the config declares them, on
each backend. Both feeds' days are loaded by the pipeline, and the failed orders file is
failed by it (a check broken), so its ledger row and its sidecar are the real ones. One
case runs the console scripts end to end on a config file declaring both feeds.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import structlog

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS, Check, Column, Contract, Totals
from filedrop_etl.config.file_names import Feeds, name_pattern
from filedrop_etl.daemon import clock, warehouse
from filedrop_etl.daemon.app import cli
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.daemon.ops import commands, figures, page
from filedrop_etl.daemon.ops.folders import failed_files
from filedrop_etl.daemon.warehouse import registry
from filedrop_etl.daemon.warehouse.api import FOLDER_NAMES, Folders, LoadFilter
from tests import backends
from tests.backends import ledger_in
from tests.conftest import ROOT, day_table, on_both_backends, write_parquet
from tests.test_commands import SCRIPT, restored_logging, where
from tools.harness import process

__all__ = ["restored_logging"]  # the autouse fixture, imported to apply here too

ORDERS = Contract(
    name="orders",
    columns=(Column("order_date", "date"), Column("order_id", "integer"),
             Column("sku", "string", nullable=True), Column("qty", "integer"),
             Column("price", "decimal", precision=12, scale=2)),
    key=("order_date", "order_id"),
    date_column="order_date",
    checks=(Check("equals_file_date", "order_date"), Check("min", "qty", 0)),
    fact_table="fact_orders",
    staging_table="staging_orders",
    file_name_pattern=name_pattern("orders_{date}.parquet"),
    file_name_template="orders_{date}.parquet",
    write_mode="replace",
    totals=Totals(sums=(("revenue", "price"),), distinct=(("skus", "sku"),), group_by="sku"),
)
DAYS = ("2026-03-01", "2026-03-02")
ORDERS_ROWS = [("2026-03-01", 1, "a", 2, "10.50"), ("2026-03-01", 2, "b", 1, "0.25"),
               ("2026-03-02", 1, "a", 5, "20.00")]
STAMP = "2026-03-02T12:00:00.000000Z"
BAD_ORDERS = "orders_2026-03-03.parquet"
BAD_ROWS = [("2026-03-03", 1, "a", 1, "1.00"), ("2026-03-03", 2, "b", -1, "2.00"),
            ("2026-03-03", 3, None, 4, "3.00")]  # order 2's qty breaks min:qty


def orders_table(rows: Sequence[tuple[str, int, str | None, int, str]]) -> pa.Table:
    """Orders rows as a producer writes them: a Parquet DATE, a 64-bit id, a decimal."""
    days, ids, skus, qtys, prices = zip(*rows, strict=True)
    return pa.table({
        "order_date": pa.array([date.fromisoformat(d) for d in days], pa.date32()),
        "order_id": pa.array(ids, pa.int64()),
        "sku": pa.array(skus, pa.string()),
        "qty": pa.array(qtys, pa.int64()),
        "price": pa.array([Decimal(p) for p in prices], pa.decimal128(12, 2)),
    })


def process_all(settings: Settings, claimed: Sequence[Path]) -> list[str]:
    """Each claimed file through the pipeline, on the warehouse opened as the daemon opens
    it on `settings` (every feed's tables made); each outcome's status."""
    inbox, work, processed, failed = (str(getattr(settings, n)) for n in FOLDER_NAMES)
    opened = warehouse.open_warehouse(settings, Folders(inbox, work, processed, failed))
    try:
        pipeline = Pipeline(settings, opened)
        return [pipeline.process(path).status for path in claimed]
    finally:
        opened.close()


@pytest.fixture
def two_feeds(settings: Settings) -> Settings:
    """Settings of both feeds, over: two transactions days and two orders days loaded by
    the pipeline, then an orders file failed by it (a negative qty: `min:qty`), waiting in
    failed/ with its sidecar."""
    both = dataclasses.replace(settings, feeds=Feeds((TRANSACTIONS, ORDERS)))
    for directory in (both.inbox, both.work, both.processed, both.failed):
        directory.mkdir(parents=True, exist_ok=True)
    days = [write_parquet(both.work, day_table(day), run_date=day) for day in DAYS]
    orders = [write_parquet(both.work, orders_table([r for r in ORDERS_ROWS if r[0] == day]),
                            ORDERS.file_name_for(day)) for day in DAYS]
    bad = write_parquet(both.work, orders_table(BAD_ROWS), BAD_ORDERS)
    assert process_all(both, [*days, *orders, bad]) == [*["processed"] * 4, "failed"]
    sidecar = json.loads((both.failed / f"{BAD_ORDERS}.error.json").read_text())
    assert (sidecar["stage"], [c["check"] for c in sidecar["checks"]]) == ("checks", ["min:qty"])
    return both


def shown(stamp: str) -> str:
    """A ledger time as the commands and the page show it."""
    return f"{stamp[:10]} {stamp[11:19]}Z"


def finished(settings: Settings, name: str) -> str:
    """When the last load of `name` finished, as the commands show it."""
    return shown([r for r in ledger_in(settings) if r["file_name"] == name][-1]["finished_at"])


def run(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """A command as `cli.main` runs it, on `settings` as given (both feeds)."""
    args = cli.build_parser().parse_args([*argv, *where(settings)])
    code = commands.run(args.command, settings, args)
    return code, capsys.readouterr().out


def as_json(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out = run(settings, capsys, *argv, "--json")
    assert code in (0, 1), out
    return json.loads(out)


@pytest.mark.slow  # a process
def test_feeds_lists_the_builtin_feed_without_a_database(settings: Settings) -> None:
    done = subprocess.run([str(SCRIPT), "feeds", "--json", *where(settings)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    [feed] = json.loads(done.stdout)
    assert (feed["name"], feed["pattern"], feed["table"], feed["key"]) == (
        "transactions", "transactions_{date}.parquet", "fact_transactions", ["txn_id"])
    assert feed["columns"][2] == {"name": "amount", "kind": "float", "nullable": False,
                                  "precision": None, "scale": None, "default": None}
    assert (feed["write_mode"], feed["write_mode_from"], feed["last_load"]) == (
        "merge", "daemon", None)
    assert not settings.db_file.exists()
    text = subprocess.run([str(SCRIPT), "feeds", *where(settings)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert text.returncode == 0 and text.stdout.startswith("feed transactions (built in)\n")
    assert "last load    none" in text.stdout


@on_both_backends
def test_feeds_lists_each_declared_feed_with_its_columns_and_last_load(
        two_feeds: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    transactions, orders = as_json(two_feeds, capsys, "feeds")
    assert transactions["last_load"]["file_name"] == f"transactions_{DAYS[1]}.parquet"
    assert transactions["last_load"]["feed"] == "transactions"
    assert (orders["pattern"], orders["example"], orders["table"], orders["key"]) == (
        "orders_{date}.parquet", "orders_YYYY-MM-DD.parquet", "fact_orders",
        ["order_date", "order_id"])
    assert (orders["write_mode"], orders["write_mode_from"]) == ("replace", "feed")
    assert orders["columns"][2:] == [
        {"name": "sku", "kind": "string", "nullable": True, "precision": None, "scale": None,
         "default": None},
        {"name": "qty", "kind": "integer", "nullable": False, "precision": None,
         "scale": None, "default": None},
        {"name": "price", "kind": "decimal", "nullable": False, "precision": 12, "scale": 2,
         "default": None}]
    assert orders["checks"] == ["equals_file_date:order_date", "min:qty"]
    assert orders["rules"] == ["order_date must be the date in the file name",
                               "qty must be >= 0"]
    assert (orders["last_load"]["file_name"], orders["last_load"]["status"]) == (
        BAD_ORDERS, "failed")
    code, out = run(two_feeds, capsys, "feeds")
    assert code == 0
    section = out.split("\n\n")[2]  # transactions' facts, its columns, then orders'
    assert section.startswith("feed orders\npattern      orders_{date}.parquet (as "
                              "orders_YYYY-MM-DD.parquet)\ntable        fact_orders\n"
                              "key          order_date, order_id\n")
    assert "write mode   replace (its own)" in section
    # Each rule in words, its id beside it (issue 24: ids alone were read by no one).
    assert ("\nchecks       order_date must be the date in the file name "
            "(equals_file_date:order_date); qty must be >= 0 (min:qty)\n") in section
    assert (f"last load    {finished(two_feeds, BAD_ORDERS)}  {BAD_ORDERS} (failed, 3 rows)"
            in section)
    assert "\nprice       decimal  no               12      2  -\n" in out


@on_both_backends
@pytest.mark.parametrize("argv", [["status"], ["history"], ["show", BAD_ORDERS],
                                  ["retry", "--all"], ["report"]])
def test_an_unknown_feed_is_a_usage_error_naming_the_declared_ones(
        two_feeds: Settings, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with structlog.testing.capture_logs() as logs:
        code, out = run(two_feeds, capsys, *argv, "--feed", "refunds")
    assert (code, out) == (2, "")
    [line] = logs
    assert line["event"] == "usage_error" and line["log_level"] == "error"
    assert line["reason"] == ("no feed is named 'refunds': the declared feeds are "
                              "transactions, orders")
    assert line["hint"].startswith("give --feed one of those, or see `filedrop-etl feeds --")
    assert line["hint"].endswith(f"`; see filedrop-etl {argv[0]} --help")


@on_both_backends
def test_history_says_each_loads_feed_and_keeps_to_one(
        two_feeds: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    loads = as_json(two_feeds, capsys, "history")
    assert [(x["feed"], x["file_name"]) for x in loads[:3]] == [
        ("orders", BAD_ORDERS), ("orders", "orders_2026-03-02.parquet"),
        ("orders", "orders_2026-03-01.parquet")]
    assert {x["feed"] for x in loads[3:]} == {"transactions"}
    only = as_json(two_feeds, capsys, "history", "--feed", "transactions")
    assert [x["file_name"] for x in only] == [f"transactions_{d}.parquet"
                                              for d in reversed(DAYS)]
    _, out = run(two_feeds, capsys, "history", "--status", "failed")
    header, row = out.splitlines()
    assert header.split()[:4] == ["ID", "FINISHED", "FEED", "FILE"]
    assert row.split()[3:6] == ["orders", BAD_ORDERS, "failed"]
    # One feed asked for: the listing is that feed's, without the column.
    _, out = run(two_feeds, capsys, "history", "--feed", "orders")
    assert out.splitlines()[0].split()[:3] == ["ID", "FINISHED", "FILE"]


@on_both_backends
def test_status_counts_each_feed_and_keeps_to_one(
        two_feeds: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(two_feeds, capsys, "status")
    assert code == 1  # the orders file waits in failed/
    assert "\nin all             4 files processed, 1 failed (5 loads)\n" in out
    assert ("\nfeed transactions  today 2 files processed, 0 failed; in all 2 files "
            "processed, 0 failed; last success ") in out
    # Loaded today, as the transactions days were.
    day2 = "orders_2026-03-02.parquet"
    assert ("\nfeed orders        today 2 files processed, 1 failed; in all 2 files processed, "
            f"1 failed; last success {finished(two_feeds, day2)}  {day2} (1 rows)\n") in out
    [header, row] = out.split("\n\n")[1].splitlines()[:2]
    assert header.split()[:2] == ["FEED", "FILE"] and row.split()[:2] == ["orders", BAD_ORDERS]
    doc = as_json(two_feeds, capsys, "status")
    assert doc["feed"] is None and doc["total"] == {"processed": 4, "failed": 1, "loads": 5}
    assert doc["feeds"]["orders"]["total"] == {"processed": 2, "failed": 1, "loads": 3}
    assert doc["feeds"]["transactions"]["last_success"]["feed"] == "transactions"
    assert [(f["name"], f["feed"]) for f in doc["failed"]["files"]] == [(BAD_ORDERS, "orders")]
    # One feed: its loads only, and its failed files only (none: all well).
    doc = as_json(two_feeds, capsys, "status", "--feed", "transactions")
    assert (doc["feed"], doc["total"], doc["failed"]["files"], doc["exit_code"]) == (
        "transactions", {"processed": 2, "failed": 0, "loads": 2}, [], 0)
    assert "feeds" not in doc


@on_both_backends
def test_report_totals_each_feeds_figures(
        two_feeds: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    doc = as_json(two_feeds, capsys, "report")
    assert list(doc["feeds"]) == ["transactions", "orders"]
    assert doc["feeds"]["transactions"]["total"]["rows"] == 50
    assert set(doc["feeds"]["transactions"]) == {"customers", "days", "total"}
    orders = doc["feeds"]["orders"]
    # Decimals as exact text at their scale; the groups largest first.
    assert orders == {
        "skus": [{"sku": "a", "rows": 2, "revenue": "30.50"},
                 {"sku": "b", "rows": 1, "revenue": "0.25"}],
        "days": [{"run_date": "2026-03-01", "rows": 2, "skus": 2, "revenue": "10.75"},
                 {"run_date": "2026-03-02", "rows": 1, "skus": 1, "revenue": "20.00"}],
        "total": {"rows": 3, "skus": 2, "revenue": "30.75"}}
    # One feed asked for: that feed's report in the one-feed form.
    assert as_json(two_feeds, capsys, "report", "--feed", "orders", "--since",
                   "2026-03-02")["days"] == orders["days"][1:]
    code, out = run(two_feeds, capsys, "report")
    assert code == 0 and out.startswith("feed transactions\n\ncustomer totals\nCUSTOMER  ")
    orders_text = out.split("feed orders\n\n")[1]
    assert orders_text.splitlines() == [
        "sku totals", "SKU  ROWS  REVENUE", "a       2    30.50", "b       1     0.25", "",
        "per day", "RUN DATE    ROWS  SKUS  REVENUE", "2026-03-01     2     2    10.75",
        "2026-03-02     1     1    20.00", "all            3     2    30.75"]


@on_both_backends
def test_show_says_the_files_feed(two_feeds: Settings,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(two_feeds, capsys, "show", BAD_ORDERS)
    assert code == 0
    assert out.startswith(f"{BAD_ORDERS} (feed orders): 1 attempt(s), 0 retry(ies), "
                          "waiting in failed/")
    # The command as it runs from any folder: with the options that find this daemon.
    [retry] = [x for x in out.splitlines() if x.startswith("retry  ")]
    assert retry.startswith("retry      `filedrop-etl retry --db ")
    assert retry.endswith(f" {BAD_ORDERS}` sends it back as {BAD_ORDERS}")
    doc = as_json(two_feeds, capsys, "show", BAD_ORDERS)
    assert doc["feed"] == "orders" and [a["feed"] for a in doc["attempts"]] == ["orders"]
    # Of another feed: nothing known of it there.
    code, out = run(two_feeds, capsys, "show", BAD_ORDERS, "--feed", "transactions")
    assert (code, out) == (1, "")


@on_both_backends
def test_show_and_history_say_a_file_of_no_feed_is_of_none(
        two_feeds: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Its ledger row's feed is "" (as its log lines say); `show` says it matches no feed
    (null in the JSON, as `status` has it), and `history` shows "-" for it."""
    stray = "refunds_2026-03-01.parquet"
    path = write_parquet(two_feeds.work, day_table("2026-03-01"), stray)
    assert process_all(two_feeds, [path]) == ["failed"]
    capsys.readouterr()  # the pipeline's log lines
    assert [r["feed"] for r in ledger_in(two_feeds) if r["file_name"] == stray] == [""]
    code, out = run(two_feeds, capsys, "show", stray)
    assert code == 0
    assert out.startswith(f"{stray} (matches no feed): 1 attempt(s), 0 retry(ies), "
                          "waiting in failed/")
    doc = as_json(two_feeds, capsys, "show", stray)
    assert doc["feed"] is None and [a["feed"] for a in doc["attempts"]] == [""]
    assert [f["feed"] for f in as_json(two_feeds, capsys, "status")["failed"]["files"]] == [
        "orders", None]
    _, out = run(two_feeds, capsys, "history", "--status", "failed")
    rows = {r.split()[4]: r.split()[3] for r in out.splitlines()[1:]}  # id, date, time
    assert rows == {stray: "-", BAD_ORDERS: "orders"}
    with registry.backend_of(two_feeds).reading(two_feeds) as history:
        loads = history.recent_loads(LoadFilter(limit=1))
    health = page.Health("0.1.0", "merge", "auto", True, (), 0, STAMP)
    document = page.render(health, [], loads, {}, two_feeds.feeds, now=datetime.now(UTC),
                           last_day=figures.NOTHING)
    assert f'<td>-</td><td class="f">{stray}</td>' in document  # as history shows it


@on_both_backends
def test_retry_keeps_to_a_feed_and_names_every_pattern_for_a_name_of_none(
        two_feeds: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    stray = "refunds_2026-03-01.parquet"
    write_parquet(two_feeds.failed, day_table("2026-03-01"), stray)
    (two_feeds.failed / f"{stray}.error.json").write_text(json.dumps(
        {"file": stray, "stage": "name", "message": "no feed",
         "attempted_at": clock.utc_now()}))  # after the orders file's failure
    results = as_json(two_feeds, capsys, "retry", "--all", "--dry-run", "--feed",
                      "transactions")
    assert results == []  # neither is a transactions file
    [result] = as_json(two_feeds, capsys, "retry", BAD_ORDERS, "--dry-run", "--feed",
                       "transactions")
    assert (result["outcome"], result["reason"]) == (
        "refused", f"{BAD_ORDERS} is not a file of the feed transactions but of orders")
    orders, refused = as_json(two_feeds, capsys, "retry", "--all", "--dry-run")
    assert (orders["failed_as"], orders["outcome"]) == (BAD_ORDERS, "would_retry")
    assert (refused["failed_as"], refused["outcome"]) == (stray, "refused")
    assert refused["reason"] == (
        f"its name can never load: file name '{stray}' matches no feed's pattern "
        "(transactions_YYYY-MM-DD.parquet, orders_YYYY-MM-DD.parquet)")
    assert refused["hint"].startswith("`filedrop-etl retry --db ")
    assert refused["hint"].endswith(f" {stray} --as NEW_NAME`, NEW_NAME one those patterns "
                                    "accept, with the run date of its rows")
    [sent] = as_json(two_feeds, capsys, "retry", "--all", "--feed", "orders")
    assert (sent["outcome"], sent["file_name"]) == ("retried", BAD_ORDERS)
    assert (two_feeds.inbox / BAD_ORDERS).exists() and (two_feeds.failed / stray).exists()


@on_both_backends
def test_the_status_page_shows_each_feed(two_feeds: Settings) -> None:
    now = datetime.now(UTC)
    with registry.backend_of(two_feeds).reading(two_feeds) as history:
        days = {c.name: history.rows_per_day(c, page.CHART_DAYS, "2026-03-03")
                for c in two_feeds.feeds}
        loads = history.recent_loads(LoadFilter(limit=20))
        last_loads = {name: history.recent_loads(LoadFilter(
            limit=1, feed=name))[0] for name in two_feeds.feeds.names}
    assert [(d.run_date, d.rows) for d in days["orders"]] == [("2026-03-01", 2),
                                                              ("2026-03-02", 1)]
    health = page.Health("0.1.0", "merge", "auto", True, (), 0, STAMP)
    document = page.render(health, failed_files(two_feeds.failed), loads, days,
                           two_feeds.feeds, now=now, last_day=figures.NOTHING,
                           last_loads=last_loads)
    assert '<h2>Rows per day: transactions</h2>' in document
    assert '<section class="days" id="days-orders" data-feed="orders"><h2>Rows per day: ' \
        'orders</h2>' in document
    assert 'data-day="2026-03-01" data-rows="2"' in document
    assert ("<tr><td>orders</td><td class=\"f\">orders_YYYY-MM-DD.parquet</td>"
            f"<td>fact_orders</td><td class=\"t\">{finished(two_feeds, BAD_ORDERS)}</td>"
            "<td class=\"f\">"
            f"{BAD_ORDERS}</td><td class=\"failed\">failed</td></tr>") in document
    assert f'<td class="n">5</td><td>orders</td><td class="f">{BAD_ORDERS}</td>' in document
    assert f"<code>filedrop-etl retry {BAD_ORDERS}</code>" in document
    # One feed: one chart under its old heading, no table of feeds, no feed column.
    one = page.render(health, [], loads, {"transactions": days["transactions"]},
                      Feeds((TRANSACTIONS,)), now=now)
    assert '<section id="days"><h2>Rows per day</h2>' in one and 'id="feeds"' not in one
    assert "<th>feed</th>" not in one


FEEDS_CONFIG = """
inbox = "{inbox}"
processed = "{processed}"
failed = "{failed}"
db = "{db}"
settle_seconds = 0.2

[feeds.transactions]

[feeds.orders]
pattern = "orders_{{date}}.parquet"
key = ["order_date", "order_id"]
date_column = "order_date"
write_mode = "replace"

[feeds.orders.columns]
order_date = "date"
order_id = "integer"
sku = {{ kind = "string", nullable = true }}
qty = "integer"
price = {{ kind = "decimal", precision = 12, scale = 2 }}

[[feeds.orders.checks]]
rule = "min"
column = "qty"
value = 0

[[feeds.orders.checks]]
rule = "equals_file_date"
column = "order_date"
"""
GENERATE = Path(sys.executable).with_name("filedrop-etl-generate")


def daemon(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`filedrop-etl` on the config file alone (no `ETL_` setting of the shell), run
    beside it."""
    return subprocess.run(process.daemon_argv(*argv, "--config", str(config)),
                          cwd=config.parent,
                          capture_output=True, text=True, timeout=120,
                          env=process.clean_environ(), check=False)


@pytest.mark.slow  # processes
@on_both_backends
def test_the_console_scripts_on_a_config_declaring_two_feeds(
        settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(FEEDS_CONFIG.format(
        inbox=settings.inbox, processed=settings.processed, failed=settings.failed,
        db=backends.db_arg(settings)), encoding="utf-8")
    generated = subprocess.run(
        [str(GENERATE), "--config", str(config), "--feed", "orders", "--date", DAYS[0],
         "--rows", "20"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=process.clean_environ(), check=False)
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.splitlines() == [str(settings.inbox / ORDERS.file_name_for(DAYS[0]))]
    write_parquet(settings.inbox, day_table(DAYS[0]), run_date=DAYS[0])
    ran = daemon(config, "run", "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert sorted(p.name for p in settings.processed.iterdir()) == [
        ORDERS.file_name_for(DAYS[0]), TRANSACTIONS.file_name_for(DAYS[0])]

    listed = daemon(config, "feeds", "--json")
    assert listed.returncode == 0, listed.stderr
    transactions, orders = json.loads(listed.stdout)
    assert (transactions["name"], orders["name"]) == ("transactions", "orders")
    assert (transactions["last_load"]["file_name"], transactions["last_load"]["status"],
            transactions["last_load"]["rows"]) == (
        TRANSACTIONS.file_name_for(DAYS[0]), "processed", 25)
    assert (orders["last_load"]["file_name"], orders["last_load"]["status"],
            orders["last_load"]["rows"], orders["last_load"]["feed"]) == (
        ORDERS.file_name_for(DAYS[0]), "processed", 20, "orders")
    assert (orders["table"], orders["key"], orders["write_mode"]) == (
        "fact_orders", ["order_date", "order_id"], "replace")
    status = daemon(config, "status", "--feed", "orders")
    assert status.returncode == 0, status.stdout + status.stderr
    history = daemon(config, "history", "--feed", "orders", "--json")
    assert history.returncode == 0, history.stderr
    assert [(x["feed"], x["file_name"], x["status"]) for x in json.loads(history.stdout)] == [
        ("orders", ORDERS.file_name_for(DAYS[0]), "processed")]

    # An orders file breaking a check: that feed fails, the other stays well.
    bad = ORDERS.file_name_for(DAYS[1])
    write_parquet(settings.inbox, orders_table([("2026-03-02", 1, "a", -3, "1.00")]), bad)
    ran = daemon(config, "run", "--once")
    assert ran.returncode == 1, ran.stdout + ran.stderr  # a file failed
    assert (settings.failed / bad).exists()
    assert (settings.failed / f"{bad}.error.json").exists()
    assert daemon(config, "status", "--feed", "orders").returncode == 1
    assert daemon(config, "status", "--feed", "transactions").returncode == 0
    history = daemon(config, "history", "--feed", "orders", "--json")
    assert [(x["feed"], x["file_name"], x["status"]) for x in json.loads(history.stdout)] == [
        ("orders", bad, "failed"), ("orders", ORDERS.file_name_for(DAYS[0]), "processed")]
    retried = daemon(config, "retry", bad)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert (settings.inbox / bad).exists() and not (settings.failed / bad).exists()
    assert not (settings.failed / f"{bad}.error.json").exists()
