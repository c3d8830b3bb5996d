"""The operator's commands beside `run`: status, history, show, retry, dismiss, report,
feeds and migrate.

Each module adds its parser to the one entry point (`daemon.app.cli`) and runs with the
settings resolved as the daemon's are, so that it finds the same database and
directories (`migrate` reads none of the daemon's folders: it may run before any
daemon did, on tables it has yet to create). `run` here is the commands' error
boundary: an error that says what to do next (`EtlError`) or a database that cannot be
read now is logged, on stderr so that stdout holds only the tables or the JSON, and
becomes exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import structlog

from filedrop_etl.config import EtlError, Settings, invocation
from filedrop_etl.daemon.errors import DatabaseUnavailable, SchemaMismatch
from filedrop_etl.daemon.ops.commands import (
    common,
    dismiss,
    feeds,
    history,
    migrate,
    report,
    retry,
    show,
    status,
)
from filedrop_etl.daemon.warehouse.api import WarehouseBusy, WarehouseFault

log = structlog.get_logger("daemon.commands")

Runner = Callable[[Settings, argparse.Namespace], int]
_RUNNERS: dict[str, Runner] = {
    "status": status.run,
    "history": history.run_history,
    "show": show.run,
    "retry": retry.run,
    "dismiss": dismiss.run,
    "report": report.run,
    "feeds": feeds.run,
    "migrate": migrate.run,
}
NAMES = tuple(_RUNNERS)
# The folders each command reads: each must exist (see `common.daemon_folders`). Not
# `migrate`'s nor `feeds`': they need none, and the daemon's may not be recorded before
# it has run. `status` reads its own (`status.FOLDERS`): it prints what it can of the
# rest, saying which is not there.
_NEEDS: dict[str, tuple[str, ...]] = {
    "status": (),
    "history": (),
    "show": ("failed",),
    "retry": ("inbox", "failed"),
    "dismiss": ("failed",),
    "report": (),
}


def add_parsers(commands: common.Subcommands,
                shared: argparse.ArgumentParser) -> None:
    """Add every command's parser, in the order `--help` lists them."""
    for module in (status, history, show, retry, dismiss, report, feeds, migrate):
        module.add(commands, shared)


def run(name: str, settings: Settings, args: argparse.Namespace, *,
        prog: str = "filedrop-etl") -> int:
    """Run one command; its exit code, or 2 after logging why it could not run."""
    db = settings.where
    try:
        settings, disagreements = (common.daemon_folders(settings, _NEEDS[name])
                                   if name in _NEEDS else (settings, []))
        for note in disagreements:
            log.warning("folder_disagrees", folder=note.folder, given=note.given,
                        source=note.source, daemon=note.daemon,
                        hint=f"the daemon uses {note.daemon}, as it recorded at its start; "
                        f"this command reads {note.given}: drop the {note.folder} setting "
                        "to read the daemon's")
        # Every command it suggests finds this daemon again from any folder.
        args.suggested = invocation.command_line(settings, prog)
        return _RUNNERS[name](settings, args)
    except common.UsageError as exc:
        log.error("usage_error", reason=exc.message,
                  hint="; ".join(filter(None, (exc.hint, f"see {prog} {name} --help"))))
    except (DatabaseUnavailable, SchemaMismatch) as exc:
        log.error("database_unavailable", db=db, reason=exc.message, hint=exc.hint)
    except WarehouseBusy as exc:
        log.error("database_busy", db=db, reason=exc.message,
                  hint="another session holds a lock on a table this command needs (a "
                  "running load, a migration, a psql session left in a transaction: see "
                  "pg_locks); try again shortly" if settings.shared else
                  "another process holds a lock on the database for longer than "
                  "the busy timeout (a backup? an sqlite3 shell?); try again shortly")
    except WarehouseFault as exc:
        log.error("database_unavailable", db=db, reason=exc.message, hint=exc.hint)
    except EtlError as exc:
        log.error("command_failed", reason=exc.message, hint=exc.hint)
    except OSError as exc:  # a directory the command may not read or write
        log.error("command_failed", reason=str(exc),
                  hint="check that the inbox, failed/ and the database are yours to use")
    return common.EXIT_PROBLEM
