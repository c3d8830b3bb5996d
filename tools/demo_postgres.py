"""`make demo-postgres`: the three-run scenario on PostgreSQL, two daemons sharing the inbox.

Needs a PostgreSQL server: `POSTGRES_URL` (default: the local one as user postgres,
database postgres) names a database the demo may create a schema in. It makes a fresh
schema `filedrop_demo` there, starts two daemons (nodes `demo-a` and `demo-b`) on one
`.demo-postgres/inbox`, generates 2026-02-10, the same day again, then 2026-02-11, and
waits for each to be archived by whichever daemon took it. It prints who loaded what,
the ledger, the customer totals and `status` with both nodes, then stops both daemons.
Exits non-zero if a step misbehaves (a re-run that changed a row, a file loaded twice).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from filedrop_etl.daemon.warehouse.postgresql import books
from tools.harness import process
from tools.harness.logtail import events_in

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo-postgres"
SCHEMA = "filedrop_demo"
RUNS = ("2026-02-10", "2026-02-10", "2026-02-11")
NODES = ("demo-a", "demo-b")
TIMEOUT_SECONDS = 60.0


def events(log: Path) -> list[dict[str, object]]:
    return events_in(log)


def outcomes() -> list[tuple[str, dict[str, object]]]:
    found = [(node, e) for node in NODES for e in events(DEMO / f"{node}.log")
             if e["event"] in ("file_processed", "file_failed")]
    return sorted(found, key=lambda pair: str(pair[1]["timestamp"]))


def swept(log: Path) -> bool:
    return any(e["event"] == "inbox_swept" for e in events(log))


def archived(count: int) -> bool:
    return len(outcomes()) >= count


def wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo-postgres: timed out waiting for {what}; see {DEMO}/*.log")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo_postgres", description=__doc__)
    parser.add_argument("url", help="postgresql://USER@HOST:PORT/DBNAME")
    server = parser.parse_args(argv).url
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as admin:
            # With the daemons' bookkeeping schema beside it, from an earlier run.
            for name in (SCHEMA, books.default_for(SCHEMA)):
                admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    except psycopg.Error as exc:
        raise SystemExit(f"demo-postgres: cannot use {server}: {str(exc).strip()}; give a "
                         "server and database with POSTGRES_URL=postgresql://USER@HOST:"
                         "PORT/DBNAME (the user needs CREATE on that database)") from None
    joiner = "&" if "?" in server else "?"
    url = f"{server}{joiner}options={quote(f'-csearch_path={SCHEMA}')}"
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    inbox = DEMO / "inbox"
    shared = ["--inbox", str(inbox), "--processed", str(DEMO / "processed"),
              "--failed", str(DEMO / "failed"), "--db", url]
    daemons = []
    for node in NODES:
        argv_ = process.daemon_argv(*shared, "--node", node)
        print("$ filedrop-etl " + " ".join(argv_[3:]) + f"  > .demo-postgres/{node}.log")
        daemons.append(process.start(argv_, DEMO / f"{node}.log"))
    try:
        for node in NODES:
            wait_for(f"{node} to start", partial(swept, DEMO / f"{node}.log"))
        for number, day in enumerate(RUNS, start=1):
            print(f"\n[run {number}] $ filedrop-etl-generate --date {day} "
                  "--inbox .demo-postgres/inbox")
            subprocess.run([sys.executable, "-m", "filedrop_etl.generator", "--date", day,
                            "--inbox", str(inbox)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            wait_for(f"run {number} to be archived", partial(archived, number))
            node, event = outcomes()[number - 1]
            print(f"[run {number}] {node}: " + json.dumps({k: event.get(k) for k in (
                "event", "file", "rows", "inserted", "updated", "unchanged", "duration_ms")}))
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        codes = [process.wait(daemon, timeout=TIMEOUT_SECONDS) for daemon in daemons]
    print(f"\nboth daemons stopped by SIGTERM, exit codes {codes}")

    with psycopg.connect(url) as conn:
        ledger = conn.execute(
            "SELECT id, file_name, status, rows, inserted, updated, unchanged, node "
            "FROM load_history ORDER BY id").fetchall()
        report = conn.execute(
            "SELECT customer_id, count(*), round(sum(amount)::numeric, 2) AS total "
            "FROM fact_transactions GROUP BY customer_id ORDER BY total DESC").fetchall()
        [(fact_rows,)] = conn.execute("SELECT count(*) FROM fact_transactions").fetchall()
    print("\nLedger (load_history):")
    print("  run  file_name                        status     rows  inserted  updated  unchanged"
          "  node")
    for row in ledger:
        print("  {:>3}  {:<31}  {:<9} {:>5} {:>9} {:>8} {:>10}  {}".format(*row))
    print(f"\nCustomer totals ({fact_rows} rows in fact_transactions):")
    for customer, count, total in report:
        print(f"  customer {customer:>5}  {count:>3} transactions  {total:>10}")
    status = subprocess.run(process.daemon_argv("status", *shared), cwd=ROOT,
                            text=True, capture_output=True, check=False)
    print("\n$ filedrop-etl status " + " ".join(shared))
    print(status.stdout + status.stderr, end="")
    ok = (codes == [0, 0] and [r[2] for r in ledger] == ["processed"] * 3
          and (ledger[1][4], ledger[1][5]) == (0, 0) and fact_rows == 50
          and len(list((DEMO / "processed").iterdir())) == 3)
    print("\n" + ("OK: two daemons shared the inbox; each file loaded once; the re-run of "
                  "2026-02-10 inserted 0 and updated 0 rows."
                  if ok else "FAILED: the scenario did not behave as expected."))
    print(f"Data is in the schema {SCHEMA} of {server} (the daemons' own tables in "
          f"{books.default_for(SCHEMA)}); logs in .demo-postgres/")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
