"""The `status` command's text: aligned lines and tables for a person.

Owns how `daemon.ops.overview`'s snapshot reads on a terminal: the daemon and the nodes,
the database, the loads (each feed's where several are declared), the inbox and failed/
(a folder that does not exist is said not to, with the rule that gave its path, never
counted as 0), the failed files with their reasons and the commands to run next, those
superseded apart, the sidecars left without their file, and the lost daemons. Every
command it suggests finds this daemon from any folder (`config.invocation`). The JSON
is `daemon.ops.commands.status_json`'s.
"""

from __future__ import annotations

from filedrop_etl.config import Settings, paths
from filedrop_etl.config.invocation import CommandLine
from filedrop_etl.daemon import files
from filedrop_etl.daemon.ops import fleet, folders, overview, retries, superseded
from filedrop_etl.daemon.ops.commands import table
from filedrop_etl.daemon.warehouse import api

REASON_WIDTH = 90

LOST_HINT = ("lost: the lease ran out without a clean stop (killed, its host down or "
             "frozen, cut off from the server); the daemons alive take over the files it held. "
             "Start each again under its --node to bring it back; to retire one, start it "
             "and stop it once.")



def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _files(tally: api.Tally) -> str:
    return f"{_count(tally.processed, 'file')} processed, {tally.failed} failed"


def _last(last: api.Load | None) -> str:
    return ("never" if last is None else
            f"{table.when(last.finished_at)}  {last.file_name} ({last.rows} rows)")


def _inbox(s: overview.Overview, settings: Settings) -> str:
    """The inbox's line: what waits there and in flight, or which folder is not there
    (with the rule that gave its path: `config.paths.shown`)."""
    if s.waiting is None:
        return f"{paths.shown(settings, 'inbox')} does not exist: nothing can wait there"
    flight = (f"{s.in_flight} in flight" if s.in_flight is not None else
              f"none in flight: the work directory {paths.shown(settings, 'work')} does "
              "not exist")
    return f"{s.waiting} waiting, {flight} ({s.inbox})"


def _failed_line(s: overview.Overview, settings: Settings) -> str:
    if not s.failed_exists:
        return (f"{paths.shown(settings, 'failed')} does not exist: no file can wait there "
                "for a retry")
    return (f"{len(s.to_retry)} waiting for a retry"
            + (f", {len(s.superseded)} superseded" if s.superseded else "")
            + f" ({s.failed_dir})")


def text(s: overview.Overview, settings: Settings, grouped: bool,
          line: CommandLine) -> str:
    daemon = (f"running, pid {s.daemon.pid or 'unknown'}" if s.daemon.held
              else "not running") + f" (lock {s.daemon.path})"
    last = s.last_success
    lines: list[tuple[str, table.Cell]] = [
        ("daemon", daemon),
        # On a shared warehouse, right below this node's own: every node, the lost first.
        *([("nodes", fleet.summary(s.nodes))] if fleet.shared(s.nodes) else []),
        ("database", str(s.db) if s.schema_version is not None
         else f"none yet at {paths.shown(settings, 'db')}"),
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
              leftover_hint(x, line)) for x in s.leftovers])
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



def leftover_hint(x: overview.Leftover, line: CommandLine) -> str:
    if x.retry is not None:
        return (f"left by a retry that sent its file back as {x.retry.file_name}: "
                f"`{line('retry', '--all')}` removes it")
    # The daemon writes a sidecar just before it moves the file in: a file in flight may
    # be that file, which the daemon finishes moving itself.
    return ("no retry recorded it: unless a file is in flight, its file was moved out by "
            "hand; read it, then remove it by hand")
