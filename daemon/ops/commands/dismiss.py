"""The `dismiss` command: clear failed files that need no retry from failed/, recorded.

Picks the files (named ones, or with `--superseded` every superseded one: `retry --all`'s
counterpart), has `daemon.ops.dismissals` remove each with its sidecar and record who did
in the `dismissals` table, and says what became of each. A file that is not superseded
(no later drop of its run date has loaded since it failed) is refused unless `--force`.
`--dry-run` says what would happen and changes nothing.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from filedrop_etl.config import Settings
from filedrop_etl.daemon import clock
from filedrop_etl.daemon.ops import dismissals, superseded
from filedrop_etl.daemon.ops.commands import asked, common, table
from filedrop_etl.daemon.ops.commands.retry import requester
from filedrop_etl.daemon.warehouse import api

EPILOG = """\
examples:
  filedrop-etl dismiss transactions_2026-03-01.parquet
  filedrop-etl dismiss --superseded --dry-run
  filedrop-etl dismiss --superseded --feed orders
  filedrop-etl dismiss orders_2026-03-01.csv --force --reason "producer withdrew it"

A failed file is superseded when its feed's run date has loaded since from a later drop
(the producer sent it again, and that one loaded): `status` lists such files apart, and
does not exit 1 for them. Retrying one would put its older bytes over the good load;
dismissing it removes it and its sidecar from failed/ and records, in the `dismissals`
table, the file (as dropped and as failed/ held it), its feed and run date, sha256 and
sidecar, the load that superseded it, why, who (the OS user), on which node and when;
the log line `file_dismissed` says the same. A file that is not superseded is refused
unless --force (give --reason to say why it must never load: the row keeps it).

exit codes: 0 every file asked for was dismissed (or, with --superseded, there was none);
1 a file was refused (not superseded, without --force) or is not in failed/; 2 bad usage
or configuration, or no usable database.
"""


def add(commands: common.Subcommands,
        shared: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "dismiss", parents=[shared], formatter_class=common.Help, epilog=EPILOG,
        help="remove superseded failed files from failed/, recording who did",
        description="Remove failed files that need no retry (a later drop of their run "
        "date has loaded since) from failed/ with their sidecars, and record each "
        "dismissal in the database.")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="a failed file's name (as in failed/, or as dropped)")
    parser.add_argument("--superseded", action="store_true",
                        help="every superseded file in failed/")
    parser.add_argument("--force", action="store_true",
                        help="dismiss the FILEs named even if they are not superseded")
    parser.add_argument("--reason", metavar="TEXT",
                        help="why, in words, kept in the dismissals row")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would be dismissed; change nothing")
    common.add_feed(parser)
    common.add_json(parser)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.superseded == bool(args.files):
        raise common.UsageError("name the files to dismiss, or give --superseded (not both)")
    if args.superseded and args.force:
        raise common.UsageError("--force dismisses files named one by one, not with "
                                "--superseded", hint="name each file to force")
    line = common.suggested(args)
    chosen, refused = asked.failed_named(settings, args.files, args.superseded, args.feed,
                                         line)
    results = [dismissals.DismissResult(r.failed_as, r.file_name, "refused", reason=r.reason,
                                        hint=r.hint) for r in refused]
    with ExitStack() as opened:
        history: api.History | api.RetryLog
        log: api.RetryLog | None = None
        # A dry run writes nothing; it reads the ledger all the same.
        if args.dry_run:
            history = opened.enter_context(common.reading(settings))
        else:
            history = log = opened.enter_context(common.writing(settings))
        stale = superseded.superseded(history, settings.feeds, chosen)
        if args.superseded:
            chosen = [f for f in chosen if f.name in stale]
        now, by = clock.utc_now(), requester()
        results += [dismissals.dismiss(log, settings, f, stale.get(f.name), force=args.force,
                                       note=args.reason, dismissed_by=by, dismissed_at=now,
                                       dry_run=args.dry_run, line=line) for f in chosen]
    if args.json:
        table.emit_json(results)
    else:
        table.emit(table.render(
            ("failed as", "outcome", "feed", "run date", "dismissal id", "reason", "hint"),
            [(r.failed_as, r.outcome.replace("_", " "), r.feed, r.run_date, r.dismissal_id,
              r.reason, r.hint) for r in results],
            empty=f"nothing to dismiss: {settings.failed} holds no superseded file"
            if args.superseded else "nothing to dismiss"))
    held = any(r.outcome == "refused" for r in results)
    return common.EXIT_ATTENTION if held else common.EXIT_OK
