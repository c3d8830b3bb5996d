"""Declared feeds in the config file: what a declaration becomes, and each bad one's message.

Every case writes a real TOML file under `tmp_path` and resolves it with `load_settings`,
as the daemon does at its start.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from filedrop_etl.config import ConfigError
from filedrop_etl.config.contract import TRANSACTIONS, Check, Column
from filedrop_etl.config.settings import Settings, load_settings
from tests.feed_orders import orders_toml
from tools.harness import process


def _settings(tmp_path: Path, text: str, **environ: str) -> Settings:
    path = tmp_path / "etl.toml"
    path.write_text(textwrap.dedent(text))
    return load_settings(config_file=path, environ={"ETL_INBOX": str(tmp_path / "inbox"),
                                                    **environ})


def _refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, text)
    return caught.value.message


def test_a_config_without_feeds_gets_the_built_in_transactions_feed(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 'write_mode = "merge"\n')
    assert settings.feeds.all == (TRANSACTIONS,)
    assert settings.feeds.unmatched == "fail"


def test_a_declared_feed_becomes_a_contract(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "[feeds.transactions]\n" + orders_toml())
    assert settings.feeds.names == ("transactions", "orders")
    assert settings.feeds.named("transactions") == TRANSACTIONS
    orders = settings.feeds.named("orders")
    assert orders is not None
    assert orders.fact_table == "fact_orders"
    assert orders.key == ("order_date", "order_id")
    assert orders.column("price") == Column("price", "decimal", precision=12, scale=2)
    assert orders.column("sku").nullable
    # not null for every column not declared nullable, unique over the key, then the rest
    assert Check("not_null", "sku") not in orders.checks
    assert Check("not_null", "qty") in orders.checks
    assert Check("unique", "order_date", over=("order_date", "order_id")) in orders.checks
    assert Check("min", "qty", 0) in orders.checks
    assert orders.date_leads_key and orders.dated_keys and not orders.keys_carry_their_date
    assert orders.totals.sums == (("price", "price"),)
    assert settings.feeds.for_file("orders_2026-01-02~3.parquet") is orders
    assert settings.feeds.for_file("transactions_2026-01-02.parquet") == TRANSACTIONS
    assert settings.feeds.for_file("refunds_2026-01-02.parquet") is None


def test_table_prefix_and_date_format(tmp_path: Path) -> None:
    settings = _settings(tmp_path, """
        table_prefix = "dw_"
        unmatched = "leave"
        [feeds.fx]
        pattern = "fx-{date}.parquet"
        date_format = "%Y%m%d"
        key = "currency"
        [feeds.fx.columns]
        currency = "string"
        rate = "float"
        """)
    fx = settings.feeds.named("fx")
    assert fx is not None and fx.fact_table == "dw_fx" and fx.date_column is None
    assert fx.run_date_of("fx-20260131.parquet") == "2026-01-31"
    assert fx.file_name_for("0999-01-02") == "fx-09990102.parquet"
    assert fx.file_name_example == "fx-YYYYMMDD.parquet"
    assert settings.feeds.unmatched == "leave"


def test_the_built_in_feed_takes_only_how_it_loads(tmp_path: Path) -> None:
    settings = _settings(tmp_path, '[feeds.transactions]\nwrite_mode = "replace"\n')
    assert settings.feeds.all[0].write_mode == "replace"
    message = _refusal(tmp_path, '[feeds.transactions]\ntable = "mine"\n')
    assert "feeds.transactions.table: can not be changed on the built-in" in message


BASE = """
[feeds.orders]
pattern = "orders_{date}.parquet"
key = "order_id"
[feeds.orders.columns]
order_id = "integer"
sku = "string"
amount = "float"
day = "date"
"""

# Each bad declaration, and what its message must say (where it is, and what to write).
BAD: list[tuple[str, str, list[str]]] = [
    ("key not a column", BASE.replace('key = "order_id"', 'key = "order"'),
     ["feeds.orders.key: 'order' is not a column of the feed; did you mean 'order_id'?"]),
    ("no key", BASE.replace('key = "order_id"\n', ""),
     ["feeds.orders.key: is missing; name the column"]),
    ("check on an unknown column", BASE + '[[feeds.orders.checks]]\nrule = "min"\n'
     'column = "qty"\nvalue = 0\n',
     ["feeds.orders.checks[0].column: 'qty' is not a column of the feed; name one of "
      "the feed's columns: order_id, sku, amount, day"]),
    ("check not fitting its kind", BASE + '[[feeds.orders.checks]]\nrule = "max_length"\n'
     'column = "amount"\nvalue = 3\n',
     ["feeds.orders.checks[0]: max_length does not fit amount, a float column; "
      "max_length fits columns of kind string"]),
    ("bound not of the column's kind", BASE + '[[feeds.orders.checks]]\nrule = "min"\n'
     'column = "day"\nvalue = "yesterday"\n',
     ["feeds.orders.checks[0].value: 'yesterday' is not a date value; write "
      '"2026-01-31" (ISO)']),
    ("unknown rule", BASE + '[[feeds.orders.checks]]\nrule = "positive"\ncolumn = "amount"\n',
     ["feeds.orders.checks[0]: has the rule 'positive'; write one of not_null, min"]),
    ("unique declared", BASE + '[[feeds.orders.checks]]\nrule = "unique"\ncolumn = "sku"\n',
     ["declares unique, and the key is always unique"]),
    ("pattern without {date}", BASE.replace("orders_{date}", "orders"),
     ["feeds.orders.pattern: 'orders.parquet' holds {date} nowhere; write the file name "
      "with {date} once"]),
    ("pattern of ignored names", BASE.replace("orders_{date}.parquet", ".orders_{date}"),
     ["names files the daemon ignores"]),
    ("date format without a day", BASE.replace('key = "order_id"',
                                               'key = "order_id"\ndate_format = "%Y%m"'),
     ["feeds.orders.date_format: '%Y%m' does not name a whole date"]),
    ("two feeds matching one name", BASE + BASE.replace("[feeds.orders", "[feeds.others")
     .replace('key = "order_id"', 'key = "order_id"\ntable = "fact_others"'),
     ["feeds.others.pattern: 'orders_{date}.parquet' and feed orders's "
      "'orders_{date}.parquet' both match 'orders_2026-01-02.parquet'"]),
    ("two feeds writing one table", BASE + BASE.replace("[feeds.orders", "[feeds.others")
     .replace("orders_{date}", "others_{date}").replace('key = "order_id"',
                                                         'key = "order_id"\ntable = "FACT_orders"'),
     ["feeds.others.table: 'FACT_orders' is written by feed orders too"]),
    ("replace without a date column", BASE.replace('key = "order_id"',
                                                   'key = "order_id"\nwrite_mode = "replace"'),
     ["feeds.orders.write_mode: is replace, which needs the feed's date column"]),
    ("decimal without precision", BASE.replace('amount = "float"',
                                               'amount = { kind = "decimal", scale = 2 }'),
     ["feeds.orders.columns.amount.precision: is missing; a decimal needs its precision"]),
    ("date column of another kind", BASE.replace('key = "order_id"',
                                                 'key = "order_id"\ndate_column = "sku"'),
     ["feeds.orders.date_column: 'sku' is a string column; declare sku = \"date\""]),
    ("nullable key", BASE.replace('order_id = "integer"',
                                  'order_id = { kind = "integer", nullable = true }'),
     ["feeds.orders.columns.order_id: is in the key, and a key column may not be null"]),
    ("unknown key, with its likely meaning", BASE.replace('key = "order_id"',
                                                          'key = "order_id"\npatern = "x"'),
     ["feeds.orders.patern: is not a key of a feed; did you mean 'pattern'?"]),
    ("a later release's key", BASE.replace('key = "order_id"',
                                           'key = "order_id"\nexpect = "daily"'),
     ["feeds.orders.expect: is reserved for a later release"]),
    ("the daemon's own table", BASE.replace('key = "order_id"',
                                            'key = "order_id"\ntable = "load_history"'),
     ["feeds.orders.table: 'load_history' is the daemon's own table's name"]),
    ("the daemon's own column", BASE.replace('sku = "string"', 'loaded_at = "string"'),
     ["feeds.orders.columns.loaded_at: 'loaded_at' can not name a column"]),
    ("key_carries_file_date off the key", BASE + '[[feeds.orders.checks]]\n'
     'rule = "key_carries_file_date"\ncolumn = "sku"\n',
     ["key_carries_file_date is on sku, which does not lead the key"]),
    ("one_of value of another kind", BASE + '[[feeds.orders.checks]]\nrule = "one_of"\n'
     'column = "order_id"\nvalues = [1, "two"]\n',
     ["feeds.orders.checks[0].values: 'two' is not an integer value"]),
    ("bad regular expression", BASE + '[[feeds.orders.checks]]\nrule = "matches"\n'
     'column = "sku"\nvalue = "[A-"\n',
     ["feeds.orders.checks[0].value: '[A-' is not a regular expression"]),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD, ids=[c for c, _, _ in BAD])
def test_a_bad_declaration_says_where_and_what_to_write(
        tmp_path: Path, case: str, text: str, expected: list[str]) -> None:
    message = _refusal(tmp_path, text)
    for words in expected:
        assert words in message, f"{case}: {words!r} not in\n{message}"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (BASE.replace('key = "order_id"', 'key = "order"\nwrite_mode = "replace"')
            .replace("orders_{date}", "orders") + '[[feeds.orders.checks]]\nrule = "finite"\n'
            'column = "sku"\n')
    message = _refusal(tmp_path, text)
    assert "(4 problems)" in message
    assert [line.split(":")[0].strip() for line in message.splitlines()[1:]] == [
        "feeds.orders.key", "feeds.orders.pattern", "feeds.orders.write_mode",
        "feeds.orders.checks[0]"]


def test_unmatched_and_table_prefix_are_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, BASE, ETL_UNMATCHED="leave", ETL_TABLE_PREFIX="")
    orders = settings.feeds.named("orders")
    assert settings.feeds.unmatched == "leave" and orders is not None
    assert orders.fact_table == "orders"
    with pytest.raises(ConfigError, match="unmatched"):
        _settings(tmp_path, BASE, ETL_UNMATCHED="ignore")


def test_a_pattern_the_checks_can_not_run_is_refused(tmp_path: Path) -> None:
    """Python reads look-arounds; RE2, which runs the checks, does not."""
    message = _refusal(tmp_path, BASE + '[[feeds.orders.checks]]\nrule = "matches"\n'
                       'column = "sku"\nvalue = "(?=A)[A-Z]+"\n')
    assert "feeds.orders.checks[0].value: '(?=A)[A-Z]+' is not a regular expression the " \
           "checks can run" in message


def test_the_daemon_refuses_a_bad_declaration_with_each_problem_as_data(tmp_path: Path) -> None:
    """`run` exits 2 (a usage error) with one JSON line whose `problems` a script can read."""
    config = tmp_path / "etl.toml"
    config.write_text(BASE.replace('key = "order_id"', 'key = "order"\nwrite_mode = "replace"'))
    done = subprocess.run(process.daemon_argv("run", "--once", "--config", str(config),
                                              "--inbox", str(tmp_path / "inbox")),
                          capture_output=True, text=True, timeout=60,
                          env=process.clean_environ(), cwd=tmp_path, check=False)
    assert done.returncode == 2, done
    [line] = [json.loads(x) for x in (done.stdout + done.stderr).splitlines() if x.strip()]
    assert line["event"] == "config_invalid"
    assert [p["where"] for p in line["problems"]] == ["feeds.orders.key",
                                                      "feeds.orders.write_mode"]
    assert line["problems"][0]["instead"] == "did you mean 'order_id'?"
    assert not (tmp_path / "inbox").exists()  # refused before anything was made
