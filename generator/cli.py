"""Command line of the generator: parse dates and counts, then publish one file per day.

Owns argv and exit codes only; the rows come from `transactions` (the built-in feed, the
default) or `feed` (`--feed NAME`, any feed the config declares), the atomic write from
`publish` and the progress line from `progress`, which is drawn on stderr only when stderr
is a terminal (or `--progress` asks), so piped and logged runs print what they always
printed: one path per line on stdout. The feeds and the default inbox are the daemon's
(`--config`, `ETL_CONFIG`, then the shipped file; the inbox by flag, `ETL_INBOX`, config
file, then `inbox/`), so producer and consumer agree without being told twice.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from filedrop_etl.config import EtlError, Settings, load_settings
from filedrop_etl.config.contract import TRANSACTIONS, Contract
from filedrop_etl.generator.feed import generate
from filedrop_etl.generator.progress import Progress, Silent
from filedrop_etl.generator.publish import publish_parquet


def _iso_date(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="filedrop-etl-generate",
        description="Write deterministic sample files of a feed, one per day, atomically "
                    "(transactions_YYYY-MM-DD.parquet unless --feed names another).",
    )
    days = parser.add_mutually_exclusive_group(required=True)
    days.add_argument("--date", type=_iso_date, action="append", metavar="YYYY-MM-DD",
                      help="a day to generate; repeat for several days")
    days.add_argument("--start", type=_iso_date, metavar="YYYY-MM-DD",
                      help="first day of a range (with --days)")
    parser.add_argument("--days", type=_positive, default=None, metavar="N",
                        help="number of consecutive days from --start (default 1)")
    parser.add_argument("--rows", type=_positive, default=25, metavar="N",
                        help="rows per day (default 25)")
    parser.add_argument("--inbox", type=Path, default=None, metavar="DIR",
                        help="destination directory (default: the daemon's inbox, inbox/)")
    parser.add_argument("--seed", type=_non_negative, default=0, metavar="N",
                        help="varies the data while keeping it deterministic (default 0)")
    parser.add_argument("--feed", default=None, metavar="NAME",
                        help="the feed to write files of, as the config declares it "
                             "(default: transactions)")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="the daemon's config file, which declares the feeds (default: "
                             "ETL_CONFIG, else the shipped config/etl.toml)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress line on stderr (default: when stderr is a "
                             "terminal)")
    return parser


def _progress(wanted: bool | None, days: int, rows: int) -> Silent:
    if not (sys.stderr.isatty() if wanted is None else wanted):
        return Silent()
    return Progress(sys.stderr, days, rows, shares_terminal=sys.stdout.isatty())


def _feed(settings: Settings, name: str | None) -> Contract:
    """The feed named `name` among those the config declares (None: the built-in one)."""
    if name is None:
        return TRANSACTIONS
    feed = settings.feeds.named(name)
    if feed is None:
        where = settings.config_file or "the config"
        raise EtlError(f"{where} declares no feed named {name!r} (it declares: "
                       f"{', '.join(settings.feeds.names)})",
                       hint="name a declared feed, or pass the config that declares it "
                            "with --config")
    return feed


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.days is not None and args.start is None:
        parser.error("--days needs --start")
    if args.start is not None:
        run_dates = [args.start + timedelta(days=i) for i in range(args.days or 1)]
    else:
        run_dates = list(dict.fromkeys(args.date))
    try:
        # Settings are read only when needed, so `--inbox` alone works whatever they say.
        if args.inbox is None or args.feed or args.config:
            settings = load_settings(config_file=args.config)
            feed, inbox = _feed(settings, args.feed), args.inbox or settings.inbox
        else:
            feed, inbox = TRANSACTIONS, args.inbox
        with _progress(args.progress, len(run_dates), args.rows) as progress:
            for run_date in run_dates:
                path = publish_parquet(
                    inbox,
                    feed.file_name_for(run_date.isoformat()),
                    feed.arrow_schema,
                    progress.track(generate(feed, run_date, args.rows, args.seed)),
                )
                progress.clear()  # a path on the same terminal gets a line of its own
                print(path, flush=True)
                progress.day_done()
    except EtlError as exc:
        print(f"generator: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"generator: cannot write to the inbox: {exc} (check the directory and its "
              "permissions)", file=sys.stderr)
        return 2
    return 0
