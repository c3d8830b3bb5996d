"""The command line: one entry point, its subcommands, their argv, and the exit code.

`filedrop-etl COMMAND ...` (the console script) and `python -m filedrop_etl COMMAND ...` are
the same program. With no command, or with only the daemon's own options, it runs the
daemon, so every command line written before the subcommands existed still works;
options may stand before the command as well as after it (`--db X status`).
The operator's commands (`status`, `history`, `show`, `retry`, `dismiss`, `report`,
`feeds`, `migrate`) are `daemon.ops.commands`'. Settings are resolved here once (flag, `ETL_<NAME>`,
config file, default) and handed to the command; `main(argv)` returns the exit code so that tests
call it directly.
"""

from __future__ import annotations

import argparse
import difflib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import structlog

from filedrop_etl.config import ConfigError, Settings, load_settings
from filedrop_etl.config.setting_values import OBSERVERS
from filedrop_etl.config.settings import WRITE_MODES
from filedrop_etl.daemon import package_version
from filedrop_etl.daemon.app import exposure, logs, signals
from filedrop_etl.daemon.ops import commands as ops
from filedrop_etl.daemon.warehouse import registry

log = structlog.get_logger("daemon")

PROG = "filedrop-etl"
COMMANDS = ("run", *ops.NAMES)
EXIT_USAGE = 2  # as `daemon.app.service`'s, which is imported only to run the daemon
RUN_OPTIONS = ("settle_seconds", "rescan_seconds", "write_mode", "observer", "poll_seconds",
               "http", "stall_seconds", "max_file_bytes", "max_file_rows", "max_resumes",
               "lease_seconds", "network_timeout_seconds", "statement_timeout_seconds",
               "once_wait_seconds")
_PATH_OPTIONS = ("inbox", "processed", "failed", "work", "db", "node", "bookkeeping_schema")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Through the logger, so that even a usage error is one JSON line off a TTY.
        log.error("usage_error", reason=message, hint=f"see {self.prog} --help")
        sys.exit(EXIT_USAGE)


def _settings_options() -> _Parser:
    """The options every command shares: where the files and the database are."""
    shared = _Parser(add_help=False)
    shared.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML settings file, its relative paths taken from its folder "
                        "(default: config/etl.toml; env ETL_CONFIG)")
    shared.add_argument("--inbox", type=Path, metavar="DIR", help="directory to watch")
    shared.add_argument("--processed", type=Path, metavar="DIR",
                        help="archive of loaded files (default processed/ beside the inbox)")
    shared.add_argument("--failed", type=Path, metavar="DIR",
                        help="quarantine, each file with <name>.error.json (default failed/ "
                        "beside the inbox)")
    shared.add_argument("--work", type=Path, metavar="DIR",
                        help="claimed files in flight (default .<inbox>.work beside the inbox)")
    # Text, not a Path: a PostgreSQL URL must keep its `//`.
    shared.add_argument("--db", metavar="PATH|URL",
                        help="the SQLite database file, or a PostgreSQL server as "
                        "postgresql://USER@HOST:PORT/DBNAME (its password from ~/.pgpass "
                        "or PGPASSFILE: in a URL here, every local user can read it)")
    shared.add_argument("--node", metavar="NAME",
                        help="this daemon's name among daemons sharing a PostgreSQL "
                        "warehouse (default: the host name; env ETL_NODE)")
    shared.add_argument("--bookkeeping-schema", metavar="NAME",
                        help="PostgreSQL: the schema of the daemon's own tables (default: "
                        "filedrop beside public, <schema>_filedrop beside another schema; "
                        "env ETL_BOOKKEEPING_SCHEMA)")
    return shared


def _add_run(commands: argparse._SubParsersAction[_Parser],
             shared: _Parser) -> None:
    run = commands.add_parser(
        "run", parents=[shared], help="watch the inbox and load each file (the default)",
        description="Watch an inbox and load each file dropped into it (the feeds the "
        "config file declares, else transactions_YYYY-MM-DD.parquet) into SQLite or "
        "PostgreSQL, idempotently. Every option falls back to the environment variable "
        "ETL_<NAME>, then the config file, then a built-in default. Relative paths in a "
        "config file are relative to its folder; those of options, variables and defaults "
        "to the working folder. Unless set, processed/, failed/ and the work directory "
        "are beside the inbox.",
        epilog="exit codes: 0 stopped cleanly (or --once loaded every file); 1 --once left "
        "failed files, or the worker crashed; 2 bad usage, configuration or database; "
        "3 another daemon holds the lock on this database, or uses this inbox or work "
        "directory; 75 --once gave up waiting for the database (temporary: the next run "
        "tries again); 131 SIGQUIT. SIGTERM/SIGINT finish the file in flight; a second "
        "signal exits at once. SIGHUP rescans the inbox, SIGUSR1 logs the daemon's "
        "status; other stray signals are logged and ignored.")
    run.add_argument("--write-mode", choices=WRITE_MODES,
                     help="merge: upsert by key; replace: the file is the whole run_date")
    run.add_argument("--settle-seconds", type=float, metavar="S",
                     help="quiet time before a file written in place is taken")
    run.add_argument("--rescan-seconds", type=float, metavar="S",
                     help="interval of the safety-net inbox rescan")
    run.add_argument("--observer", choices=OBSERVERS,
                     help="auto: inotify where available; polling: list the inbox every "
                     "--poll-seconds (NFS, SMB and container mounts, where inotify sees nothing)")
    run.add_argument("--poll-seconds", type=float, metavar="S",
                     help="interval of the polling observer")
    run.add_argument("--http", metavar="HOST:PORT",
                     help="serve /metrics, /healthz, /readyz and a status page at / "
                     "(host 127.0.0.1 unless given; off by default)")
    run.add_argument("--stall-seconds", type=float, metavar="S",
                     help="a worker silent this long counts as stalled (/healthz 503, no "
                     "systemd watchdog ping)")
    run.add_argument("--max-file-bytes", metavar="SIZE",
                     help="refuse larger files as bad input, unread: bytes, or with K, M, G "
                     "or T (powers of 1024), or off (the default)")
    run.add_argument("--max-file-rows", metavar="N",
                     help="refuse files of more rows as bad input, or off (the default)")
    run.add_argument("--max-resumes", metavar="N",
                     help="starts that may resume one claimed file without an outcome (the "
                     "daemon stopped while loading it each time) before it is set aside in "
                     "failed/ (default 3)")
    run.add_argument("--lease-seconds", type=float, metavar="S",
                     help="PostgreSQL only: how long this daemon's claims outlive its last "
                     "heartbeat before another daemon takes its files over (default 30)")
    run.add_argument("--network-timeout-seconds", type=float, metavar="S",
                     help="PostgreSQL only: a server silent this long is asked on a second "
                     "connection whether it still works on the statement; unanswered, the "
                     "session is given up and the file retried (default 30; also bounds "
                     "the connect and TCP keepalives)")
    run.add_argument("--statement-timeout-seconds", metavar="S",
                     help="PostgreSQL only: the longest one statement may run on the server "
                     "before it is cancelled and the file retried, or off (the default: a "
                     "large load may rightly take minutes)")
    run.add_argument("--once", action="store_true",
                     help="drain the inbox and exit: 0 if every file loaded, 1 if any failed, "
                     "75 if the database could not be reached within --once-wait-seconds")
    run.add_argument("--once-wait-seconds", metavar="S",
                     help="with --once: how long the start waits for a database out of "
                     "reach, busy or full before it gives up with exit code 75, or off to "
                     "wait as the daemon does (default 60)")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="A file-drop ETL daemon: Parquet files dropped into an inbox are loaded "
        "idempotently into SQLite or PostgreSQL. With no command it runs the daemon (`run`).",
        epilog=f"`{prog} COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    shared = _settings_options()
    _add_run(commands, shared)
    ops.add_parsers(commands, shared)
    return parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's own parser, by name."""
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _option_values(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """Every option of every command, and whether it takes a value (`--db PATH`)."""
    return {option: action.nargs != 0 for command in _commands(parser).values()
            for action in command._actions for option in action.option_strings}


def _takes_value(arg: str, values: dict[str, bool]) -> bool:
    """Whether the option `arg` takes the next word as its value (`--db=PATH` does not)."""
    if "=" in arg:
        return False
    if arg in values:
        return values[arg]
    # argparse also takes a unique beginning of an option: `--proc DIR` for `--processed`.
    matches = [takes for option, takes in values.items() if option.startswith(arg)]
    return len(matches) == 1 and matches[0]


def _first_word(argv: Sequence[str], parser: argparse.ArgumentParser) -> int | None:
    """Where the first word that is neither an option nor an option's value stands."""
    values = _option_values(parser)
    at = 0
    while at < len(argv):
        arg = argv[at]
        if arg == "--":  # what follows is no command; argparse will say so
            return None
        if not arg.startswith("-"):
            return at
        at += 2 if _takes_value(arg, values) else 1
    return None


def _placed(argv: Sequence[str], parser: argparse.ArgumentParser) -> tuple[list[str], str | None]:
    """argv with its command first, and the word that stands where a command should but
    names none (`stats`), if any.

    `run` goes first unless argv names a command or asks for the top-level help or
    version. Options may stand before the command (`--db X status`, as an alias or a
    wrapper script writes them), so the command is looked for past them and moved to
    the front: argparse takes a command's options only after the command.
    """
    if argv and argv[0] in ("-h", "--help", "--version"):
        return list(argv), None
    at = _first_word(argv, parser)
    if at is None:
        return ["run", *argv], None
    if argv[at] in COMMANDS:
        return [argv[at], *argv[:at], *argv[at + 1:]], None
    return ["run", *argv], argv[at]


def _is_known(arg: str, values: dict[str, bool]) -> bool:
    """Whether `arg` is an option of some command, or a unique beginning of one."""
    name = arg.partition("=")[0]
    return name in values or sum(option.startswith(name) for option in values) == 1


def _unknown_option(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """The first option in `argv` that no command has (before any `--`)."""
    values = _option_values(parser)
    for arg in argv:
        if arg == "--":
            return None
        if arg.startswith("-") and arg != "-" and not _is_known(arg, values):
            return arg
    return None


def _did_you_mean(option: str, options: Sequence[str]) -> str:
    """`did you mean `--processed`? ` for `--proccessed`, or nothing."""
    close = difflib.get_close_matches(option.partition("=")[0], options, n=1, cutoff=0.7)
    return f"did you mean `{close[0]}`? " if close else ""


def _unknown_command(word: str, argv: Sequence[str], parser: argparse.ArgumentParser,
                     prog: str) -> int:
    """Log that `word` stands where a command should; the exit code of a usage error.

    An unknown option before it is the likelier mistake (`--da X status`: `X` is `--da`'s
    value, and `--da` a typo of `--db`), so that is what is reported then.
    """
    option = _unknown_option(argv, parser)
    if option is not None:
        log.error("usage_error", reason=f"unknown option {option!r}",
                  hint=_did_you_mean(option, list(_option_values(parser)))
                  + f"see {prog} --help")
        return EXIT_USAGE
    close = difflib.get_close_matches(word, COMMANDS, n=1)
    log.error("usage_error",
              reason=f"unknown command {word!r} (choose from {', '.join(COMMANDS)})",
              hint=(f"did you mean `{prog} {close[0]}`? " if close else "")
              + f"see {prog} --help")
    return EXIT_USAGE


def _unrecognized(command: argparse.ArgumentParser, extras: Sequence[str]) -> NoReturn:
    """A command's arguments it does not take, with the option it most likely meant."""
    options = [o for action in command._actions for o in action.option_strings]
    typo = next((e for e in extras if e.startswith("-")), None)
    log.error("usage_error", reason=f"unrecognized arguments: {' '.join(extras)}",
              hint=(_did_you_mean(typo, options) if typo else "")
              + f"see {command.prog} --help")
    sys.exit(EXIT_USAGE)


def load(args: argparse.Namespace) -> Settings:
    """The settings for a parsed command line; `ConfigError` names the bad source."""
    names = _PATH_OPTIONS + (RUN_OPTIONS if args.command == "run" else ())
    return registry.place(load_settings({name: getattr(args, name) for name in names},
                                        config_file=args.config))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    # Threads inherit the signal mask: block the stop signals while threads are started
    # (the entry points do so even before their imports) and restore it at the end.
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals.STOP)
    try:
        return _main(sys.argv[1:] if argv is None else argv, prog)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _main(argv: Sequence[str], prog: str) -> int:
    parser = build_parser(prog)
    argv, unknown = _placed(argv, parser)
    # The daemon logs to stdout; an operator's command keeps stdout for its tables or
    # its JSON, and logs its errors on stderr.
    logs.configure(sys.stderr if argv[0] in ops.NAMES or unknown else None)
    if unknown is not None:
        # `run` would call it an unrecognized argument, which names no command there is.
        return _unknown_command(unknown, argv, parser, prog)
    args, extras = parser.parse_known_args(argv)
    if extras:
        # argparse hands a command's unknown arguments up to the top-level parser, whose
        # hint would be the top-level help: the command's own help is the one to read.
        _unrecognized(_commands(parser)[args.command], extras)
    exposure.warn_of_command_line(args.db)
    try:
        settings = load(args)
    except ConfigError as exc:
        # Each of several problems as data too (a feeds declaration's), for jq.
        log.error("config_invalid", reason=exc.message, hint=exc.hint,
                  **({"problems": list(exc.problems)} if exc.problems else {}))
        return EXIT_USAGE
    exposure.warn_of_config_file(settings)
    for variable, meant in settings.unknown_variables.items():
        # A warning, not a refusal, for a variable like no setting's (one like a setting's
        # is refused by `load_settings`): other tools may use the prefix too.
        log.warning("environment_variable_unknown", variable=variable,
                    hint=(f"did you mean {meant}? " if meant else "") + "ETL_ variables set "
                    "the settings of the same name (ETL_DB for db); this one is ignored "
                    "(list it in foreign_variables to silence this)")
    if args.command != "run":
        # A command is not the daemon: a hang-up or a quit ends it as it would any tool.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(signals.TAKEN) - set(signals.STOP))
        return ops.run(args.command, settings, args, prog=prog)
    # Blocked until the daemon's handlers are in place, for callers that did not come
    # through `daemon.app.console` (tests call `main`): the imports below start threads.
    signal.pthread_sigmask(signal.SIG_BLOCK, signals.TAKEN)
    # Imported here: the daemon's pipeline brings pyarrow and pandas (half a second),
    # which the operator's commands do without.
    from filedrop_etl.daemon.app import service

    return service.run(settings, once=args.once)
