"""The `retry` command: send failed files back to the inbox for the daemon to load again.

Picks the files (named ones, or every one in failed/), has `daemon.ops.retries` move each
back under its original name and record the retry in the database, and says what became
of each. A name already taken in the inbox is refused, never overwritten, and so is a
name that can never load (the refusal suggests the name it most likely meant, which
`--as NEW_NAME` sends it back under). A superseded file (its run date loaded since from
a later drop) is held back unless `--force`: `dismiss` is its way out. `--all` also
removes the sidecars that retries cut short left behind. `--dry-run` says what would
happen and changes nothing.
"""

from __future__ import annotations

import argparse
import getpass
import os
from contextlib import ExitStack

from filedrop_etl.config import Settings
from filedrop_etl.daemon import clock, lock
from filedrop_etl.daemon.ops import folders, retries, superseded
from filedrop_etl.daemon.ops.commands import asked, common, table
from filedrop_etl.daemon.warehouse import api

EPILOG = """\
examples:
  filedrop-etl retry transactions_2026-03-01.parquet
  filedrop-etl retry --all --dry-run
  filedrop-etl retry --all --feed orders
  filedrop-etl retry --all --json | jq '.[] | select(.outcome == "refused")'
  filedrop-etl retry Transactions_2026-03-01.parquet --as transactions_2026-03-01.parquet

Fix the cause first (the producer, or the file itself in failed/): a file retried as it
was fails again for the same reason. One that goes back byte for byte as it failed at
read, schema or checks (its sidecar's sha256) is sent back with a warning in its reason
and hint; after a failure at open or load the cause may have been elsewhere. So is one
larger than max_file_bytes, unread: the daemon would refuse it again. A file
whose name cannot load (its stage is `name`) is refused: a retry would give it back that
name; the refusal names the name it most likely meant (`suggested_name` in --json), and
`retry NAME --as NEW_NAME` sends it back under that one, or any name one of the feeds'
patterns accepts, such as transactions_YYYY-MM-DD.parquet (a ~N before .parquet is
allowed); the retries row records NEW_NAME as its file_name. A superseded file (`status`
lists them: its feed's run date has loaded since from a later drop) is held back
(outcome `superseded`): sent back, its older bytes would replace the good load; `dismiss`
clears it, and --force sends it back all the same. With --feed NAME, a file whose name
belongs to another feed (or to none) is left alone: --all passes it by, and naming it is
refused. Each file goes back under the name it was dropped under (or --as), by one atomic
rename; its sidecar is removed, and the retry
is recorded in the `retries` table with the sidecar's content. A running daemon loads it
at once; without one it waits in the inbox. --all also removes the sidecars a retry cut
short left in failed/ without their file (outcome `sidecar removed`: the retries row
holds their content); any other sidecar without a file is left for a person.

exit codes: 0 every file was sent back (or there was none); 1 a file was refused or is
not in failed/; 2 bad usage or configuration, or no usable database; 3 none was refused,
but a superseded file was held back (give --force to send it back, or `dismiss` it).
"""
# A superseded file held back, and nothing refused: for a script, neither done nor wrong.
EXIT_SUPERSEDED = 3


def add(commands: common.Subcommands,
        shared: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "retry", parents=[shared], formatter_class=common.Help, epilog=EPILOG,
        help="move failed files back into the inbox, recording the retry",
        description="Move failed files from failed/ back into the inbox under their "
        "original names, atomically and never over a file already there, and record "
        "each retry in the database.")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="a failed file's name (as in failed/, or as dropped)")
    parser.add_argument("--all", action="store_true", help="every file in failed/")
    parser.add_argument("--as", dest="as_name", metavar="NEW_NAME",
                        help="send the one FILE back under this name (one a feed's pattern "
                        "accepts, not taken in the inbox): for a file whose name can never "
                        "load")
    parser.add_argument("--force", action="store_true",
                        help="send superseded files back too: their older bytes replace "
                        "the load of their run date that came from a later drop")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would be retried; change nothing")
    common.add_feed(parser)
    common.add_json(parser)


def requester() -> str:
    """The OS user running the command, as the retries and dismissals rows record it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (containers)
        return f"uid {os.getuid()}"


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.all == bool(args.files):
        raise common.UsageError("name the files to retry, or give --all (not both)")
    line = common.suggested(args)
    if args.as_name is not None and len(args.files) != 1:
        raise common.UsageError("--as renames one file: name exactly one FILE with it",
                                hint=f"`{line('retry', files=['FILE'], then=('--as', 'NEW_NAME'))}`"
                                ", one file at a time")
    # Without the daemon's database, this is not the daemon's failed/ either: say that,
    # as `status` does, rather than that the files asked for are not in it.
    common.require_database(settings)
    chosen, refused = asked.failed_named(settings, args.files, args.all, args.feed, line)
    results = [retries.RetryResult(r.failed_as, r.file_name, "refused", reason=r.reason,
                                   hint=r.hint) for r in refused]
    # Listed before any retry, so that a sidecar this run fails to remove is told once.
    # Not with --feed: a sidecar without its file names no feed for sure.
    leftovers = (folders.leftover_sidecars(settings.failed)
                 if args.all and args.feed is None else [])
    left_alone = 0
    if chosen or leftovers:
        # A dry run writes nothing, not even the migration of an older schema.
        with ExitStack() as opened:
            history: api.History | api.RetryLog
            log: api.RetryLog | None = None
            if args.dry_run:
                history = opened.enter_context(common.reading(settings))
            else:
                history = log = opened.enter_context(common.writing(settings))
            now, by = clock.utc_now(), requester()
            stale = superseded.superseded(history, settings.feeds, chosen)
            results += [retries.retry(log, settings, f, requested_by=by, requested_at=now,
                                      dry_run=args.dry_run, as_name=args.as_name,
                                      superseded_by=stale.get(f.name), force=args.force,
                                      line=line)
                        for f in chosen]
            for leftover in leftovers:
                result = retries.remove_leftover(history, leftover, dry_run=args.dry_run)
                if result is None:
                    left_alone += 1
                else:
                    results.append(result)
    if args.json:
        table.emit_json(results)
    else:
        table.emit(table.render(
            ("failed as", "outcome", "inbox name", "retry id", "reason", "hint"),
            [(r.failed_as, r.outcome.replace("_", " "), r.file_name, r.retry_id, r.reason,
              r.hint) for r in results],
            empty=f"nothing to retry: {settings.failed} holds no failed file"))
        if left_alone:
            table.emit(f"\nleft alone: {left_alone} sidecar(s) in failed/ without a file "
                       f"and without a recorded retry; see `{line('status')}`")
        sent = sum(r.outcome == "retried" for r in results)
        if sent and not lock.probe(settings.lock_file).held:
            table.emit(f"\nno daemon is running on {settings.where}: the files wait in the inbox "
                  "until one starts")
    if any(r.outcome == "refused" for r in results):
        return common.EXIT_ATTENTION
    return EXIT_SUPERSEDED if any(r.outcome == "superseded" for r in results) else common.EXIT_OK
