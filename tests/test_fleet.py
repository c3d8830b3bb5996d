"""A fleet that shows its dead (issue 24, items 12 and 13): daemons sharing PostgreSQL.

What a user met: a SIGKILLed daemon looked like one stopped on purpose in `status` and
on the page, kept "holding" a file another daemon had already loaded, the page stayed
green with one of two daemons dead, and the `status` header named one daemon for two;
its file was taken over only once the survivor had drained its own queue, so the oldest
date loaded last. Here a daemon is killed for real (SIGKILL, at a crash point) and the
survivor is a real process: the node is `lost` (since its lease ran out) in `status`, its
JSON, the page and `etl_daemons`; its file in hand is gone once taken over; and the
taken-over file loads before the survivor's own queue. PostgreSQL only: without a
server the end-to-end tests skip (fail under CI).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon.app.worker import build
from filedrop_etl.daemon.ops import fleet, page
from filedrop_etl.daemon.ops.commands.table import when
from filedrop_etl.daemon.ops.metrics import Metrics
from filedrop_etl.daemon.warehouse.api import Daemon, TakenOver, Ticket
from filedrop_etl.daemon.watch.takeover import TakeOvers
from tests import backends
from tests.conftest import (
    ROOT,
    DaemonProcess,
    Daemons,
    as_warehouse,
    day_table,
    drop,
    settings_under,
    wait_until,
    write_parquet,
)
from tests.http_client import Scrape, request, url_of
from tools.harness import process

WELL = page.Health(version="0.1.0", write_mode="merge", observer="auto", ready=True,
                   problems=(), queue_depth=0, last_success=None)
LOST_AT = "2026-03-01T10:00:03.000000Z"


def node(name: str, state: str) -> Daemon:
    return Daemon(name, 1, "2026-03-01T09:00:00.000000Z", "inbox", f"work/{name}", "p", "f",
                  [], "2026-03-01T10:00:00.000000Z", None, state == "alive", state,
                  LOST_AT if state == "lost" else None)


def badge(document: str) -> tuple[str, str]:
    """The page's state badge: its class and its words."""
    found = re.search(r'<p id="state" class="(\w+)">([^<]*)</p>', document)
    assert found, document
    return found[1], found[2]


def test_the_page_badge_counts_the_daemons_alive_of_those_expected() -> None:
    feeds = Feeds((TRANSACTIONS,))
    fleet = [node("b", "alive"), node("a", "lost"), node("c", "stopped")]
    document = page.render(WELL, [], [], {}, feeds, nodes=fleet)
    # c stopped cleanly: not expected to run, so not counted; a lost: not green.
    assert badge(document) == ("warn", f"Running; 1 of 2 daemons alive (a lost since "
                                       f"{when(LOST_AT)})")
    assert f'<td class="failed">lost since {when(LOST_AT)}</td>' in document
    assert '<td>c</td><td class="">stopped</td>' in document
    well = page.render(WELL, [], [], {}, feeds, nodes=[node("b", "alive"), fleet[2]])
    assert badge(well) == ("ok", "Running; 1 of 1 daemon alive")
    # A warehouse of one daemon (SQLite) has no fleet to count.
    assert badge(page.render(WELL, [], [], {}, feeds)) == ("ok", "Running")


def test_etl_daemons_says_how_many_are_alive_lost_and_stopped(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    worker = build(settings, as_warehouse(fresh_db))
    # A warehouse of its own (SQLite): this daemon, alive; each state's series there.
    alone = Scrape(worker.metrics.exposition().decode())
    assert alone.by("etl_daemons", "state") == {"alive": 1, "lost": 0, "stopped": 0}
    shared = Metrics(settings, worker.report,
                     fleet=lambda: {"alive": 2, "lost": 1, "stopped": 3})
    assert Scrape(shared.exposition().decode()).by("etl_daemons", "state") == {
        "alive": 2, "lost": 1, "stopped": 3}


def test_taken_over_files_go_first_in_drop_order(tmp_path: Path) -> None:
    settings = settings_under(tmp_path)
    take_overs = TakeOvers(settings)
    own = {tmp_path / "mine-1": 1, tmp_path / "mine-2": 2}

    def taken(name: str, dropped_ns: int) -> TakenOver:
        return TakenOver(tmp_path / name, "dead", Ticket(dropped_ns, 1, dropped_ns))

    first = [taken("late", 30), taken("early", 10)]
    queue = take_overs.first(first, {**own, **{f.path: 0 for f in first}})
    assert [p.name for p in queue] == ["early", "late", "mine-1", "mine-2"]
    # Another take-over while those still wait: all taken-over files, in drop order.
    again = [taken("middle", 20)]
    queue = take_overs.first(again, {**queue, **{f.path: 0 for f in again}})
    assert [p.name for p in queue] == ["early", "middle", "late", "mine-1", "mine-2"]
    # One loaded (gone from the queue) is forgotten.
    del queue[tmp_path / "early"]
    assert [p.name for p in take_overs.first([], queue)] == [
        "middle", "late", "mine-1", "mine-2"]


# --- the real daemons -------------------------------------------------------------------

def status(settings: Settings, *extra: str) -> tuple[int, str]:
    """`filedrop-etl status` on `settings`' warehouse and folders: its exit code and output."""
    done = subprocess.run(process.daemon_argv(
        "status", "--db", backends.db_arg(settings), "--inbox", str(settings.inbox),
        "--failed", str(settings.failed), *extra), capture_output=True, text=True,
        timeout=60, check=False, cwd=ROOT)
    return done.returncode, done.stdout


def nodes_of(settings: Settings) -> dict[str, dict[str, object]]:
    _, out = status(settings, "--json")
    return {n["node"]: n for n in json.loads(out)["nodes"]}


def lease_of(settings: Settings, name: str) -> tuple[bool, str | None, str]:
    """Whether `name`'s lease ran out, its file in hand as recorded, and its lease's end."""
    with psycopg.connect(backends.server_of(settings), autocommit=True) as conn:
        row = conn.execute(
            "SELECT lease_until < now(), file_in_hand, to_char(lease_until AT TIME ZONE "
            "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
            f"FROM {backends.books_of(backends.server_of(settings)).daemons} WHERE node = %s",
            (name,)).fetchone()
    assert row is not None
    return bool(row[0]), row[1], str(row[2])


def killed_holding(daemons: Daemons, settings: Settings, tmp_path: Path, day: str,
                   *extra: str) -> tuple[DaemonProcess, str]:
    """Node `a`, SIGKILLed with `day`'s file in its hands (its heartbeat said so)."""
    dying = daemons.start("--node", "a", *extra, log_name="a.log",
                          env={"ETL_CRASH_AT": "after_checks"})
    name = contract.file_name_for(day)
    # Large enough that its checks take longer than the heartbeat's nudge.
    drop(write_parquet(tmp_path / "outbox", day_table(day, 20_000), name), settings.inbox)
    dying.wait_for("crash_point_reached")
    wait_until(lambda: lease_of(settings, "a")[1] == name, "a's heartbeat naming its file")
    dying.proc.send_signal(signal.SIGKILL)
    dying.proc.wait()
    return dying, name


@pytest.mark.slow
def test_a_killed_daemon_is_lost_since_its_lease_ran_out_until_its_file_is_taken_over(
        tmp_path: Path, pg_url: str) -> None:
    settings = settings_under(tmp_path, pg_url)
    daemons = Daemons(settings, tmp_path)
    try:
        _, name = killed_holding(daemons, settings, tmp_path, "2026-03-01")
        wait_until(lambda: lease_of(settings, "a")[0], "a's lease to run out")
        until = lease_of(settings, "a")[2]
        # Nobody has taken its file yet: it is still in its hands.
        a = nodes_of(settings)["a"]
        assert (a["state"], a["alive"], a["lost_since"], a["file_in_hand"]) == (
            "lost", False, until, name)
        _, text = status(settings)
        assert f"nodes         1 daemon: a lost since {when(until)}\n" in text
        assert "a is lost: the lease ran out without a clean stop" in text
        assert "Start each again under its --node to bring it back" in text  # what to do

        survivor = daemons.start("--node", "b", "--http", "127.0.0.1:0", log_name="b.log")
        [taken] = survivor.wait_for("file_taken_over", from_node="a")
        survivor.wait_for("file_processed", file=taken["file"])
        fleet = nodes_of(settings)
        assert (fleet["a"]["state"], fleet["a"]["file_in_hand"]) == ("lost", None)
        assert (fleet["b"]["state"], fleet["b"]["lost_since"]) == ("alive", None)
        _, text = status(settings)
        assert f"nodes         2 daemons: a lost since {when(until)}, b alive\n" in text
        # Its row in the nodes' table: no file in hand any more.
        [row] = [line for line in text.splitlines() if line.split()[:2] == ["a", "lost"]]
        assert f"lost since {when(until)}" in row and name not in row

        base = url_of(survivor)
        wait_until(lambda: Scrape.of(base).by("etl_daemons", "state") == {
            "alive": 1, "lost": 1, "stopped": 0}, "etl_daemons to count a lost")
        wait_until(lambda: badge(request(base + "/").text)[1].startswith(
            "Running; 1 of 2 daemons alive (a lost since"), "the page's badge")
        assert badge(request(base + "/").text)[0] != "ok"

        # A clean stop is no loss.
        assert survivor.stop() == 0
        fleet = nodes_of(settings)
        assert (fleet["b"]["state"], fleet["a"]["state"]) == ("stopped", "lost")
    finally:
        daemons.close()


@pytest.mark.slow
def test_a_dead_daemons_file_loads_before_the_survivors_own_queue(
        tmp_path: Path, pg_url: str) -> None:
    settings = settings_under(tmp_path, pg_url)
    daemons = Daemons(settings, tmp_path)
    try:
        # a holds the oldest date, with a lease long enough for b to start meanwhile.
        _, oldest = killed_holding(daemons, settings, tmp_path, "2026-03-01",
                                   "--lease-seconds", "12")
        days = [f"2026-03-{d:02d}" for d in range(2, 10)]
        later = [contract.file_name_for(day) for day in days]
        for day, name in zip(days, later, strict=True):
            drop(write_parquet(tmp_path / "outbox", day_table(day), name), settings.inbox)
        # b claims its first file and freezes there until a's lease has run out; its own
        # lease outlasts the wait, and its take-over is due every 3 s.
        survivor = daemons.start("--node", "b", "--lease-seconds", "30", "--rescan-seconds",
                                 "3", log_name="b.log", env={"ETL_CRASH_AT": "after_claim"})
        [held] = survivor.wait_for("crash_point_reached")
        assert not survivor.matching("file_taken_over"), "a's lease ran out before b began"
        wait_until(lambda: lease_of(settings, "a")[0], "a's lease to run out")
        survivor.proc.send_signal(signal.SIGCONT)
        survivor.wait_for("file_processed", count=len(later) + 1)
        order = [r["file_name"] for r in backends.ledger_in(settings)]
        claimed = survivor.matching("file_claimed")[0]
        # The file in b's hands when it froze, then a's, then the rest of b's queue.
        assert order[:2] == [claimed["file"], oldest], (held, order)
        assert sorted(order) == sorted([oldest, *later])
        assert survivor.stop() == 0
    finally:
        daemons.close()


def test_a_command_speaks_for_its_node_else_one_alive_not_the_latest_started() -> None:
    """Issue 24: on a shared warehouse, `status` without `--node` took the daemon that
    started last, a node since killed, and said "not running" while another ran."""
    latest_first = [node("a", "lost"), node("b", "alive"), node("c", "stopped")]
    assert fleet.spoken_for(latest_first, "c") == latest_first[2]  # the node named
    assert fleet.spoken_for(latest_first, "elsewhere") == latest_first[1]  # one alive
    none_alive = [node("a", "lost"), node("c", "stopped")]
    assert fleet.spoken_for(none_alive, "elsewhere") == none_alive[0]  # the latest
    assert fleet.spoken_for([], "elsewhere") is None
