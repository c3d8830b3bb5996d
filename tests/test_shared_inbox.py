"""One inbox, and who may take what from it: real daemons on PostgreSQL and SQLite.

What outside probes broke (issue 21) and these hold: a daemon of another warehouse on an
inbox that daemons share is refused in either order, and never takes their work
directories or lock files for files; a file a SQLite daemon left claimed is adopted by
the PostgreSQL daemon that follows it; a `daemons` row edited to point anywhere is never
taken as a path; a daemon whose node name another daemon took says so and claims
nothing more; a file name that is not UTF-8 fails at `name`, and a take-over survives it.
PostgreSQL only where a server is named: without one these skip (fail under CI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from filedrop_etl.config import Settings
from filedrop_etl.daemon.ops import folders
from tests import backends
from tests.conftest import (
    ROOT,
    DaemonProcess,
    Daemons,
    day_table,
    drop,
    on_both_backends,
    settings_under,
    wait_until,
    write_parquet,
)
from tests.http_client import request, url_of

# The slow tier: starts daemons beside one another.
pytestmark = pytest.mark.slow

BAD_NAME = os.fsdecode(b"transactions_2026-10-04\xff\xfe.parquet")


def pg(settings: Settings) -> str:
    assert backends.on_postgresql(settings)
    return backends.server_of(settings)


def send(tmp_path: Path, inbox: Path, day: str, name: str | None = None,
         rows: int = 25) -> str:
    """A day's file, written beside the inbox and renamed into it; its name."""
    source = write_parquet(tmp_path / "outbox", day_table(day, rows), name,
                           run_date=day)
    return drop(source, inbox).name


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """Daemons on any settings (each `start` below names them); killed at teardown."""
    made = Daemons(settings_under(tmp_path), tmp_path)
    try:
        yield made
    finally:
        made.close()


def start(daemons: Daemons, settings: Settings, *extra: str, log_name: str,
          wait_started: bool = True, env: dict[str, str] | None = None) -> DaemonProcess:
    daemons.settings = settings
    return daemons.start(*extra, log_name=log_name, wait_started=wait_started, env=env)


def test_a_sqlite_daemon_and_daemons_sharing_postgresql_refuse_one_another(
        tmp_path: Path, pg_url: str, daemons: Daemons) -> None:
    shared, alone = settings_under(tmp_path, pg_url), settings_under(tmp_path)
    assert shared.inbox == alone.inbox
    a = start(daemons, shared, "--node", "A", log_name="a.log")
    b = start(daemons, shared, "--node", "B", log_name="b.log")
    root = shared.work.parent
    bookkeeping = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    assert bookkeeping == ["A", "A.lock", "B", "B.lock"]

    sqlite = start(daemons, alone, log_name="sqlite.log", wait_started=False)
    assert sqlite.proc.wait(timeout=60) == 3
    [refused] = sqlite.matching("daemon_already_running")
    assert "PostgreSQL" in refused["reason"] and str(alone.inbox) in refused["reason"]
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == bookkeeping
    assert not alone.failed.exists() or not list(alone.failed.iterdir())
    assert a.stop() == 0 and b.stop() == 0

    # Alone now, the SQLite daemon runs, and leaves the nodes' folders and locks alone.
    sqlite = start(daemons, alone, log_name="sqlite-2.log")
    name = send(tmp_path, alone.inbox, "2026-10-01")
    sqlite.wait_for("file_processed", file=name)
    assert not sqlite.matching("file_resumed")
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == bookkeeping
    assert [p.name for p in alone.failed.iterdir()] == []

    # ... and while it runs, a daemon sharing PostgreSQL is refused in turn.
    late = start(daemons, shared, "--node", "C", log_name="c.log", wait_started=False)
    assert late.proc.wait(timeout=60) == 3
    [refused] = late.matching("daemon_already_running")
    assert "SQLite" in refused["reason"]
    assert sqlite.stop() == 0


def test_daemons_of_two_warehouses_on_one_inbox_are_refused(
        tmp_path: Path, pg_url: str, daemons: Daemons) -> None:
    first = start(daemons, settings_under(tmp_path, pg_url), "--node", "A", log_name="a.log")
    with backends.scratch_schema(backends.server_url()) as other:
        second = start(daemons, settings_under(tmp_path, other), "--node", "B",
                       log_name="b.log", wait_started=False)
        assert second.proc.wait(timeout=60) == 3
    [refused] = second.matching("daemon_already_running")
    assert "another warehouse" in refused["reason"] and "--db" in refused["hint"]
    assert first.proc.poll() is None and first.stop() == 0


def test_a_file_a_sqlite_daemon_left_claimed_is_adopted_and_counted(
        tmp_path: Path, pg_url: str, daemons: Daemons) -> None:
    alone, shared = settings_under(tmp_path), settings_under(tmp_path, pg_url)
    sqlite = start(daemons, alone, log_name="sqlite.log",
                   env={"ETL_CRASH_AT": "after_claim"})
    name = send(tmp_path, alone.inbox, "2026-10-02")
    sqlite.wait_for("crash_point_reached")
    sqlite.proc.send_signal(signal.SIGKILL)
    sqlite.proc.wait()
    assert (alone.work / name).exists()
    assert folders.in_flight(shared) == 1  # what `status` counts as in flight

    daemon = start(daemons, shared, "--node", "A", log_name="a.log")
    daemon.wait_for("file_processed", file=name)
    [adopted] = daemon.matching("file_adopted")
    assert adopted["file"] == name
    assert len(backends.fact_rows_in(shared)) == 25
    assert folders.in_flight(shared) == 0
    assert daemon.stop() == 0


def test_a_daemons_row_pointing_elsewhere_is_never_taken_as_a_path(
        tmp_path: Path, pg_url: str, daemons: Daemons) -> None:
    shared = settings_under(tmp_path, pg_url)
    gone = start(daemons, shared, "--node", "A", log_name="a.log")
    assert gone.stop() == 0
    elsewhere = tmp_path / "home"
    (elsewhere / "sub").mkdir(parents=True)
    for name in ("notes.txt", "id_rsa"):
        (elsewhere / name).write_text("mine")
    with psycopg.connect(pg(shared), autocommit=True) as conn:
        conn.execute(f"UPDATE {backends.books_of(pg(shared)).daemons} SET work = %s, "
                     "lease_until = now() - interval '1 hour' WHERE node = 'A'".encode(),
                     (str(elsewhere),))
    # Swept, so past its first take-over (which runs before the sweep).
    survivor = start(daemons, shared, "--node", "B", log_name="b.log")
    name = send(tmp_path, shared.inbox, "2026-10-03")
    survivor.wait_for("file_processed", file=name)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["id_rsa", "notes.txt", "sub"]
    assert not survivor.matching("file_taken_over")
    assert [p.name for p in shared.failed.iterdir()] == []
    assert survivor.stop() == 0


def test_a_daemon_whose_node_name_was_taken_says_so_and_claims_nothing_more(
        tmp_path: Path, pg_url: str, daemons: Daemons) -> None:
    one = settings_under(tmp_path / "one", pg_url)
    two = settings_under(tmp_path / "two", pg_url)
    for node in (one, two):  # an inbox whose parent folder is missing is refused
        node.inbox.parent.mkdir()
    paused = start(daemons, one, "--node", "same", "--http", "127.0.0.1:0",
                   log_name="paused.log")
    base = url_of(paused)
    paused.proc.send_signal(signal.SIGSTOP)
    try:
        with psycopg.connect(pg(one), autocommit=True) as conn:
            nodes = backends.books_of(pg(one)).daemons
            wait_until(lambda: conn.execute(
                f"SELECT lease_until < now() FROM {nodes} WHERE node = 'same'".encode())
                .fetchone() == (True,), "the paused daemon's lease to run out", timeout=30)
        other = start(daemons, two, "--node", "same", log_name="other.log")
    finally:
        paused.proc.send_signal(signal.SIGCONT)
    [taken] = paused.wait_for("node_taken")
    assert taken["level"] == "error" and "--node" in taken["hint"]
    health = request(base + "/healthz")
    assert health.status == 503 and "node same" in health.text
    name = send(tmp_path, one.inbox, "2026-10-05")
    paused.wait_for("file_detected", file=name)
    # Two more turns of the worker's loop (a rescan asked by SIGHUP is logged in its
    # turn): a file it would take, it takes in the turn that detected it.
    for turns in (1, 2):
        paused.proc.send_signal(signal.SIGHUP)
        paused.wait_for("inbox_rescanned", count=turns, reason="signal")
    assert (one.inbox / name).exists() and not paused.matching("file_claimed", file=name)
    assert paused.proc.poll() is None
    assert other.stop() == 0 and paused.stop() == 0


@on_both_backends
def test_a_file_name_that_is_not_utf8_fails_at_its_name_and_the_next_file_loads(
        settings: Settings, tmp_path: Path,
        start_daemon: Callable[..., DaemonProcess]) -> None:
    daemon = start_daemon()
    (tmp_path / "outbox").mkdir()
    source = write_parquet(tmp_path / "outbox", day_table("2026-10-04"), "bad.parquet")
    drop(source, settings.inbox, BAD_NAME)
    [failed] = daemon.wait_for("file_failed")
    assert failed["stage"] == "name" and failed["file"].endswith("\\xff\\xfe.parquet")
    name = send(tmp_path, settings.inbox, "2026-10-06")
    daemon.wait_for("file_processed", file=name)
    assert not daemon.matching("file_retry_scheduled")
    assert daemon.stop() == 0
    # The operator's commands take the name as the shell gives it, bytes and all.
    for command in (["history", "--json", "--file"], ["show", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "filedrop_etl", *command, os.fsencode(BAD_NAME),
             "--db", backends.db_arg(settings), "--inbox", str(settings.inbox),
             "--failed", str(settings.failed)], capture_output=True, cwd=ROOT, timeout=60,
            check=False)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        loads = answer if isinstance(answer, list) else answer["attempts"]
        assert [x["file_name"] for x in loads] == [failed["file"]]


def test_a_take_over_survives_a_file_name_that_is_not_utf8(
        tmp_path: Path, pg_url: str, daemons: Daemons) -> None:
    shared = settings_under(tmp_path, pg_url)
    dying = start(daemons, shared, "--node", "A", log_name="a.log",
                  env={"ETL_CRASH_AT": "after_claim"})
    (tmp_path / "outbox").mkdir()
    source = write_parquet(tmp_path / "outbox", day_table("2026-10-04"), "bad.parquet")
    drop(source, shared.inbox, BAD_NAME)
    dying.wait_for("crash_point_reached")
    dying.proc.send_signal(signal.SIGKILL)
    dying.proc.wait()
    survivor = start(daemons, shared, "--node", "B", log_name="b.log")
    [failed] = survivor.wait_for("file_failed", timeout=60)
    assert failed["stage"] == "name"
    [taken] = survivor.matching("file_taken_over")
    assert taken["from_node"] == "A"
    name = send(tmp_path, shared.inbox, "2026-10-07")
    survivor.wait_for("file_processed", file=name)
    assert survivor.proc.poll() is None and survivor.stop() == 0
    assert [p.name for p in (shared.work.parent / "A").iterdir()] == []


def test_a_node_name_is_limited_in_bytes_and_never_a_lock_file(tmp_path: Path) -> None:
    from filedrop_etl.config import ConfigError
    from tests.backends import load_settings

    for node, words in (("é" * 130, "200 bytes"), ("A.lock", "'.lock'")):
        with pytest.raises(ConfigError) as refused:
            load_settings({"inbox": tmp_path / "inbox", "node": node}, environ={})
        assert words in refused.value.message
