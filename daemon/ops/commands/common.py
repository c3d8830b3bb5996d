"""What the operator's commands share: opening the database, exit codes, help layout.

Owns how a command reaches the daemon's database: read-only for every command but
`retry` (never created, never written, never locking out the daemon), and for `retry`
a write connection that does not create a database either and migrates an older schema
in place as the daemon would. A missing or unusable database is `DatabaseUnavailable`,
saying where it was looked for; the dispatcher (`daemon.ops.commands.run`) logs it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filedrop_etl.config import EtlError, Settings, invocation, paths
from filedrop_etl.config.contract import Contract
from filedrop_etl.config.invocation import CommandLine
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.errors import DatabaseUnavailable
from filedrop_etl.daemon.ops import fleet
from filedrop_etl.daemon.ops.commands import table
from filedrop_etl.daemon.warehouse import api

# `cli`'s subparsers make its own parser class, which the commands need not know.
# (Generic only to the type checker: at run time the class cannot be subscripted.)
if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[Any]
else:
    Subcommands = argparse._SubParsersAction
# Shared by every operator command; `status` documents what each means for it.
EXIT_OK, EXIT_ATTENTION, EXIT_PROBLEM = 0, 1, 2


class UsageError(EtlError):
    """A command line that parses but asks for something contradictory."""


class Help(argparse.RawDescriptionHelpFormatter):
    """Help whose epilog keeps its lines: the examples are meant to be copied.

    A text with line breaks in it was laid out by hand (the epilogs) and is kept as it
    is; a text of one paragraph (the descriptions) is wrapped to the terminal's width,
    as the options' help is.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def suggested(args: argparse.Namespace) -> CommandLine:
    """How the command suggests commands: with the options that find this daemon from any
    folder (`config.invocation`), as `daemon.ops.commands.run` made it for these settings;
    without options for a command run by other means (a test's namespace)."""
    line = getattr(args, "suggested", None)
    return line if isinstance(line, CommandLine) else CommandLine()


def reversed_range(since: str, until: str) -> UsageError:
    """A --since after its --until, as typed: such a range would match nothing, silently."""
    return UsageError(f"--since {since} is after --until {until}",
                      hint="swap the two, or drop one to leave that end open")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (for jq and scripts) instead of tables")


def add_feed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--feed", metavar="NAME",
                        help="only this declared feed (see `feeds`); default: every feed")


def feeds_of(settings: Settings, name: str | None) -> tuple[Contract, ...]:
    """The feeds a command covers: the one `--feed` names, or every declared one;
    `UsageError` naming the declared feeds for a name none has."""
    if name is None:
        return settings.feeds.all
    chosen = settings.feeds.named(name)
    if chosen is None:
        raise UsageError(f"no feed is named {name!r}: the declared feeds are "
                         + ", ".join(settings.feeds.names),
                         hint="give --feed one of those, or see "
                         f"`{invocation.command_line(settings)('feeds')}`")
    return (chosen,)


def grouped(settings: Settings, name: str | None) -> bool:
    """Whether the output is grouped by feed: several feeds declared, no `--feed`. With
    one feed (the built-in one alone, as before feeds) the output is as it always was."""
    return name is None and len(settings.feeds) > 1


def load_json(load: api.Load | None, settings: Settings) -> dict[str, object] | None:
    """A load as a JSON object: with its `feed` where several feeds are declared; without
    it for one feed (the built-in one alone), as before feeds."""
    if load is None:
        return None
    several = len(settings.feeds) > 1
    return {k: v for k, v in table.record(load).items() if several or k != "feed"}


def _db_source(settings: Settings) -> str:
    """Where the database's path came from and which folder a relative one is taken
    from (`config.paths.origin`), as the operator would change it."""
    unset = ": neither --db, ETL_DB nor a config file sets it" \
        if settings.sources.get("db") == "default" else ""
    return paths.origin(settings, "db") + unset


def database_missing(settings: Settings) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"there is no database at {settings.where} yet ({_db_source(settings)})",
        hint="the daemon creates it when it first starts; if it runs already, give this "
        "command the same --db, ETL_DB or --config as the daemon")


def require_database(settings: Settings) -> None:
    """`DatabaseUnavailable` for a database file that is not there (or is a directory),
    saying where it was looked for and where that path came from."""
    _check_present(settings)


def _check_present(settings: Settings) -> None:
    # The backend would refuse a missing file or a directory too; here the message can
    # also say where the path came from. A server is asked by connecting.
    file = settings.placed.file
    if file is None:
        return
    if file.is_dir():
        raise DatabaseUnavailable(
            f"{file} is a directory, not a database file ({_db_source(settings)})",
            hint="give the database file itself, the one the daemon uses (it creates it if "
            f"it does not exist), such as --db {file / 'etl.db'}")
    if not file.exists():
        raise database_missing(settings)


def has_database(settings: Settings) -> bool:
    """Whether there is a database file to ask (a server always may be: it is asked)."""
    file = settings.placed.file
    return file is None or file.is_file()


def database_named(settings: Settings) -> bool:
    """Whether anything is at the database's path (a directory is then refused by name)."""
    file = settings.placed.file
    return file is None or file.exists()


@dataclass(frozen=True)
class Disagreement:
    """A folder given to a command (flag, variable, config file) that is not the one the
    daemon recorded at its start."""

    folder: str
    given: str
    source: str
    daemon: str


def daemon_folders(settings: Settings,
                   needed: Sequence[str]) -> tuple[Settings, list[Disagreement]]:
    """`settings` with the folders the daemon recorded at its last start (`History.daemons`)
    wherever no flag, variable or config file names them, and the folders given that
    disagree with the daemon's; `FolderMissing` for a folder in `needed` that does not
    exist, which would otherwise read as empty ("0 failed", all well).

    So `status --db /srv/etl/etl.db` alone, from any directory, counts the daemon's
    failed files, as the README's cron example expects.
    """
    recorded: api.Daemon | None = None
    if has_database(settings):
        with reading(settings) as history:
            found = history.daemons()
        recorded = fleet.spoken_for(found, settings.node)
    chosen: dict[str, Path] = {}
    sources = dict(settings.sources)
    disagreements = []
    for folder in api.FOLDER_NAMES:
        given, source = getattr(settings, folder), settings.sources.get(folder, "default")
        daemons = Path(getattr(recorded, folder)) if recorded else None
        if daemons is not None and source == "default":
            chosen[folder], sources[folder] = daemons, "daemon"
        elif daemons is not None and daemons != given:
            disagreements.append(Disagreement(folder, str(given), source, str(daemons)))
    settings = replace(settings, **chosen, sources=sources)  # type: ignore[arg-type]
    # Without a database the command says that (exit 2), which is the news.
    for folder in needed if has_database(settings) else ():
        if not getattr(settings, folder).is_dir():
            raise FolderMissing(folder, settings)
    return settings, disagreements


def missing_folders(settings: Settings, names: Sequence[str]) -> list[FolderMissing]:
    """Of the folders `names`, those that do not exist, each as the error that says so."""
    return [FolderMissing(name, settings) for name in names
            if not getattr(settings, name).is_dir()]


class FolderMissing(EtlError):
    """A folder a command reads does not exist: there is nothing to count, not zero. It
    says where its path came from (`config.paths.shown`), and, for a default where there
    is a database, that the daemon has recorded none there."""

    def __init__(self, folder: str, settings: Settings) -> None:
        unrecorded = (f"; the daemon has not recorded its {folder} in this database"
                      if settings.sources.get(folder, "default") == "default"
                      and has_database(settings) else "")
        super().__init__(
            f"the {folder} directory {paths.shown(settings, folder)} does not exist"
            + unrecorded,
            hint=f"give the daemon's --{folder}, --config or --db; if it is the daemon's, "
            "it was removed: the daemon makes it again at its next start")


@contextmanager
def reading(settings: Settings) -> Iterator[api.History]:
    """The read-only history of the daemon's warehouse, its schema checked."""
    _check_present(settings)
    with warehouse.reading(settings) as history:
        yield history


@contextmanager
def writing(settings: Settings) -> Iterator[api.RetryLog]:
    """The retry log of the daemon's existing warehouse, migrated to this schema."""
    _check_present(settings)
    with warehouse.writing(settings) as retry_log:
        yield retry_log
