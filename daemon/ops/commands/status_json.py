"""The `status` command's JSON document: one object for jq and monitoring scripts.

Owns the document's shape, `daemon.ops.overview`'s snapshot as data: the daemon and the
nodes, the database, the loads (each feed's where several are declared), the inbox and
failed/ (a folder that does not exist has `exists` false and null counts, never 0), each
failed file with the commands that show, retry or dismiss it as they run from any folder,
and the exit code. The text is `daemon.ops.commands.status_text`'s.
"""

from __future__ import annotations

from filedrop_etl.config import Settings
from filedrop_etl.config.invocation import CommandLine
from filedrop_etl.daemon import files
from filedrop_etl.daemon.ops import folders, overview, retries
from filedrop_etl.daemon.ops.commands import common, status_text, table


def document(s: overview.Overview, code: int, settings: Settings, line: CommandLine,
             feed: str | None) -> dict[str, object]:
    """The whole document: `feed` the one asked for (None: every one)."""
    out = {**_document(s, code, settings, line),
           "last_success": common.load_json(s.last_success, settings)}
    return _with_feeds(out, s, settings, feed) if len(settings.feeds) > 1 else out


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
                   # Null, as a count of a folder not there is: nothing to count, not zero.
                   "to_retry": len(s.to_retry) if s.failed_exists else None,
                   "superseded": len(s.superseded) if s.failed_exists else None,
                   "leftover_sidecars": [
                       {"sidecar": files.display_name(str(x.sidecar.path)), "file": x.sidecar.name,
                        "retry_id": x.retry.id if x.retry else None,
                        "hint": status_text.leftover_hint(x, line)}
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
