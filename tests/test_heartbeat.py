"""The heartbeat of a daemon sharing PostgreSQL, against a real server and real daemons.

Probes (issue 21) found it died on any error that was not a fault of the server's reach
(a column dropped by hand: `UndefinedColumn`), silently: /healthz said ok, `status`
called the node stopped, and a file whose staging outlasted the lease looped on
`claim_lost` for ever. Held here: the heartbeat logs the error, goes on beating, and
/healthz says so until it beats again; and a load renews its own claim while it stages,
so a large file commits even while the heartbeat cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from filedrop_etl.config import Settings, contract
from tests import backends
from tests.conftest import DaemonProcess, day_table, drop, settings_under, wait_until, write_parquet
from tests.http_client import request, url_of

Start = Callable[..., DaemonProcess]


@pytest.fixture
def settings(tmp_path: Path, pg_url: str) -> Settings:
    return settings_under(tmp_path, pg_url)


def alter(settings: Settings, statement: str) -> None:
    """`statement` on the server, `{daemons}` in it the daemons' table (in the
    bookkeeping schema)."""
    assert backends.on_postgresql(settings)
    daemons = backends.books_of(backends.server_of(settings)).daemons
    with psycopg.connect(backends.server_of(settings), autocommit=True) as conn:
        conn.execute(statement.format(daemons=daemons).encode())


def test_the_heartbeat_survives_an_error_says_so_and_beats_again(
        settings: Settings, start_daemon: Start) -> None:
    daemon = start_daemon("--node", "hb", "--http", "127.0.0.1:0")
    base = url_of(daemon)
    assert request(base + "/healthz").status == 200
    alter(settings, 'ALTER TABLE {daemons} RENAME COLUMN "file_in_hand" TO "hand"')
    [failed] = daemon.wait_for("heartbeat_failed")
    assert failed["error_type"] == "UndefinedColumn" and failed["level"] == "error"
    assert failed["exception"]  # not a fault of the server's reach: its traceback too

    def unhealthy() -> bool:
        health = request(base + "/healthz")
        return health.status == 503 and "heartbeat" in health.text

    wait_until(unhealthy, "/healthz to report the heartbeat")
    alter(settings, 'ALTER TABLE {daemons} RENAME COLUMN "hand" TO "file_in_hand"')
    daemon.wait_for("heartbeat_restored")
    wait_until(lambda: request(base + "/healthz").status == 200, "/healthz to be ok again")
    assert len(daemon.matching("heartbeat_failed")) == 1  # once per streak
    assert daemon.proc.poll() is None and daemon.stop() == 0


def test_a_load_renews_its_own_claim_while_it_stages(
        settings: Settings, tmp_path: Path, start_daemon: Start) -> None:
    # A lease far shorter than the file takes to stage, and no heartbeat to renew it.
    daemon = start_daemon("--node", "big", "--lease-seconds", "1")
    alter(settings, 'ALTER TABLE {daemons} RENAME COLUMN "file_in_hand" TO "hand"')
    daemon.wait_for("heartbeat_failed")
    name = contract.file_name_for("2026-09-01")
    source = write_parquet(tmp_path / "outbox", day_table("2026-09-01", 600_000), name)
    drop(source, settings.inbox)
    [done] = daemon.wait_for("file_processed", timeout=120)
    assert done["rows"] == 600_000 and done["duration_ms"] > 1000  # outlasted the lease
    assert not daemon.matching("claim_lost")
    assert daemon.stop() == 0
