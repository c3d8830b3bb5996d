"""The `history` command: the ledger's loads, filtered.

`history` lists the latest `load_history` rows, filtered by file name (exact or glob),
load time, status and feed; it reads only (the whole story of one file is `show`'s,
`daemon.ops.commands.show`). Where several feeds are declared, each load says its feed
(a FEED column, and `feed` in the JSON); with the built-in feed alone, the output is as
it was before feeds.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime, time, timedelta

from filedrop_etl.config import Settings
from filedrop_etl.daemon import clock, files
from filedrop_etl.daemon.ops.commands import common, table
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
