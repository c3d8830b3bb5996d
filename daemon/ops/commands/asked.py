"""The failed files an operator's command names: `retry`'s and `dismiss`'s shared reading
of FILE arguments, `--all`/`--superseded` and `--feed`.

A FILE is looked up in failed/ by its name there (`name~1`) or as it was dropped
(`folders.lookup`); every one of failed/ is taken for "all". With `--feed`, only that
feed's files are: a file's feed is the one its sidecar recorded, else the one its name
(or the name it most likely meant) belongs to. A name that is not there, or of another
feed, is refused (`Refusal`) with what to do, each command turning it into its own
result row; the rest of the command's work is its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from filedrop_etl.config import Settings
from filedrop_etl.config.invocation import CommandLine
from filedrop_etl.daemon import files
from filedrop_etl.daemon.ops import folders, superseded
from filedrop_etl.daemon.ops.commands import common


@dataclass(frozen=True)
class Refusal:
    """A FILE asked for that the command leaves alone, and why."""

    failed_as: str
    file_name: str  # as dropped, where known; else as asked
    reason: str
    hint: str


def failed_named(settings: Settings, names: list[str], every: bool, feed: str | None,
                 line: CommandLine) -> tuple[list[folders.FailedFile], list[Refusal]]:
    """The failed files `names` name (or every one, for `every`), of `feed` only where
    one is given, and the refusals of the names that are not there or of another feed."""
    waiting = folders.failed_files(settings.failed)
    wanted = None if feed is None else common.feeds_of(settings, feed)[0].name

    def of_feed(f: folders.FailedFile) -> bool:
        return wanted is None or feed_of(f, settings) == wanted

    if every:
        return [f for f in waiting if of_feed(f)], []
    chosen, refused = [], []
    for asked in names:
        found = folders.lookup(waiting, asked)
        if found is None:
            name = files.display_name(Path(asked).name)
            refused.append(Refusal(
                name, name, f"{name} is not in failed/",
                f"see `{line('status')}` for the failed files, or "
                f"`{line('show', files=[name])}` for this one"))
        elif not of_feed(found):
            other = feed_of(found, settings)
            refused.append(Refusal(
                found.name, found.original,
                f"{found.original} is not a file of the feed {wanted} "
                + (f"but of {other}" if other else "(its name matches no feed)"),
                "drop --feed, or give the feed its name matches"))
        else:
            chosen.append(found)
    return chosen, refused


def feed_of(failed: folders.FailedFile, settings: Settings) -> str | None:
    """The feed `failed` was for: its sidecar's, else its name's (or the name's it most
    likely meant); None for a name of no feed."""
    day = superseded.day_of(failed, settings.feeds)
    if day is not None:
        return day[0]
    contract = settings.feeds.for_file(failed.original)
    return None if contract is None else contract.name
