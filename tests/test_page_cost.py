"""What the status page costs, on each backend: bytes against the loads of the day, and
database sessions against its viewers.

Guards found bugs: after 100,000 loads in 24 hours the page was 17 MB and took 2.4 s (a
mark and a fetched row per load), and each request opened a session of its own, so that
many viewers could use up the server's `max_connections`. The ledger is filled in bulk
(`tools.bench.ledger`); the page is the daemon's own (`page.source`), on the real
database, its sessions counted at the backend's opener.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

import filedrop_etl.daemon.warehouse.postgresql.doors as postgresql
from filedrop_etl.config import Settings
from filedrop_etl.daemon.ops import charts, page
from filedrop_etl.daemon.warehouse.sqlite import connection as sqlite_connection
from tests import backends
from tests.conftest import wait_until
from tools.bench import ledger
from tools.bench.page import Quiet

VIEWERS = 8


def _marks(document: str) -> int:
    return len(re.findall(r"<circle ", document))


def _per_hour(document: str) -> str:
    """The page's figure of loads per hour: what it read of the ledger."""
    [figure] = re.findall(r"<dd>([^<]+)</dd><dt>loads per hour</dt>", document)
    return str(figure)


def _page(settings: Settings) -> str:
    """The page as a first viewer gets it from a daemon just started."""
    status = page.source(settings, Quiet(), "t")
    try:
        return status()
    finally:
        status.close()


def test_the_page_is_no_larger_for_20000_loads_a_day_than_for_1000(
        any_settings: Settings) -> None:
    now = datetime.now(UTC)
    # Within the last 23.5 hours: still within the 24 when the page is made.
    ledger.fill(any_settings, 1_000, now, hours=23.5)
    small = _page(any_settings)
    ledger.fill(any_settings, 19_000, now, hours=23.5)
    large = _page(any_settings)
    assert (_per_hour(small), _per_hour(large)) == ("41.7", "833.3")
    # A mark per quarter hour and status at most, whatever the count. 1,000 loads already
    # fill every quarter hour with processed ones; 20,000 fill (nearly) every one with
    # failed ones too (one in fifty fails), and the page can grow no further. It used to
    # grow by 170 bytes a load.
    assert _marks(large) <= 2 * (24 * 3600 // charts.SLICE_SECONDS + 1)
    assert len(large) < len(small) * 1.5, (len(small), len(large))
    assert len(large) < 80_000


def _count_sessions(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The read sessions the page opens from now on, as they are opened."""
    opened: list[Any] = []
    if backends.on_postgresql(settings):
        # The name the package opens its sessions by (imported from its `connection`).
        real_pg = postgresql.__dict__["connect"]

        def counted_pg(*args: Any, **kwargs: Any) -> Any:
            conn = real_pg(*args, **kwargs)
            if kwargs.get("read_only"):
                opened.append(conn)
            return conn

        monkeypatch.setattr(postgresql, "connect", counted_pg)
        return opened
    real_lite = sqlite_connection.connect_readonly

    def counted_lite(*args: Any, **kwargs: Any) -> Any:
        opened.append(conn := real_lite(*args, **kwargs))
        return conn

    monkeypatch.setattr(sqlite_connection, "connect_readonly", counted_lite)
    return opened


def test_viewers_at_once_share_one_page_and_one_session(
        any_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.fill(any_settings, 200, hours=23.5)
    opened = _count_sessions(any_settings, monkeypatch)
    status = page.source(any_settings, Quiet(), "t")
    together = threading.Barrier(VIEWERS)
    pages: list[str] = []

    def view() -> None:
        together.wait(timeout=30)
        pages.append(status())

    viewers = [threading.Thread(target=view) for _ in range(VIEWERS)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join()
    assert len(pages) == VIEWERS and len(set(pages)) == 1  # one page, made once
    assert _per_hour(pages[0]) == "8.3"  # 200 loads in 24 hours: read from the database
    assert len(opened) == 1
    status.close()


def test_the_page_keeps_its_postgresql_session_and_replaces_a_lost_one(
        pg_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import settings_under

    settings = settings_under(tmp_path, pg_url)
    ledger.fill(settings, 200, hours=23.5)
    opened = _count_sessions(settings, monkeypatch)
    status = page.StatusPage(settings, Quiet(), "t", fresh_seconds=0)
    try:
        status()
        # Pages made again and again (each snapshot stale), all on that one session.
        wait_until(lambda: bool(status()) and status._snapshot.makes >= 4, "4 pages made")
        assert len(opened) == 1
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (opened[0].info.backend_pid,))
        made = status._snapshot.makes
        wait_until(lambda: bool(status()) and status._snapshot.makes > made, "a new page")
        # The lost session is found at the next page's first query and replaced at once:
        # that page still has the loads.
        assert len(opened) == 2 and _per_hour(status()) == "8.3"
    finally:
        status.close()
    assert opened[1].closed
