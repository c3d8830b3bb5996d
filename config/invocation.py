"""The command line a message suggests: one that reaches the same daemon from any folder.

Owns how a suggested command is written (`CommandLine`, made by `command_line`): the
program, the command and its words, then the options that find the settings it was
made from wherever it is run, each path absolute and each word shell-quoted. Which
options follows from where each setting came from (`Settings.sources`):

- `--config FILE` when a config file was read (not the shipped one, whose values are
  the defaults): its settings, its feeds, and the folders it implies come with it;
- `--db` unless the config file set it: a SQLite file as its absolute path, a server's
  URL as it is shown (without its password: `~/.pgpass` or `PGPASSFILE` holds that);
- `--inbox` when a flag or an `ETL_` variable set it, and `--processed`, `--failed` and
  `--work` when one did and the options before do not give the same folder by default
  (beside the inbox, as `load_settings` derives them);
- `--node` when a flag or a variable named the daemon among those sharing a warehouse.

An `ETL_` variable is written as its flag: the shell the command is pasted into may not
have it. A folder the operator's command found recorded by the daemon (source `daemon`)
needs nothing: `--db` or `--config` finds that record again. It reads no environment,
and the only file it reads is the config file, once per `command_line`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filedrop_etl.config.errors import ConfigError
from filedrop_etl.config.settings import DEFAULT_CONFIG_FILE, Settings, load_settings
from filedrop_etl.config.sources import masked

PROG = "filedrop-etl"
# Set by the operator (a flag or a variable): a suggested command must say them too.
_CHOSEN = ("flag", "environment")
# The folders that default to a place derived from the inbox (beside it).
_DERIVED = ("processed", "failed", "work")
# What a shell reads as itself: shlex's safe characters, and a `~` past the first (a
# `name~1.parquet` of failed/ stays readable; only a leading `~` is a home directory).
_PLAIN = re.compile(r"[\w@%+=:,./-][\w@%+=:,./~-]*", re.ASCII)


@dataclass(frozen=True)
class CommandLine:
    """Writes the commands suggested for one daemon's settings: `line("retry", files=[n])`."""

    prog: str = PROG
    # The options that find the daemon's settings, as words (`--config`, `/etc/etl.toml`).
    options: tuple[str, ...] = ()

    def __call__(self, *words: str, files: Sequence[str] = (),
                 then: Sequence[str] = ()) -> str:
        """`prog WORDS OPTIONS FILES THEN`, as a shell reads it (THEN: options that read
        best after the file they are about, `retry NAME --as NEW`); a file name that
        begins with `-` follows a `--`, so that it is not read as an option, and THEN
        goes before it."""
        if any(f.startswith("-") for f in files):
            words, files, then = (*words, *then), ["--", *files], ()
        prog = [self.prog] if self.prog else []
        return " ".join([*prog, *map(_quoted, [*words, *self.options, *files, *then])])


# The command's words alone, without the program's name or options: the default of a
# message made where no settings are at hand (the status page's name refusals, until
# `daemon.ops.page` passes its writer); the commands and the daemon pass theirs.
WORDS_ONLY = CommandLine(prog="")


def _quoted(word: str) -> str:
    return word if _PLAIN.fullmatch(word) else shlex.quote(word)


def command_line(settings: Settings, prog: str = PROG) -> CommandLine:
    """The writer of commands that find `settings` again from any folder (see the module)."""
    return CommandLine(prog, tuple(options(settings)))


def options(settings: Settings) -> list[str]:
    """The options that find the daemon of `settings` from any folder, as words."""
    sources = settings.sources
    words: list[str] = []
    chosen: dict[str, object] = {}
    config = settings.config_file
    # The shipped file, by whatever path it was named, holds only the defaults.
    if config is not None and config.resolve() != DEFAULT_CONFIG_FILE.resolve():
        words += ["--config", str(config)]
    else:
        config = None
    if sources.get("db") != "config file" or config is None:
        words += ["--db", _db(settings)]
        chosen["db"] = settings.db
    if sources.get("inbox") in _CHOSEN:
        words += ["--inbox", str(settings.inbox)]
        chosen["inbox"] = settings.inbox
    # Their defaults follow from the inbox (and the config file), not from one another:
    # the settings resolved once from what is chosen so far say all three.
    derived = [f for f in _DERIVED if sources.get(f) in _CHOSEN]
    defaults = _defaults(chosen, config) if derived else None
    for folder in derived:
        path: Path = getattr(settings, folder)
        if defaults is None or getattr(defaults, folder) != path:
            words += [f"--{folder}", str(path)]
    if sources.get("node") in _CHOSEN:
        words += ["--node", settings.node]
    return words


def _db(settings: Settings) -> str:
    """The `db` setting as a suggested command may show it: never a secret."""
    if settings.place is not None:
        file = settings.place.file
        return str(file) if file is not None else settings.place.shown
    # Unplaced settings (made by hand): a URL masked whole, a path made absolute.
    # (abspath, not resolve: the path as given, symlinks and all, is the one to show.)
    return masked(settings.db) if "://" in settings.db else os.path.abspath(settings.db)  # noqa: PTH100


def _defaults(chosen: dict[str, object], config: Path | None) -> Settings | None:
    """The settings given only `chosen` (and the config file): where they put the folders
    derived from the inbox; None if that cannot be said."""
    try:
        return load_settings(chosen, config_file=config, environ={})
    except ConfigError:
        return None  # the file changed since, or clashes: write the folders out
