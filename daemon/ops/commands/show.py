"""The `show` command: the whole story of one file.

Every attempt at the file with its counts, every retry of it, and, while it waits in
failed/, what its sidecar says and the way out: its retry (under the name it most likely
meant, where its own can never load), or, for a file superseded since (its run date
loaded from a later drop), `dismiss`. Each command it suggests carries the options that
find this daemon from any folder. It reads only. Where several feeds are declared, the
file's feed is named.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from filedrop_etl.config import Settings
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.config.invocation import CommandLine
from filedrop_etl.daemon import files
from filedrop_etl.daemon.errors import CheckFailure
from filedrop_etl.daemon.ops import folders, superseded
from filedrop_etl.daemon.ops.commands import common, table
from filedrop_etl.daemon.ops.commands.history import COUNTS
from filedrop_etl.daemon.ops.retries import name_refusal
from filedrop_etl.daemon.warehouse import api

SHOW_EPILOG = """\
examples:
  filedrop-etl show transactions_2026-03-01.parquet
  filedrop-etl show failed/transactions_2026-03-01~1.parquet --json | jq .failed

FILE is the name the file was dropped under, or its name in failed/ (a directory part
is ignored), also once a retry has sent it back: the retries table keeps that name.

A failed file whose run date has loaded since from a later drop (superseded) says so,
with that load, and suggests `dismiss` (a retry would put its older bytes over that
load: `retry` holds it back). The commands it suggests carry the options that find this
daemon from any folder.

exit codes: 0 done; 1 nothing is known of FILE (said on stderr, with the name to try
when FILE has a ~N that failed/ gave it); 2 bad usage or configuration, or no usable
database.
"""


def add(commands: common.Subcommands,
        shared: argparse.ArgumentParser) -> None:
    show = commands.add_parser(
        "show", parents=[shared], formatter_class=common.Help, epilog=SHOW_EPILOG,
        help="every attempt at one file, its retries and its failure",
        description="Everything known of one file: every attempt with its counts and "
        "error, every retry, and its sidecar's account while it waits in failed/.")
    show.add_argument("file", metavar="FILE", help="the file's name")
    common.add_feed(show)
    common.add_json(show)


def run(settings: Settings, args: argparse.Namespace) -> int:
    name = files.display_name(Path(args.file).name)
    feed = None if args.feed is None else common.feeds_of(settings, args.feed)[0]
    line = common.suggested(args)
    # The file as failed/ holds it now: under its own name, or as `name~N`.
    failed = [f for f in folders.failed_files(settings.failed) if name in (f.name, f.original)
              and (feed is None or settings.feeds.for_file(f.original) == feed)]
    names = {name, *(f.original for f in failed)}
    with common.reading(settings) as history:
        # Once retried, a `name~N` of failed/ lives on only in its retries' `failed_as`:
        # the ledger has the file's attempts under the name it was sent back as.
        names |= {r.file_name for r in history.retries(sorted(names))}
        attempts = [x for x in history.attempts(sorted(names))
                    if feed is None or x.feed == feed.name]
        retries = [r for r in history.retries(sorted(names))
                   if feed is None or settings.feeds.for_file(r.file_name) == feed]
        stale = superseded.superseded(history, settings.feeds, failed)
    found = attempts or retries or failed
    several = len(settings.feeds) > 1
    # The feed the name belongs to (its attempts say, else its name does); None for a
    # name of no feed, which the ledger records as "" (as its log lines say it).
    of = ((attempts[-1].feed or None) if attempts else
          settings.feeds.name_of(failed[0].original if failed else name))
    if args.json:
        table.emit_json({"file": name, **({"feed": of} if several else {}),
                         "attempts": [common.load_json(x, settings) for x in attempts],
                         "retries": retries,
                         "failed": [{**table.record(f), "sidecar": f.sidecar,
                                     "superseded_by": common.load_json(stale.get(f.name),
                                                                       settings)}
                                    for f in failed]})
    elif found:
        table.emit(_story(name, attempts, retries, failed, settings.feeds,
                          of if several else "", line, stale))
    else:
        # Not an answer but the lack of one: stdout stays empty for whoever reads it.
        table.emit(_unknown(name, line), sys.stderr)
    return common.EXIT_OK if found else common.EXIT_ATTENTION


# All the samples a sidecar keeps (`daemon.load.checks.SAMPLE_KEYS`, without its imports).
SAMPLES_SHOWN = 5


def _unknown(name: str, line: CommandLine) -> str:
    text = f"nothing is known of {table.safe(name)}: no load, no retry, not in failed/"
    # failed/ and processed/ add `~N` to a name already taken there: the file is known
    # by the name it came with.
    numbered = re.fullmatch(r"(.+)~\d+(\.[^.]*)?", name)
    if numbered is not None:
        shown = line("show", files=[numbered[1] + (numbered[2] or "")])
        text += ("; a `~N` name is the one failed/ or processed/ gave a file whose own was "
                 f"taken: try `{table.safe(shown)}`")
    return text


def _story(name: str, attempts: list[api.Load], retries: list[api.Retry],
           failed: list[folders.FailedFile], feeds: Feeds, feed: str | None,
           line: CommandLine, stale: dict[str, api.Load]) -> str:
    """The file's story; `feed` its feed where several are declared ("" where not, None
    for a name matching no feed); `stale`, the failed files superseded, by name."""
    shown = "" if feed == "" else f" (feed {feed})" if feed else " (matches no feed)"
    parts = [f"{table.safe(name)}{shown}: {len(attempts)} attempt(s), "
             f"{len(retries)} retry(ies)" + (", waiting in failed/" if failed else ""),
             "attempts\n" + table.render(
                 ("id", "started", "finished", "status", "run date", "rows", "inserted",
                  "updated", "unchanged", "deleted", "sha256", "error"),
                 [(x.id, table.when(x.started_at), table.when(x.finished_at), x.status,
                   x.run_date, x.rows, x.inserted, x.updated, x.unchanged, x.deleted,
                   (x.sha256 or "")[:12] or None, x.error) for x in attempts],
                 numeric=COUNTS)]
    if retries:
        parts.append("retries\n" + table.render(
            ("id", "requested", "by", "failed as", "sent back as", "reason"),
            [(r.id, table.when(r.requested_at), r.requested_by, r.failed_as, r.file_name,
              r.reason) for r in retries]))
    for f in failed:
        parts.append(f"in failed/ as {f.name}\n" + table.pairs(
            [("failed at", table.when(f.attempted_at)), ("stage", f.stage),
             ("reason", f.reason), *_checks(f), ("hint", f.hint),
             *_way_out(f, feeds, line, stale.get(f.name))]))
    return "\n\n".join(parts)


def _way_out(failed: folders.FailedFile, feeds: Feeds, line: CommandLine,
             load: api.Load | None) -> list[tuple[str, table.Cell]]:
    """What sends a failed file on its way: its retry; for a file superseded since,
    `dismiss` (a retry would put its older bytes over the load that stands for its run
    date, and `retry` holds it back); never a retry that cannot work (a name that cannot
    load fails at its name again)."""
    if load is not None:
        return [("superseded", f"its run date has loaded since from a later drop, "
                 f"{superseded.described(load)}: it needs no retry (one would put its older "
                 "bytes over that load)"),
                ("instead", f"`{line('dismiss', files=[failed.name])}` clears it, recorded; "
                 f"`{line('retry', files=[failed.name], then=('--force',))}` sends it back "
                 "all the same")]
    refusal = name_refusal(failed, feeds, line)
    if refusal is None:
        return [("retry", f"`{line('retry', files=[failed.name])}` sends it back as "
                 f"{failed.original}")]
    return [("retry", f"cannot help: {refusal[0]}"), ("instead", refusal[1])]


def _checks(failed: folders.FailedFile) -> list[tuple[str, table.Cell]]:
    """Each failed check of the sidecar with its sample keys and values, a line each: the
    rows its hint tells the producer to correct."""
    checks = (failed.sidecar or {}).get("checks")
    if not isinstance(checks, list):
        return []
    lines: list[tuple[str, table.Cell]] = []
    for check in checks:
        try:
            failure = CheckFailure(**check)
        except TypeError:  # a sidecar of another shape: its reason says it already
            continue
        lines.append(("check", failure.described(samples=SAMPLES_SHOWN)))
    return lines
