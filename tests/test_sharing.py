"""Daemons sharing one PostgreSQL warehouse and one inbox, as real processes.

Each test starts several `python -m filedrop_etl --node NAME` on one inbox and one server (a
schema of the test's own), drops a stream of files, kills one daemon mid-load, and then
checks what matters: every drop archived once, the fact table equal to a computation
made here from the drops alone, the ledger equal to the archive, the killed daemon's
file taken over. The fence is shown refusing a stale owner's commit in-process, and the
server killing the worker's session (`pg_terminate_backend`) mid-COPY and mid-merge is
shown to lose nothing. PostgreSQL only: without a server these skip (fail under CI).
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import psycopg
import pyarrow as pa
import pytest
from structlog.testing import capture_logs

from filedrop_etl.config import Settings, contract
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.warehouse.api import (
    FOLDER_NAMES,
    ClaimLost,
    Folders,
    LoadRecord,
    MergePlan,
    Ticket,
    Warehouse,
)
from filedrop_etl.daemon.watch.takeover import take_over
from tests import backends
from tests.backends import db_arg, fact_rows_in, ledger_in
from tests.conftest import (
    ROOT,
    DaemonProcess,
    day_table,
    drop,
    replaced_at,
    settings_under,
    wait_until,
    write_parquet,
)
from tools.harness import process

Start = Callable[..., DaemonProcess]
Expected = dict[str, tuple[int, float, str]]


@pytest.fixture
def settings(tmp_path: Path, pg_url: str) -> Settings:
    """This module's daemons share a PostgreSQL warehouse (see `pg_url`)."""
    return settings_under(tmp_path, pg_url)


def prepared(tmp_path: Path, table: pa.Table, name: str) -> Path:
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    return write_parquet(outbox, table, name)


def rows_of(table: pa.Table) -> Expected:
    return {r["txn_id"]: (r["customer_id"], r["amount"], r["run_date"])
            for r in table.to_pylist()}


def archived(settings: Settings) -> list[str]:
    done = [p.name for p in settings.processed.iterdir()]
    failed = [p.name for p in settings.failed.iterdir() if not p.name.endswith(".json")]
    return sorted(done + failed)


def work_left(settings: Settings) -> list[Path]:
    root = settings.work.parent
    return [p for p in root.rglob("*") if p.is_file() and p.suffix == ".parquet"]


@pytest.mark.parametrize("daemons", [2, 4])
def test_daemons_sharing_an_inbox_load_each_file_once_though_one_is_killed(
        settings: Settings, tmp_path: Path, start_daemon: Start, daemons: int) -> None:
    # The first daemon freezes inside its first merge; the test then kills it.
    victim = start_daemon("--node", "n0", "--rescan-seconds", "0.3",
                          env={"ETL_CRASH_AT": "during_merge"}, log_name="n0.log")
    others = [start_daemon("--node", f"n{i}", "--rescan-seconds", "0.3",
                           log_name=f"n{i}.log") for i in range(1, daemons)]
    days = [f"2026-04-{d:02d}" for d in range(1, 9)]
    expected: Expected = {}
    drops: list[str] = []

    def send(table: pa.Table, name: str, good: bool = True) -> None:
        drop(prepared(tmp_path, table, name), settings.inbox)
        drops.append(name)
        if good:
            expected.update(rows_of(table))

    for day in days:
        send(day_table(day, 3000), contract.file_name_for(day))
    victim.wait_for("crash_point_reached")
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    # Identical and corrected re-drops, and bad files, while the others carry on.
    send(day_table(days[0], 3000), f"transactions_{days[0]}~1.parquet")
    corrected = replaced_at(day_table(days[1], 3000), "amount", 7, 4242.5)
    send(corrected, f"transactions_{days[1]}~1.parquet")
    (tmp_path / "outbox" / "transactions_2026-04-20.parquet").write_bytes(b"not parquet")
    drop(tmp_path / "outbox" / "transactions_2026-04-20.parquet", settings.inbox)
    drops.append("transactions_2026-04-20.parquet")
    negative = replaced_at(day_table("2026-04-21", 50), "amount", 3, -1.0)
    send(negative, "transactions_2026-04-21.parquet", good=False)
    wait_until(lambda: len(archived(settings)) == len(drops) and not work_left(settings),
               f"all {len(drops)} drops archived", timeout=120)

    assert archived(settings) == sorted(drops)  # each once, under its own name
    assert not list(settings.inbox.iterdir())
    assert {r[0]: (r[1], r[2], r[3]) for r in fact_rows_in(settings)} == expected
    ledger = ledger_in(settings)
    assert sorted(r["file_name"] for r in ledger if r["status"] == "processed") == sorted(
        p.name for p in settings.processed.iterdir())
    assert sorted(r["file_name"] for r in ledger if r["status"] == "failed") == [
        "transactions_2026-04-20.parquet", "transactions_2026-04-21.parquet"]
    taken = [e for d in others for e in d.matching("file_taken_over", from_node="n0")]
    assert len(taken) == 1, "the killed daemon's file was taken over by one other"
    assert sum(len(d.matching("file_processed")) for d in others) == len(drops) - 2
    for daemon in others:
        assert daemon.stop() == 0


def test_two_drops_of_one_date_racing_in_replace_mode_end_with_the_later_files_rows(
        settings: Settings, tmp_path: Path, start_daemon: Start) -> None:
    """The earlier drop's daemon commits last, and still the later drop's rows stand."""
    day = "2026-05-01"
    first, later = day_table(day, 2000, seed=1), day_table(day, 1500, seed=2)
    drop(prepared(tmp_path, first, contract.file_name_for(day)), settings.inbox)
    drop(prepared(tmp_path, later, f"transactions_{day}~1.parquet"), settings.inbox)
    # r0 takes the earlier drop and stops before its transaction ...
    slow = start_daemon("--node", "r0", "--write-mode", "replace", log_name="r0.log",
                        env={"ETL_CRASH_AT": "after_checks"})
    [claimed] = slow.wait_for("file_claimed")
    assert claimed["file"] == contract.file_name_for(day)
    slow.wait_for("crash_point_reached")
    # ... while r1 loads the later one, then r0 goes on and commits the earlier.
    fast = start_daemon("--node", "r1", "--write-mode", "replace", log_name="r1.log")
    fast.wait_for("file_processed", file=f"transactions_{day}~1.parquet")
    slow.proc.send_signal(signal.SIGCONT)
    [late] = slow.wait_for("file_processed")
    assert late["superseded"] is True and (late["inserted"], late["deleted"]) == (0, 0)
    assert {r[0]: (r[1], r[2], r[3]) for r in fact_rows_in(settings)} == rows_of(later)
    [superseded] = [r for r in ledger_in(settings) if r["file_name"] == claimed["file"]]
    assert superseded["status"] == "processed" and "superseded" in superseded["error"]
    for daemon in (slow, fast):
        assert daemon.stop() == 0


@pytest.fixture
def two_nodes(settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Settings]]:
    """Two daemons' settings on one warehouse and one inbox (nodes `a` and `b`)."""
    from dataclasses import replace

    pair = tuple(replace(settings, node=n, work=tmp_path / ".inbox.work" / n) for n in "ab")
    for one in pair:
        for name in FOLDER_NAMES:
            getattr(one, name).mkdir(parents=True, exist_ok=True)
    yield pair[0], pair[1]


def folders_of(settings: Settings) -> Folders:
    inbox, work, processed, failed = (str(getattr(settings, n)) for n in FOLDER_NAMES)
    return Folders(inbox, work, processed, failed)


@contextmanager
def opened(settings: Settings) -> Iterator[Warehouse]:
    """The worker's warehouse of a daemon with `settings`, as its start opens it."""
    held = warehouse.open_warehouse(settings, folders_of(settings))
    try:
        yield held
    finally:
        held.close()


def claimed_day(held: Warehouse, settings: Settings,
                day: str) -> tuple[pa.Table, Path, Ticket, LoadRecord]:
    """A day's file in the daemon's work directory, its claim recorded: the table, the
    file, the ticket and the load record its commit would write."""
    table = day_table(day, 100)
    claimed = write_parquet(settings.work, table, run_date=day)
    ticket = held.claims.claimed(claimed, claimed.lstat().st_ctime_ns)
    assert ticket is not None
    return table, claimed, ticket, LoadRecord(claimed.name, None, None, "merge", day,
                                              f"{day}T00:00:00Z", ticket.key,
                                              feed="transactions")


def test_a_stale_owner_is_refused_by_the_fence(two_nodes: tuple[Settings, Settings],
                                               tmp_path: Path) -> None:
    a_settings, b_settings = two_nodes
    with opened(a_settings) as a, opened(b_settings) as b:
        table, claimed, ticket, load = claimed_day(a, a_settings, "2026-06-01")
        # `a` stalls past its lease (a pause, a partition): its lease runs out ...
        assert backends.on_postgresql(a_settings)
        kept = backends.books_of(backends.server_of(a_settings))
        with psycopg.connect(backends.server_of(a_settings), autocommit=True) as admin:
            admin.execute(f"UPDATE {kept.claims} SET lease_until = now() - interval '1 second'"
                          .encode())
            admin.execute(f"UPDATE {kept.daemons} SET lease_until = now() - "
                          "interval '1 second' WHERE node = 'a'".encode())
        # ... and `b` takes the file over, bumping its fence.
        [taken] = take_over(b.claims, b_settings.work, b_settings.feeds)
        assert taken.from_node == "a" and taken.ticket is not None
        assert taken.ticket.id == ticket.id and taken.ticket.fence == ticket.fence + 1
        assert taken.path.parent == b_settings.work and not claimed.exists()
        # `a` wakes and tries to commit what it had staged: refused, nothing written.
        with pytest.raises(ClaimLost), a.staged(TRANSACTIONS, table.to_batches()) as staged:
            staged.commit(load, MergePlan(True, True, ticket=ticket))
        assert fact_rows_in(a_settings) == [] and ledger_in(a_settings) == []
        # The new owner commits it.
        with b.staged(TRANSACTIONS, table.to_batches()) as staged:
            counts = staged.commit(load, MergePlan(True, True, ticket=taken.ticket))
        assert counts.inserted == 100 and len(fact_rows_in(a_settings)) == 100


def lapsed(settings: Settings, node: str) -> None:
    """The leases of `node` and of its claims run out (its daemon paused, say)."""
    kept = backends.books_of(backends.server_of(settings))
    with psycopg.connect(backends.server_of(settings), autocommit=True) as admin:
        admin.execute(f"UPDATE {kept.claims} SET lease_until = now() - interval '1 second' "
                      "WHERE node = %s".encode(), (node,))
        admin.execute(f"UPDATE {kept.daemons} SET lease_until = now() - interval '1 second' "
                      "WHERE node = %s".encode(), (node,))


@pytest.mark.parametrize("fails", [False, True], ids=["taken", "failed"])
def test_a_file_taken_over_is_logged_with_its_feed(two_nodes: tuple[Settings, Settings],
                                                   fails: bool) -> None:
    """`file_taken_over` and a file's `take_over_failed` say the feed its name belongs
    to, as every per-file line does ("" for a name of no feed)."""
    a_settings, b_settings = two_nodes
    with opened(a_settings) as a, opened(b_settings) as b:
        _table, claimed, _ticket, _load = claimed_day(a, a_settings, "2026-06-03")
        (a_settings.work / "notes.txt").write_text("a name of no feed\n")
        lapsed(a_settings, "a")
        if fails:  # b's work directory is in the way: no file can be moved there
            b_settings.work.rmdir()
            b_settings.work.write_text("")
        with capture_logs() as logs:
            taken = take_over(b.claims, b_settings.work, b_settings.feeds)
    assert len(taken) == (0 if fails else 2)
    event = "take_over_failed" if fails else "file_taken_over"
    lines = sorted(({k: e[k] for k in ("event", "file", "feed", "from_node")}
                    for e in logs if e["event"] == event), key=lambda e: e["file"])
    assert lines == [
        {"event": event, "file": "notes.txt", "feed": "", "from_node": "a"},
        {"event": event, "file": claimed.name, "feed": "transactions", "from_node": "a"}]


def test_a_lease_that_runs_out_during_the_load_is_refused_at_its_commit(
        two_nodes: tuple[Settings, Settings]) -> None:
    """The commit checks the lease against the clock now, not against the time its
    transaction began (when the lease was still live)."""
    a_settings, _ = two_nodes
    with opened(a_settings) as a:
        table, _claimed, ticket, load = claimed_day(a, a_settings, "2026-06-02")
        assert backends.on_postgresql(a_settings)
        with pytest.raises(ClaimLost), a.staged(TRANSACTIONS, table.to_batches()) as staged:
            # The transaction is open; the lease ends now, after it began.
            kept = backends.books_of(backends.server_of(a_settings))
            with psycopg.connect(backends.server_of(a_settings), autocommit=True) as admin:
                admin.execute(f"UPDATE {kept.claims} SET lease_until = clock_timestamp()"
                              .encode())
            staged.commit(load, MergePlan(True, True, ticket=ticket))
        assert fact_rows_in(a_settings) == [] and ledger_in(a_settings) == []


def _client_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` holds open (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with suppress(OSError):
            target = fd.readlink().name
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _terminate_when(url: str, daemon_pid: int, phase: str, timeout: float = 60.0) -> int:
    """Wait until a session of the daemon `daemon_pid` runs a statement starting `phase`,
    then have the server end that session; the pid ended.

    The session is found by its client port among the daemon's own sockets: other tests
    (and other runs) on the same server load into tables of the same name, and ending one
    of theirs made this test wait for a retry that never came. The fact table is held in
    SHARE mode meanwhile, so the load's INSERT waits and can not commit between the
    moment the statement is seen and the moment its session is ended.
    """
    with psycopg.connect(url, autocommit=True) as admin, psycopg.connect(url) as holder:
        holder.execute('LOCK TABLE "fact_transactions" IN SHARE MODE')
        found: list[Any] = []

        def running() -> bool:
            found[:] = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE state = 'active' "
                "AND query LIKE %s AND client_port = ANY(%s)",
                (phase + "%", sorted(_client_ports(daemon_pid)))).fetchall()
            return bool(found)

        wait_until(running, f"a session running {phase}", timeout)
        [(pid,)] = found
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        holder.rollback()
        return int(pid)


@pytest.mark.parametrize("phase", ["COPY", 'INSERT INTO "fact_transactions"'])
def test_a_session_the_server_ends_mid_load_loses_nothing(
        settings: Settings, tmp_path: Path, start_daemon: Start, phase: str) -> None:
    daemon = start_daemon()
    table = day_table("2026-07-01", 400_000)
    assert backends.on_postgresql(settings)
    url = backends.server_of(settings)
    with ThreadPoolExecutor(1) as pool:
        # Started first: the lock must be held before the load can reach its merge.
        ended = pool.submit(_terminate_when, url, daemon.proc.pid, phase)
        wait_until(lambda: _share_lock_held(url), "the fact table held in SHARE mode")
        drop(prepared(tmp_path, table, "transactions_2026-07-01.parquet"), settings.inbox)
        ended.result()
    [retry] = daemon.wait_for("file_retry_scheduled")
    assert retry["fault"] == "WarehouseUnavailable" and retry["stage"] in ("stage", "load")
    [done] = daemon.wait_for("file_processed", timeout=120)
    assert (done["rows"], done["inserted"]) == (400_000, 400_000)
    assert len(fact_rows_in(settings)) == 400_000
    assert [r["status"] for r in ledger_in(settings)] == ["processed"]
    assert daemon.stop() == 0


def _share_lock_held(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE mode = 'ShareLock' AND granted "
                           "AND relation = '\"fact_transactions\"'::regclass").fetchone()
    return row == (1,)


def test_status_and_the_page_list_the_nodes_with_heartbeat_and_file_in_hand(
        settings: Settings, tmp_path: Path, start_daemon: Start) -> None:
    # A longer lease than the other tests': this one loads a large file on two cores.
    busy = start_daemon("--node", "n0", "--http", "127.0.0.1:0", "--lease-seconds", "10",
                        log_name="n0.log")
    idle = start_daemon("--node", "n1", "--lease-seconds", "10", log_name="n1.log")
    big = contract.file_name_for("2026-08-01")
    drop(prepared(tmp_path, day_table("2026-08-01", 400_000), big), settings.inbox)
    assert backends.on_postgresql(settings)
    daemons = backends.books_of(backends.server_of(settings)).daemons
    with psycopg.connect(backends.server_of(settings), autocommit=True) as conn:
        wait_until(lambda: conn.execute(f"SELECT count(*) FROM {daemons} WHERE "
                                        "file_in_hand = %s".encode(),
                                        (big,)).fetchone() == (1,),
                   "a heartbeat reporting the big file in hand", timeout=60)
    argv = ["status", "--db", db_arg(settings), "--inbox", str(settings.inbox),
            "--failed", str(settings.failed)]
    _, out = run_cli([*argv, "--json"])
    nodes = json.loads(out)["nodes"]
    assert sorted(n["node"] for n in nodes) == ["n0", "n1"]
    assert all(n["alive"] and n["state"] == "alive" and n["heartbeat_at"] and
               n["lost_since"] is None for n in nodes), nodes
    assert [n["node"] for n in nodes if n["file_in_hand"] == big] in (["n0"], ["n1"])
    [loader] = [d for d in (busy, idle) if d.matching("file_claimed", file=big)]
    loader.wait_for("file_processed")
    assert idle.stop() == 0
    _, out = run_cli(argv)
    # Every node named in the header, stopped cleanly (not lost).
    assert "nodes         2 daemons: n0 alive, n1 stopped" in out
    [n1] = [line for line in out.splitlines() if line.startswith("n1 ")]
    assert n1.split()[1] == "stopped"
    [port] = [e["port"] for e in busy.matching("http_started")]
    page = urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
    assert '<section id="nodes">' in page and ">n1<" in page and ">stopped<" in page


def run_cli(argv: list[str]) -> tuple[int, str]:
    done = subprocess.run(process.daemon_argv(*argv), capture_output=True,
                          text=True, timeout=60, check=False, cwd=ROOT)
    return done.returncode, done.stdout


def test_a_second_daemon_under_a_node_name_in_use_elsewhere_is_refused(
        settings: Settings, tmp_path: Path, start_daemon: Start) -> None:
    first = start_daemon("--node", "same", log_name="first.log")
    second = start_daemon("--node", "same", "--work", str(tmp_path / "elsewhere"),
                          wait_started=False, log_name="second.log")
    assert second.proc.wait(timeout=60) == 3
    [refused] = second.matching("daemon_already_running")
    assert "node same is already running elsewhere" in refused["reason"]
    assert "--node" in refused["hint"]
    assert first.proc.poll() is None and first.stop() == 0
    # Once the first has stopped (its lease let go), the node may start elsewhere.
    third = start_daemon("--node", "same", "--work", str(tmp_path / "elsewhere"),
                         log_name="third.log")
    assert third.stop() == 0


# How a daemon's account of a file it detected ends.
ENDINGS = ("file_processed", "file_failed", "file_claimed_elsewhere", "file_vanished")


def accounted_for(daemon: DaemonProcess) -> bool:
    """Every file the daemon detected has an ending in its log."""
    events = daemon.events()
    detected = {e["file"] for e in events if e["event"] == "file_detected"}
    return detected <= {e["file"] for e in events if e["event"] in ENDINGS}


def test_a_file_another_daemon_claimed_is_not_vanished_and_a_deleted_one_is(
        settings: Settings, tmp_path: Path, start_daemon: Start) -> None:
    """Guards a found bug (issue 21): on a shared inbox, 240 files across 3 daemons gave
    474 `file_vanished` lines, one from each daemon that saw a file another claimed first.
    Both daemons here are paused while a burst is dropped, so that each sees every drop
    and they race for them; a file written in place (it settles for minutes) and deleted
    once both detected it is the one `file_vanished` of each."""
    nodes = ("s1", "s2")
    daemons = [start_daemon("--node", node, "--settle-seconds", "600", log_name=f"{node}.log")
               for node in nodes]
    doomed = settings.inbox / "transactions_2026-08-01.parquet"
    doomed.write_bytes(b"PAR1 still being written")
    for daemon in daemons:
        daemon.wait_for("file_detected", file=doomed.name)
    doomed.unlink()
    for daemon in daemons:
        daemon.wait_for("file_vanished", file=doomed.name)

    days = [f"2026-07-{d:02d}" for d in range(1, 31)]
    ready = [prepared(tmp_path, day_table(day, 20), contract.file_name_for(day)) for day in days]
    for daemon in daemons:
        daemon.proc.send_signal(signal.SIGSTOP)
    try:
        for path in ready:
            drop(path, settings.inbox)
    finally:
        for daemon in daemons:
            daemon.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: len(list(settings.processed.iterdir())) == len(days)
               and all(accounted_for(d) for d in daemons),
               "every drop archived and accounted for by both daemons", timeout=120)

    loaded = {node: {e["file"] for e in d.matching("file_processed")}
              for node, d in zip(nodes, daemons, strict=True)}
    assert sorted(loaded["s1"] | loaded["s2"]) == sorted(contract.file_name_for(d) for d in days)
    for daemon in daemons:
        assert [e["file"] for e in daemon.matching("file_vanished")] == [doomed.name]
    elsewhere = {node: d.matching("file_claimed_elsewhere")
                 for node, d in zip(nodes, daemons, strict=True)}
    assert elsewhere["s1"] or elsewhere["s2"], "the two daemons raced for no file"
    for node, other in (nodes, nodes[::-1]):
        for line in elsewhere[node]:
            assert line["file"] in loaded[other] and line["level"] == "info"
            assert line["by"] in (other, None)  # None: archived before it was looked for
    # SIGUSR1's status, the metrics' tally and the closing line count them apart.
    daemons[0].proc.send_signal(signal.SIGUSR1)
    [status] = daemons[0].wait_for("daemon_status")
    assert status["outcomes"]["claimed_elsewhere"] == len(elsewhere["s1"])
    for node, daemon in zip(nodes, daemons, strict=True):
        assert daemon.stop() == 0
        [stopped] = daemon.matching("daemon_stopped")
        assert (stopped["processed"], stopped["vanished"], stopped["claimed_elsewhere"]) == (
            len(loaded[node]), 1, len(elsewhere[node]))
