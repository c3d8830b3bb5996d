"""Which folder a relative path in the settings is taken from, and how a message says so.

A path written in a config file is relative to that file's folder, as in systemd's units
and nginx's configuration: the file means the same from wherever the daemon or a
command is started. A path from a flag, an `ETL_` variable or the defaults (the shipped
`config/etl.toml` included) is relative to the working folder at start-up. Unless set,
processed/, failed/ and the work directory are beside the inbox. The `db` setting is
text, a file's path or a server's URL: a relative path is joined to its folder here
like any other, and text with `://` (a URL) is left as written, for its backend to read.

`origin` names the rule that gave a path, so that every message naming one says where it
came from: `db from config file /srv/etl/etl.toml, relative to its folder`; and
`check_folders` refuses two folders that are one. This module reads no environment and
no file: `config.settings` hands it what it read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from filedrop_etl.config.errors import ConfigError
from filedrop_etl.config.sources import ENV_PREFIX, masked

if TYPE_CHECKING:
    from filedrop_etl.config.settings import Settings

# The settings that are folders; `db` is a path too unless it is a URL.
FOLDER_SETTINGS = ("inbox", "processed", "failed", "work")
PATH_SETTINGS = (*FOLDER_SETTINGS, "db")
# Folders that, unless set, sit beside the inbox (`work` hidden: `.<inbox>.work`).
BESIDE_INBOX = ("processed", "failed", "work")


def anchored(name: str, value: object, folder: Path) -> tuple[object, bool]:
    """`value` of setting `name` joined to `folder` if it is a relative path, and whether
    it was; any other value as it is (the setting's parser refuses a bad one)."""
    if name not in PATH_SETTINGS or not isinstance(value, str | os.PathLike):
        return value, False
    text = os.fspath(value)
    if not text or (name == "db" and "://" in text):
        return value, False
    path = Path(text).expanduser()
    if path.is_absolute():
        return value, False
    return str(folder / path), True


def beside_inbox(inbox: Path, name: str) -> Path:
    """Where folder `name` is by default: beside the inbox (`work` hidden)."""
    return inbox.with_name(f".{inbox.name}.work" if name == "work" else name)


def origin(settings: Settings, name: str) -> str:
    """Where path setting `name` came from and which folder a relative one is taken
    from, as a message names it: `db from --db, relative to the working folder /home/x`."""
    source = settings.sources.get(name)
    folder = settings.bases.get(name)
    if source is None:  # settings built by hand record no sources
        return f"{name} as given"
    if source == "daemon":
        return f"{name} as the daemon recorded it at its start"
    if source == "default" and name in BESIDE_INBOX and folder is None:
        return f"{name} by default beside the inbox"
    given = {"flag": f"--{name}", "environment": f"{ENV_PREFIX}{name.upper()}",
             "config file": f"config file {settings.config_file}"}.get(source, "the default")
    if folder is None:
        return f"{name} from {given}"
    if source == "config file":
        return f"{name} from {given}, relative to its folder"
    return f"{name} from {given}, relative to the working folder {folder}"


def shown(settings: Settings, name: str) -> str:
    """Path setting `name`'s value with the rule that gave it, as a message shows it:
    `/srv/etl/data/etl.db (db from config file /srv/etl/etl.toml, relative to its folder)`."""
    if name == "db":  # as the backend shows it once placed; a URL never with its secrets
        value = settings.where if settings.place is not None else masked(settings.db)
    else:
        value = str(getattr(settings, name))
    return f"{value} ({origin(settings, name)})"


def check_folders(settings: Settings) -> None:
    """`ConfigError` if two of inbox, work, processed and failed are one directory."""
    seen: dict[Path, str] = {}
    for name in FOLDER_SETTINGS:
        # resolve() here only: two spellings of one directory, symlinks included, clash.
        real = getattr(settings, name).resolve()
        if real in seen:
            raise ConfigError(
                f"{name} and {seen[real]} are the same directory ({real}: "
                f"{origin(settings, seen[real])}; {origin(settings, name)})",
                hint="give each of inbox, work, processed and failed its own directory",
            )
        seen[real] = name
