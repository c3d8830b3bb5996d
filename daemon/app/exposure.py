"""Warnings of a database password left where others can read it; never a refusal.

A process's command line is readable by every local user (`ps`, `/proc/PID/cmdline`),
so a `--db` URL holding a password shows it to all of them, for as long as the daemon
runs. A config file readable by everyone does the same. The environment (`ETL_DB`) is
readable only by the process's own user and root, so a password there is not warned of.
Each warning names the secrets (`password`, `sslpassword`, ...), never their values, and
the safe ways instead. What a setting holds is its backend's to say (`Backend.secrets`).
"""

from __future__ import annotations

import stat
from pathlib import Path

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.daemon.warehouse.registry import backend_for

log = structlog.get_logger("daemon")

_INSTEAD = ("take the password out of the URL: put it in ~/.pgpass, or in a file that "
            "PGPASSFILE names (mode 0600; under systemd, a credential: LoadCredential= "
            "with PGPASSFILE=%d/NAME, as deploy/filedrop-etl-postgresql.conf does), or "
            "give the whole URL in ETL_DB from a file only the service may read "
            "(EnvironmentFile=); see the README, \"Growing past one machine\"")


def warn_of_command_line(db: str | None) -> None:
    """Warn if `--db`, as given on the command line, holds a secret (even a URL that the
    settings then refuse: the command line showed it all the same)."""
    found = backend_for(db).secrets(db) if db else []
    if found:
        log.warning("password_on_command_line", setting="db", secrets=found,
                    reason=f"the --db URL holds a secret ({', '.join(found)}): every user of "
                    "this machine can read a process's command line (ps, /proc/PID/cmdline)",
                    hint=_INSTEAD)


def warn_of_config_file(settings: Settings) -> None:
    """Warn if the database's URL came, with a secret, from a config file that every
    user may read."""
    path = settings.config_file
    if path is None or settings.sources.get("db") not in ("config file", "default"):
        return
    found = backend_for(settings.db).secrets(settings.db)
    try:
        readable = bool(Path(path).stat().st_mode & stat.S_IROTH)
    except OSError:  # read at start-up a moment ago; gone since, it shows nothing more
        return
    if found and readable:
        log.warning("password_in_readable_file", setting="db", path=str(path), secrets=found,
                    reason=f"the config file's db URL holds a secret ({', '.join(found)}) "
                    "and every user of this machine may read the file",
                    hint=f"make it readable by the service only (chmod o-r {path}), or "
                    + _INSTEAD)
