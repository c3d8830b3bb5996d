"""The operator's commands find the daemon's folders from the daemon itself.

Guards a found bug: `status --db /srv/etl/etl.db || alert` could never alert. Run from
another directory with only `--db`, `status` looked for failed/ and the inbox under the
current directory, found none, counted 0 failed files and exited 0 while the daemon had
failed files waiting: the README's own cron example. The daemon now records its folders
in the database at each start (`daemons`), and says which of them it had to create.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from filedrop_etl.config import Settings
from tests.conftest import DaemonProcess, drop

Start = Callable[..., DaemonProcess]
SCRIPT = Path(sys.executable).with_name("filedrop-etl")
BAD = "transactions_2026-03-01.parquet"


def status(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`filedrop-etl status` as a cron job runs it: from elsewhere, with only these flags
    (and none of the variables a test run may have set)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([str(SCRIPT), "status", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_status_with_only_the_database_finds_the_daemons_failed_files(
        tmp_path: Path, settings: Settings, start_daemon: Start) -> None:
    daemon = start_daemon()
    outside = tmp_path / "outbox" / BAD
    outside.parent.mkdir()
    outside.write_bytes(b"not parquet")
    drop(outside, settings.inbox)
    daemon.wait_for("file_failed", file=BAD)
    elsewhere = tmp_path / "cron"
    elsewhere.mkdir()

    done = status(elsewhere, "--db", str(settings.db))
    assert done.returncode == 1, done.stdout + done.stderr  # a failed file waits: alert
    assert f"failed        1 waiting for a retry ({settings.failed})" in done.stdout
    assert "folders       the daemon's, as it recorded them at its start" in done.stdout
    document = json.loads(status(elsewhere, "--db", str(settings.db), "--json").stdout)
    assert [f["name"] for f in document["failed"]["files"]] == [BAD]
    assert document["recorded"]["failed"] == str(settings.failed)
    assert document["recorded"]["pid"] == daemon.proc.pid

    # A folder given that is not the daemon's is read, and reported as not the daemon's.
    other = tmp_path / "other-failed"
    other.mkdir()
    done = status(elsewhere, "--db", str(settings.db), "--failed", str(other))
    assert done.returncode == 0
    assert "folders       not all the daemon's: at its start" in done.stdout
    assert f"recorded failed {settings.failed} (pid" in done.stdout
    [note] = [json.loads(line) for line in done.stderr.splitlines()]
    assert (note["event"], note["folder"], note["given"], note["daemon"]) == (
        "folder_disagrees", "failed", str(other), str(settings.failed))
    # A folder that does not exist is an error, never "0 failed"; the rest is still
    # reported (issue 24: it printed nothing at all).
    done = status(elsewhere, "--db", str(settings.db), "--failed", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert (f"failed        {tmp_path / 'nope'} (failed from --failed) does not exist: no "
            "file can wait there for a retry") in done.stdout
    assert f"inbox         0 waiting, 0 in flight ({settings.inbox})" in done.stdout
    [error] = [json.loads(line) for line in done.stderr.splitlines()
               if json.loads(line)["event"] == "command_failed"]
    assert error["reason"] == (f"the failed directory {tmp_path / 'nope'} (failed from "
                               "--failed) does not exist")


def test_the_daemon_says_which_folders_it_made_and_status_repeats_it(
        tmp_path: Path, start_daemon: Start) -> None:
    mistyped = tmp_path / "srv" / "inbxo"
    mistyped.parent.mkdir()  # a missing parent is refused (`test_start_refusals`)
    daemon = start_daemon("--inbox", str(mistyped))
    [line] = daemon.matching("inbox_created")
    assert line["path"] == str(mistyped) and "typo" in line["hint"]
    assert line["origin"] == "inbox from --inbox"
    made = {e["event"] for e in daemon.events() if e["event"].endswith("_created")}
    assert made == {"inbox_created", "work_created", "processed_created", "failed_created"}
    done = status(tmp_path, "--db", str(daemon.settings.db))
    assert "that start created inbox, work, processed, failed" in done.stdout
    assert str(mistyped) in done.stdout
    assert daemon.stop() == 0
    # The next start makes nothing, and says nothing of it.
    again = start_daemon("--inbox", str(mistyped), log_name="again.log")
    assert not [e for e in again.events() if e["event"].endswith("_created")]
    assert "created" not in status(tmp_path, "--db", str(daemon.settings.db)).stdout


def test_status_says_the_daemons_recorded_folder_is_gone_and_still_reports(
        tmp_path: Path) -> None:
    """Issue 24, item 5: with a database, a missing failed/ (the daemon's, as it recorded
    it) made `status` print nothing, even with --json; it prints its report saying that
    folder is not there, never a count of 0 for it, and exits 2."""
    srv, elsewhere = tmp_path / "srv", tmp_path / "cron"
    (srv / "inbox").mkdir(parents=True)
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(srv)}
    ran = subprocess.run([str(SCRIPT), "run", "--once", "--inbox", "inbox", "--db", "etl.db"],
                         cwd=srv, env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert ran.returncode == 0, ran.stderr
    (srv / "failed").rmdir()
    db = str(srv / "etl.db")

    done = status(elsewhere, "--db", db)
    assert done.returncode == 2, done.stderr
    lines = dict(re.split(r"\s{2,}", x, maxsplit=1) for x in done.stdout.splitlines() if x)
    assert lines["failed"] == (f"{srv / 'failed'} (failed as the daemon recorded it at its "
                               "start) does not exist: no file can wait there for a retry")
    assert lines["inbox"] == f"0 waiting, 0 in flight ({srv / 'inbox'})"
    assert lines["in all"].startswith("0 files processed")
    [error] = [json.loads(x) for x in done.stderr.splitlines()]
    assert {k: error[k] for k in ("event", "reason")} == {
        "event": "command_failed",
        "reason": f"the failed directory {srv / 'failed'} (failed as the daemon recorded it "
                  "at its start) does not exist"}

    done = status(elsewhere, "--db", db, "--json")
    assert done.returncode == 2
    document = json.loads(done.stdout)
    assert (document["exit_code"], document["database"]["exists"]) == (2, True)
    assert {k: document["failed"][k] for k in ("exists", "files", "to_retry", "superseded")} \
        == {"exists": False, "files": [], "to_retry": None, "superseded": None}
    assert document["inbox"]["waiting"] == 0


def test_status_without_failed_gives_no_count_of_it_in_the_json(tmp_path: Path) -> None:
    """Issue 24, item 5: without a database or failed/, `failed.to_retry` and
    `failed.superseded` were 0, counts of a folder that is not there; null, as
    `inbox.waiting` is."""
    done = status(tmp_path, "--db", "etl.db", "--json")
    assert done.returncode == 2
    document = json.loads(done.stdout)
    assert (document["inbox"]["waiting"], document["failed"]["exists"]) == (None, False)
    assert (document["failed"]["to_retry"], document["failed"]["superseded"]) == (None, None)
