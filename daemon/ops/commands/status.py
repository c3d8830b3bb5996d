"""The `status` command: is the daemon running, how have loads gone, what is waiting.

Owns the command: its parser, its exit code, and what it logs. It prints
`daemon.ops.overview`'s snapshot as aligned lines and tables
(`daemon.ops.commands.status_text`) or as one JSON document
(`daemon.ops.commands.status_json`). Where several feeds are declared, each feed's loads
have their line (and `feeds` in the JSON), and each failed file its feed; `--feed` keeps
to one feed's loads and failed files. The exit code is for cron and monitoring: 1 while
failed files wait in failed/ for a retry, 2 when there is no usable database or a folder
it counts (the inbox, the work directory, failed/) does not exist: the status is still
printed, saying which is not there, never counting it as 0. A failed file superseded
since (its feed's run date loaded from a later drop) is listed apart and needs no retry:
`dismiss` clears it.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.daemon.ops import overview
from filedrop_etl.daemon.ops.commands import common, status_json, status_text, table

log = structlog.get_logger("daemon.commands")
# The folders `status` counts the files of: each must exist, or it exits 2.
FOLDERS = ("inbox", "work", "failed")

EPILOG = """\
examples:
  filedrop-etl status
  filedrop-etl status --json | jq '.failed.files[] | {name, reason}'
  filedrop-etl status --feed orders
  filedrop-etl status --db /srv/etl/etl.db || alert "filedrop-etl needs attention"

Files today and in all count each file once (its name as dropped, as load_history has
it), by its latest attempt in the period: processed if that one loaded, else failed.
Loads count the attempts: a file that failed, was retried and failed again is 1 failed
file and 2 loads. Today is attempts finished since midnight UTC and not later than
now (a load recorded later, by a clock that ran ahead, counts in all only); the JSON's
`processed` and `failed` are files, `loads` the attempts. (The daemon's own tally, in
etl_files_total and daemon_stopped, counts attempts since it started.) A file "in
flight" is claimed by the daemon (in the work directory): being loaded now, or resumed
at the next start.

A failed file is superseded when its feed's run date has loaded since from a later drop
(the producer sent it again): it is listed apart, counted in the JSON's
failed.superseded (each file's superseded_by names the load), and does not make the exit
code 1; `retry` would put its older bytes over that load: `dismiss --superseded` clears
them, with a record. A file whose name can never load has its likely name in the JSON's
suggested_name: `retry NAME --as` it.

A sidecar left in failed/ without its file (leftovers) was left by a retry cut short
between its move and the sidecar's removal, which `retry --all` finishes, or by a file
moved out by hand: read it, then remove it yourself.

The commands it suggests (and each failed file's `retry` and `show` in the JSON) carry
the options that find this daemon from any folder: --config FILE when a config file was
read, else --db, and the folders a flag or an ETL_ variable set; paths absolute. A folder
that does not exist is said to, never counted as 0 (in the JSON: `exists` false, its
counts null).

With --feed NAME, the loads and the failed files are that feed's (a failed file's feed
is the one its name matches); the inbox, the daemon and the nodes are everyone's.

exit codes: 0 all well (superseded files need no retry); 1 failed files (of --feed's
feed, given one) wait in failed/ for `retry`; 2 bad usage or configuration, no usable
database, or the inbox, the work directory or failed/ does not exist (the rest of the
status is still printed).
"""



def add(commands: common.Subcommands,
        shared: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "status", parents=[shared], formatter_class=common.Help, epilog=EPILOG,
        help="is the daemon running; loads today and in all; files waiting and failed",
        description="Whether a daemon is running on this database (its lock, and its "
        "pid), files processed and failed today (UTC) and in all, the last success, "
        "files waiting in the inbox, and the failed files with their reasons. Reads "
        "only: a running daemon is not disturbed.")
    common.add_feed(parser)
    common.add_json(parser)



def run(settings: Settings, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    unavailable = None
    feed = None if args.feed is None else common.feeds_of(settings, args.feed)[0].name
    grouped = common.grouped(settings, args.feed)
    line = common.suggested(args)
    if common.database_named(settings):
        with common.reading(settings) as history:
            snapshot = overview.gather(settings, history, now, feed=feed, per_feed=grouped)
    else:
        unavailable = common.database_missing(settings)
        snapshot = overview.gather(settings, None, now, feed=feed)
    # Without a database that is the news (the lines say which folders are not there);
    # with one, a folder that is not there is: its files cannot be counted.
    missing = [] if unavailable else common.missing_folders(settings, FOLDERS)
    code = (common.EXIT_PROBLEM if unavailable or missing else
            common.EXIT_OK if snapshot.healthy else common.EXIT_ATTENTION)
    if args.json:
        table.emit_json(status_json.document(snapshot, code, settings, line, feed))
    else:
        table.emit(status_text.text(snapshot, settings, grouped, line))
    if unavailable is not None:
        log.error("database_unavailable", db=settings.where, reason=unavailable.message,
                  hint=unavailable.hint)
    for folder in missing:
        log.error("command_failed", reason=folder.message, hint=folder.hint)
    return code
