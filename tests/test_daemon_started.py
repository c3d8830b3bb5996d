"""`daemon_started` logs the settings as data (issue 24, item 6).

It once was a 2.4 KB line with a Python repr inside (`Contract(name='transactions',
columns=(Column(...`): a line nobody could query with jq. The real daemon's line parses
as JSON, holds no repr in any value (a class name followed by its fields), stays small
for the built-in feed, and gives each feed as a dict of its name, columns' kinds and key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filedrop_etl.config import Settings
from tests.conftest import ROOT, DaemonProcess, on_both_backends

Start = Callable[..., DaemonProcess]
# `Contract(`, `PosixPath(`, `Place(`, `mappingproxy(`: what `repr` of an object starts with.
REPR = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\((?:[A-Za-z_]+=|['\"{\[)]|\d)")
# The issue measured 2.4 KB; the built-in feed's line is about 1.6 KB now, the folders'
# paths aside (measured without them: a test's folder is longer than a server's).
MOST_BYTES = 2048


def texts(value: object) -> Iterator[str]:
    """Every key and text value in `value`, however deep."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)


def started_line(daemon: DaemonProcess) -> tuple[str, dict[str, Any]]:
    """The raw `daemon_started` line of a daemon that has exited, and it parsed."""
    [raw] = [line for line in daemon.log_path.read_text().splitlines()
             if '"daemon_started"' in line]
    return raw, json.loads(raw)


@on_both_backends
def test_daemon_started_is_small_data_without_a_repr(start_daemon: Start) -> None:
    daemon = start_daemon("--once", wait_started=False)
    assert daemon.proc.wait(timeout=60) == 0
    raw, line = started_line(daemon)
    assert line["event"] == "daemon_started" and line["once"] is True
    assert [t for t in texts(line) if REPR.search(t)] == []
    paths = [str(line[k]) for k in ("inbox", "processed", "failed", "work", "db",
                                    "config_file") if line[k]]
    size = len(raw.encode()) - sum(raw.count(json.dumps(p)) * len(p.encode()) for p in paths)
    assert size < MOST_BYTES, size
    assert line["feeds"] == [{
        "name": "transactions", "pattern": "transactions_{date}.parquet",
        "date_format": "%Y-%m-%d", "table": "fact_transactions", "key": ["txn_id"],
        "date_column": "run_date", "write_mode": "merge",
        "columns": {"txn_id": "string", "customer_id": "integer", "amount": "float",
                    "run_date": "date"}}]
    # Every value is a JSON scalar, list or dict, never text standing for an object.
    assert all(isinstance(v, str | int | float | bool | list | dict | None)
               for v in line.values())


def test_declared_feeds_and_every_kind_of_setting_log_as_data(
        tmp_path: Path, settings: Settings, start_daemon: Start) -> None:
    """Declared feeds (a decimal, a composite key), the HTTP address, an unknown `ETL_`
    variable like no setting's (one like a setting's refuses the start) and a config
    file: each as data too."""
    daemon = start_daemon("--once", "--http", "127.0.0.1:0", "--config",
                          str(ROOT / "config" / "feeds.example.toml"),
                          wait_started=False, env={"ETL_FOO": str(tmp_path)})
    assert daemon.proc.wait(timeout=60) == 0
    _, line = started_line(daemon)
    assert [t for t in texts(line) if REPR.search(t)] == []
    assert [f["name"] for f in line["feeds"]] == ["transactions", "orders"]
    orders = line["feeds"][1]
    assert orders["key"] == ["order_date", "order_id"]
    assert orders["columns"]["price"] == "decimal"
    assert (line["http"], line["unknown_variables"]) == ("127.0.0.1:0", {"ETL_FOO": None})
    assert line["sources"]["http"] == "flag" and line["inbox"] == str(settings.inbox)
