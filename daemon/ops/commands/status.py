"""The `status` command: is the daemon running, how have loads gone, what is waiting.

Prints `daemon.ops.overview`'s snapshot as aligned lines, a table of failed files and one of
sidecars left without their file, or as one JSON document. Where several feeds are
declared, each feed's loads have their line (and `feeds` in the JSON), and each failed
file its feed; `--feed` keeps to one feed's loads and failed files. The exit code is for cron and
monitoring: 1 while failed files wait in failed/ for a retry, 2 when there is no usable
database (what can be read without one, the lock and the directories, is still printed).
A failed file superseded since (its feed's run date loaded from a later drop) is listed
apart and needs no retry: `dismiss` clears it.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.config.invocation import CommandLine
from filedrop_etl.daemon import files
from filedrop_etl.daemon.ops import fleet, folders, overview, retries, superseded
from filedrop_etl.daemon.ops.commands import common, table
from filedrop_etl.daemon.warehouse import api

log = structlog.get_logger("daemon.commands")
REASON_WIDTH = 90

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
feed, given one) wait in failed/ for `retry`; 2 bad usage or configuration, or no usable
database (the rest of the status is still printed).
"""


LOST_HINT = ("lost: the lease ran out without a clean stop (killed, its host down or "
             "frozen, cut off from the server); the daemons alive take over the files it held. "
             "Start each again under its --node to bring it back; to retire one, start it "
             "and stop it once.")


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
    missing = None
    feed = None if args.feed is None else common.feeds_of(settings, args.feed)[0].name
    grouped = common.grouped(settings, args.feed)
    line = common.suggested(args)
    if common.database_named(settings):
        with common.reading(settings) as history:
            snapshot = overview.gather(settings, history, now, feed=feed, per_feed=grouped)
    else:
        missing = common.database_missing(settings)
        snapshot = overview.gather(settings, None, now, feed=feed)
    code = (common.EXIT_PROBLEM if missing else
            common.EXIT_OK if snapshot.healthy else common.EXIT_ATTENTION)
    if args.json:
        document = {**_document(snapshot, code, settings, line),
                    "last_success": common.load_json(snapshot.last_success, settings)}
        if len(settings.feeds) > 1:
            document = _with_feeds(document, snapshot, settings, feed)
        table.emit_json(document)
    else:
        table.emit(_text(snapshot, settings, grouped, line))
    if missing is not None:
        log.error("database_unavailable", db=settings.where, reason=missing.message,
                  hint=missing.hint)
    return code


def _failed_json(f: folders.FailedFile, s: overview.Overview, settings: Settings,
                 line: CommandLine) -> dict[str, object]:
    """A failed file as the JSON has it: the commands that show it and send it back, as
    they run from any folder (its retry under the name it most likely meant where its
    own can never load; null where no name is plain), the load that superseded it (or
    null, and then no `dismiss` command) and that likely name (or null)."""
    refusal = retries.name_refusal(f, settings.feeds, line)
    likely = retries.suggested_name(f, settings.feeds)
    stale = s.superseded.get(f.name)
    retry = (line("retry", files=[f.name]) if refusal is None else
             None if likely is None else line("retry", files=[f.name], then=("--as", likely)))
    return {**table.record(f), "retry": retry, "show": line("show", files=[f.name]),
            "dismiss": None if stale is None else line("dismiss", files=[f.name]),
            "superseded_by": common.load_json(stale, settings), "suggested_name": likely}


def _document(s: overview.Overview, code: int, settings: Settings,
              line: CommandLine) -> dict[str, object]:
    return {
        "daemon": {"running": s.daemon.held, "pid": s.daemon.pid,
                   "lock_file": str(s.daemon.path)},
        "database": {"path": str(s.db), "exists": s.schema_version is not None,
                     "schema_version": s.schema_version},
        "today": {"date": s.today, **vars(s.loads_today)} if s.loads_today else None,
        "total": vars(s.loads_total) if s.loads_total else None,
        "last_success": s.last_success,
        "loads_in_the_future": s.loads_in_the_future,
        # The daemon's own account of its folders at its last start (null before one).
        "recorded": s.recorded,
        # Every daemon on the warehouse: on PostgreSQL, with its heartbeat and file in hand.
        # `state`: alive, stopped (cleanly) or lost (its lease ran out), since `lost_since`;
        # the file in hand only while the node still holds its claim.
        "nodes": [{"node": d.node, "pid": d.pid, "started_at": d.started_at,
                   "alive": d.alive, "state": d.state, "lost_since": d.lost_since,
                   "heartbeat_at": d.heartbeat_at,
                   "file_in_hand": d.file_in_hand, "work": d.work} for d in s.nodes],
        # A count of a folder that does not exist is null, and `exists` says why.
        "inbox": {"path": str(s.inbox), "exists": s.waiting is not None,
                  "waiting": s.waiting, "in_flight": s.in_flight,
                  "work": str(s.work), "work_exists": s.in_flight is not None},
        "failed": {"path": str(s.failed_dir), "exists": s.failed_exists,
                   "files": [_failed_json(f, s, settings, line) for f in s.failed],
                   "to_retry": len(s.to_retry), "superseded": len(s.superseded),
                   "leftover_sidecars": [
                       {"sidecar": files.display_name(str(x.sidecar.path)), "file": x.sidecar.name,
                        "retry_id": x.retry.id if x.retry else None,
                        "hint": _leftover_hint(x, line)}
                       for x in s.leftovers]},
        "exit_code": code,
    }


def _with_feeds(document: dict[str, object], s: overview.Overview, settings: Settings,
                feed: str | None) -> dict[str, object]:
    """The document of several declared feeds: the feed asked for (null: every one),
    each feed's loads (unless one was asked for), and each failed file's feed."""
    failed = document["failed"]
    assert isinstance(failed, dict) and isinstance(failed["files"], list)
    files_ = [{**f, "feed": settings.feeds.name_of(str(f["original"]))}
              for f in failed["files"]]
    out = {"feed": feed, **document, "failed": {**failed, "files": files_}}
    if s.feeds:
        out["feeds"] = {f.feed: {"today": vars(f.loads_today), "total": vars(f.loads_total),
                                 "last_success": common.load_json(f.last_success, settings)}
                          for f in s.feeds}
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _files(tally: api.Tally) -> str:
    return f"{_count(tally.processed, 'file')} processed, {tally.failed} failed"


def _last(last: api.Load | None) -> str:
    return ("never" if last is None else
            f"{table.when(last.finished_at)}  {last.file_name} ({last.rows} rows)")


def _inbox(s: overview.Overview, settings: Settings) -> str:
    """The inbox's line: what waits there and in flight, or which folder is not there."""
    if s.waiting is None:
        return (f"{s.inbox} does not exist ({common.folder_source(settings, 'inbox')}): "
                "nothing can wait there")
    flight = (f"{s.in_flight} in flight" if s.in_flight is not None else
              f"none in flight: the work directory {s.work} does not exist "
              f"({common.folder_source(settings, 'work')})")
    return f"{s.waiting} waiting, {flight} ({s.inbox})"


def _failed_line(s: overview.Overview, settings: Settings) -> str:
    if not s.failed_exists:
        return (f"{s.failed_dir} does not exist ({common.folder_source(settings, 'failed')}): "
                "no file can wait there for a retry")
    return (f"{len(s.to_retry)} waiting for a retry"
            + (f", {len(s.superseded)} superseded" if s.superseded else "")
            + f" ({s.failed_dir})")


def _text(s: overview.Overview, settings: Settings, grouped: bool,
          line: CommandLine) -> str:
    daemon = (f"running, pid {s.daemon.pid or 'unknown'}" if s.daemon.held
              else "not running") + f" (lock {s.daemon.path})"
    last = s.last_success
    lines: list[tuple[str, table.Cell]] = [
        ("daemon", daemon),
        # On a shared warehouse, right below this node's own: every node, the lost first.
        *([("nodes", fleet.summary(s.nodes))] if fleet.shared(s.nodes) else []),
        ("database", str(s.db) if s.schema_version is not None
         else f"none yet at {s.db}"),
    ]
    if s.loads_today is not None and s.loads_total is not None:
        lines += [
            ("today", f"{_files(s.loads_today)} ({_count(s.loads_today.loads, 'load')}, "
                      f"{s.today} UTC)"),
            ("in all", f"{_files(s.loads_total)} ({_count(s.loads_total.loads, 'load')})"),
            ("last success", _last(last)),
        ]
        # Each feed's part of the loads, where several feeds are counted together.
        lines += [(f"feed {f.feed}", f"today {_files(f.loads_today)}; in all "
                   f"{_files(f.loads_total)}; last success {_last(f.last_success)}")
                  for f in s.feeds]
    if s.loads_in_the_future:
        lines.append(("clock", f"{_count(s.loads_in_the_future, 'load')} recorded as "
                      "finished later than now: the clock ran ahead and was set back "
                      "(not counted today, nor as the last success)"))
    lines += [
        ("inbox", _inbox(s, settings)),
        ("failed", _failed_line(s, settings)),
    ]
    if s.recorded is not None:
        made, at = s.recorded.created, table.when(s.recorded.started_at)
        shown = {"inbox": s.inbox, "work": s.work, "failed": s.failed_dir}
        others = [f"{name} {getattr(s.recorded, name)}" for name, path in shown.items()
                  if str(path) != getattr(s.recorded, name)]
        said = (f"not all the daemon's: at its start {at} it recorded {', '.join(others)}"
                if others else f"the daemon's, as it recorded them at its start {at}")
        said += f" (pid {s.recorded.pid} on {s.recorded.node})"
        if made:
            said += f"; that start created {', '.join(made)}"
        lines.append(("folders", said))
    if s.leftovers:
        lines.append(("leftovers", f"{_count(len(s.leftovers), 'sidecar')} without a file "
                                   "in failed/"))
    text = table.pairs(lines)
    if s.to_retry:
        # Each failed file's feed (by its name), where several feeds are listed together.
        feeds = [(settings.feeds.name_of(f.original),) if grouped else () for f in s.to_retry]
        rows = [(*feed, f.name, table.when(f.attempted_at), f.stage,
                 table.short(f.reason, REASON_WIDTH)) for f, feed in zip(s.to_retry, feeds,
                                                                         strict=True)]
        text += ("\n\n" + table.render(
            (*(("feed",) if grouped else ()), "file", "failed at", "stage", "reason"), rows)
                 + ("\n\n" + _next_steps(s.to_retry, settings, line) if s.to_retry else ""))
        # `retry` refuses these under their own names: they would only fail again.
        for f in s.to_retry:
            refusal = retries.name_refusal(f, settings.feeds, line)
            if refusal is not None:
                text += "\n" + table.safe(f"{f.name} cannot be retried under its own name "
                                          f"({retries.NAME_NEVER_LOADS}): {refusal[1]}")
    if s.superseded:
        text += ("\n\n" + table.render(
            ("superseded", "failed at", "its run date loaded since by"),
            [(f.name, table.when(f.attempted_at), superseded.described(s.superseded[f.name]))
             for f in s.failed if f.name in s.superseded])
                 + "\n\na later drop of their run dates has loaded: they need no retry "
                 "(it would put their older bytes over that load); "
                 f"`{line('dismiss', '--superseded')}` clears them, recorded")
    if s.leftovers:
        text += "\n\n" + table.render(
            ("sidecar without its file", "retry id", "what to do"),
            [(x.sidecar.name + files.SIDECAR_SUFFIX, x.retry.id if x.retry else None,
              _leftover_hint(x, line)) for x in s.leftovers])
    if fleet.shared(s.nodes):
        text += "\n\n" + table.render(
            ("node", "state", "last heartbeat", "file in hand", "pid"),
            [(d.node, fleet.state(d), table.when(d.heartbeat_at),
              d.file_in_hand or "-", d.pid) for d in s.nodes])
        lost = [d.node for d in fleet.lost(s.nodes)]
        if lost:
            text += "\n\n" + table.safe(f"{', '.join(lost)} {'is' if len(lost) == 1 else 'are'} "
                                        + LOST_HINT)
    return text


def _next_steps(failed: list[folders.FailedFile], settings: Settings,
                line: CommandLine) -> str:
    """The commands to read a failed file's story and to retry it, each as it runs from
    any folder; a file's own name where only one waits."""
    name = failed[0].name if len(failed) == 1 else "FILE"
    steps: list[tuple[str, table.Cell]] = [("the whole story", line("show", files=[name]))]
    if any(retries.name_refusal(f, settings.feeds, line) is None for f in failed):
        steps += [("once the cause is fixed", line("retry", files=[name])),
                  ("or every failed file", line("retry", "--all"))]
    return table.pairs(steps)


def _leftover_hint(x: overview.Leftover, line: CommandLine) -> str:
    if x.retry is not None:
        return (f"left by a retry that sent its file back as {x.retry.file_name}: "
                f"`{line('retry', '--all')}` removes it")
    # The daemon writes a sidecar just before it moves the file in: a file in flight may
    # be that file, which the daemon finishes moving itself.
    return ("no retry recorded it: unless a file is in flight, its file was moved out by "
            "hand; read it, then remove it by hand")
