"""The `history` and `show` commands: the ledger's loads, and the whole story of one file.

`history` lists the latest `load_history` rows, filtered by file name (exact or glob),
load time, status and feed. `show FILE` gives every attempt at one file with its counts,
its retries, and, while it waits in failed/, what its sidecar says. Both read only.
Where several feeds are declared, each load says its feed (a FEED column, and `feed` in
the JSON); with the built-in feed alone, the output is as it was before feeds.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from filedrop_etl.config import Settings
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.config.invocation import CommandLine
from filedrop_etl.daemon import clock, files
from filedrop_etl.daemon.errors import CheckFailure
from filedrop_etl.daemon.ops import folders
from filedrop_etl.daemon.ops.commands import common, table
from filedrop_etl.daemon.ops.retries import name_refusal
from filedrop_etl.daemon.outcomes import STATUSES
from filedrop_etl.daemon.warehouse import api

HISTORY_EPILOG = """\
examples:
  filedrop-etl history
  filedrop-etl history --status failed --since 2026-03-01
  filedrop-etl history --file 'transactions_2026-03-*' --limit 100
  filedrop-etl history --feed orders --status failed
  filedrop-etl history --json | jq '.[] | select(.deleted > 0)'

--since and --until bound the time a load finished (UTC), not the run date in the file
name. A value covers what it names: a date alone the whole day (--until 2026-03-01
includes that day), a time to the second as the tables print it the whole second.

exit codes: 0 done (also when no load matches); 2 bad usage or configuration, or no
usable database.
"""
SHOW_EPILOG = """\
examples:
  filedrop-etl show transactions_2026-03-01.parquet
  filedrop-etl show failed/transactions_2026-03-01~1.parquet --json | jq .failed

FILE is the name the file was dropped under, or its name in failed/ (a directory part
is ignored), also once a retry has sent it back: the retries table keeps that name.

exit codes: 0 done; 1 nothing is known of FILE (said on stderr, with the name to try
when FILE has a ~N that failed/ gave it); 2 bad usage or configuration, or no usable
database.
"""
ERROR_WIDTH = 60
# A failed attempt's rows are often unknown ("-"): still aligned as the numbers they are.
COUNTS = ("id", "rows", "inserted", "updated", "unchanged", "deleted")
# The time of day at the end of an ISO time, after its `T` (or the space the tables
# print), to tell how precisely the time was given.
_TIME_OF_DAY = re.compile(r"[Tt ](?P<hour>\d{2})(?P<minute>:?\d{2})?(?P<second>:?\d{2})?"
                          r"(?P<fraction>[.,]\d+)?(?:[Zz]|[+-][\d:.,]+)?$")


def _moment(text: str, *, end: bool) -> str:
    """A --since/--until value as ledger text (UTC): the start of what it names, or, for
    the end, the first instant past it.

    A value names all that its precision covers: a date its whole day, a time to the
    second its whole second. The tables print whole seconds, so a load that finished at
    23:27:40.8 shows as 23:27:40: `--until` copied from there must include it.
    """
    try:
        start, span = _named(text)
        return _ledger(start + span if end else start)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-03-01) or a time (2026-03-01T12:00, UTC "
            "unless an offset is given)") from None
    except OverflowError:  # the end of year 9999, or an offset past it
        raise argparse.ArgumentTypeError(f"{text!r} is out of range") from None


def _named(text: str) -> tuple[datetime, timedelta]:
    """The first instant (UTC) of what `text` names, and how long that lasts."""
    try:
        day = date.fromisoformat(text)  # 2026-03-01 and 20260301 alike
    except ValueError:
        moment = datetime.fromisoformat(text)
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return utc, _precision(text)
    return datetime.combine(day, time(), UTC), timedelta(days=1)


def _checked(text: str, *, end: bool) -> str:
    """`text` as typed, once argparse knows it a valid --since or --until: an error of
    the command's names it as the operator wrote it."""
    _moment(text, end=end)
    return text


def _precision(text: str) -> timedelta:
    """The unit of the last part of the time of day in `text`: an hour, a minute, a
    second, or, given a fraction of a second (or a form not recognised), the ledger's
    microsecond, the instant itself."""
    match = _TIME_OF_DAY.search(text)
    if match is None or match["fraction"]:
        return timedelta(microseconds=1)
    if match["second"]:
        return timedelta(seconds=1)
    return timedelta(minutes=1) if match["minute"] else timedelta(hours=1)


def _ledger(moment: datetime) -> str:
    return clock.stamp(moment)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def add(commands: common.Subcommands,
        shared: argparse.ArgumentParser) -> None:
    history = commands.add_parser(
        "history", parents=[shared], formatter_class=common.Help, epilog=HISTORY_EPILOG,
        help="the latest loads from load_history, filtered",
        description="The latest attempts at loading files, newest first, from the "
        "load_history table: counts of rows inserted, updated, unchanged and deleted, "
        "or the error of a failed attempt.")
    history.add_argument("--limit", type=_positive, default=20, metavar="N",
                         help="at most N loads (default 20)")
    history.add_argument("--file", metavar="NAME",
                         help="only this file name; a glob with * ? [ ]")
    history.add_argument("--since", type=lambda t: _checked(t, end=False), metavar="WHEN",
                         help="finished at or after WHEN (a date, or an ISO time)")
    history.add_argument("--until", type=lambda t: _checked(t, end=True), metavar="WHEN",
                         help="finished before the end of WHEN (a date, or an ISO time)")
    history.add_argument("--status", choices=STATUSES)
    common.add_feed(history)
    common.add_json(history)
    show = commands.add_parser(
        "show", parents=[shared], formatter_class=common.Help, epilog=SHOW_EPILOG,
        help="every attempt at one file, its retries and its failure",
        description="Everything known of one file: every attempt with its counts and "
        "error, every retry, and its sidecar's account while it waits in failed/.")
    show.add_argument("file", metavar="FILE", help="the file's name")
    common.add_feed(show)
    common.add_json(show)


def run_history(settings: Settings, args: argparse.Namespace) -> int:
    since = None if args.since is None else _moment(args.since, end=False)
    until = None if args.until is None else _moment(args.until, end=True)
    # `until` is the first instant past the range: a range starting there is empty.
    if since is not None and until is not None and since >= until:
        raise common.reversed_range(args.since, args.until)
    # The ledger holds names as the log shows them: an undecodable byte as `\xNN`.
    file = None if args.file is None else files.display_name(args.file)
    feed = None if args.feed is None else common.feeds_of(settings, args.feed)[0].name
    where = api.LoadFilter(args.limit, file, args.status, since, until, feed)
    with common.reading(settings) as history:
        loads = history.recent_loads(where)
    if args.json:
        table.emit_json([common.load_json(x, settings) for x in loads])
        return common.EXIT_OK
    # The feed of each load, where several feeds share the listing.
    feeds = common.grouped(settings, args.feed)
    table.emit(table.render(
        ("id", "finished", *(("feed",) if feeds else ()), "file", "status", "run date",
         "rows", "inserted", "updated", "unchanged", "deleted", "error"),
        [(x.id, table.when(x.finished_at), *((x.feed or None,) if feeds else ()), x.file_name,
          x.status, x.run_date, x.rows, x.inserted, x.updated, x.unchanged, x.deleted,
          table.short(x.error, ERROR_WIDTH) if x.error else None) for x in loads],
        empty="no loads match", numeric=COUNTS))
    return common.EXIT_OK



def run_show(settings: Settings, args: argparse.Namespace) -> int:
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
                         "failed": [{**table.record(f), "sidecar": f.sidecar} for f in failed]})
    elif found:
        table.emit(_story(name, attempts, retries, failed, settings.feeds,
                          of if several else "", line))
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
           line: CommandLine) -> str:
    """The file's story; `feed` its feed where several are declared ("" where not, None
    for a name matching no feed)."""
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
        refusal = name_refusal(f, feeds)
        # Never a retry that cannot work: a name that cannot load fails at its name again.
        retry: list[tuple[str, table.Cell]] = (
            [("retry", f"`{line('retry', files=[f.name])}` sends it back as {f.original}")]
            if refusal is None
            else [("retry", f"cannot help: {refusal[0]}"), ("instead", refusal[1])])
        parts.append(f"in failed/ as {f.name}\n" + table.pairs(
            [("failed at", table.when(f.attempted_at)), ("stage", f.stage),
             ("reason", f.reason), *_checks(f), ("hint", f.hint), *retry]))
    return "\n\n".join(parts)


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
