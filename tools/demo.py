"""`make demo`: the three-run scenario against a real daemon process.

Starts `python -m filedrop_etl` on a fresh `.demo/` folder, generates 2026-02-10, waits until
it is loaded, generates the same day again (deterministic, so an identical file), waits,
generates 2026-02-11, waits; prints the ledger and the customer-totals report, then stops
the daemon with SIGTERM. Exits non-zero if any step misbehaves, including a re-run that
changed a row. Uses both programs only as subprocesses, as a user would.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path

import pandas as pd

from tools.harness import process
from tools.harness.logtail import events_in

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
DB = DEMO / "etl.db"
RUNS = ("2026-02-10", "2026-02-10", "2026-02-11")
TIMEOUT_SECONDS = 30.0


def wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}; see {DEMO / 'daemon.log'}")
        time.sleep(0.05)


def outcome_events(log_path: Path) -> list[dict[str, object]]:
    """The daemon's canonical per-file lines, written once a file is archived."""
    return [e for e in events_in(log_path) if e["event"] in ("file_processed", "file_failed")]


def outcomes_logged(log_path: Path, count: int) -> bool:
    return len(outcome_events(log_path)) >= count


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    inbox = DEMO / "inbox"
    log_path = DEMO / "daemon.log"
    daemon_argv = process.daemon_argv(
        "--inbox", str(inbox), "--processed", str(DEMO / "processed"),
        "--failed", str(DEMO / "failed"), "--db", str(DB))
    print("$ " + " ".join(["python", *daemon_argv[1:]]) + f"  > {log_path.relative_to(ROOT)}")
    daemon = process.start(daemon_argv, log_path)
    try:
        wait_for("the daemon to start",
                 lambda: any(e["event"] == "daemon_started" for e in events_in(log_path)))
        for number, day in enumerate(RUNS, start=1):
            argv = [sys.executable, "-m", "filedrop_etl.generator", "--date", day,
                    "--inbox", str(inbox)]
            print(f"\n[run {number}] $ filedrop-etl-generate --date {day} "
                  f"--inbox {inbox.relative_to(ROOT)}")
            subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            wait_for(f"run {number} to be archived", partial(outcomes_logged, log_path, number))
            event = outcome_events(log_path)[number - 1]
            print(f"[run {number}] daemon: " + json.dumps({k: event.get(k) for k in (
                "event", "file", "rows", "inserted", "updated", "unchanged", "deleted",
                "duration_ms")}))
    finally:
        code = process.stop(daemon, timeout=TIMEOUT_SECONDS)
    print(f"\ndaemon stopped by SIGTERM, exit code {code}")

    with closing(sqlite3.connect(f"file:{DB}?mode=ro", uri=True)) as conn:
        ledger = pd.read_sql_query(
            "SELECT id AS run, file_name, status, rows, inserted, updated, unchanged, deleted "
            "FROM load_history ORDER BY id", conn)
        report = pd.read_sql_query(
            "SELECT customer_id, COUNT(*) AS transactions, ROUND(SUM(amount), 2) AS total "
            "FROM fact_transactions GROUP BY customer_id ORDER BY total DESC", conn)
        fact_rows = conn.execute("SELECT COUNT(*) FROM fact_transactions").fetchone()[0]
    print("\nLedger (load_history):")
    print(ledger.to_string(index=False))
    print(f"\nCustomer totals ({fact_rows} rows in fact_transactions):")
    print(report.to_string(index=False))

    # The operator's view of the same installation: the console script's `status`.
    status_argv = [*daemon_argv[:3], "status", *daemon_argv[3:]]
    print("\n$ " + " ".join(["filedrop-etl", *status_argv[3:]]))
    status = subprocess.run(status_argv, cwd=ROOT, text=True, capture_output=True,
                            check=False)
    print(status.stdout + status.stderr, end="")

    rerun = ledger.iloc[1]
    ok = (code == 0 and list(ledger["status"]) == ["processed"] * 3
          and rerun["inserted"] == 0 and rerun["updated"] == 0 and fact_rows == 50
          and status.returncode == 0)
    print("\n" + ("OK: the re-run of 2026-02-10 inserted 0 and updated 0 rows."
                  if ok else "FAILED: the scenario did not behave as expected."))
    print(f"Data is in {DEMO.relative_to(ROOT)}/ (git-ignored); daemon log: "
          f"{log_path.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
