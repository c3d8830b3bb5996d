"""The daemon's folders at its start: refused before anything is made, then made.

`check` refuses what would go wrong while making them (an inbox whose parent folder does
not exist, most likely a mistyped path; a folder's path taken by a file) before the
start makes anything, so that a refused start leaves the tree as it found it; `prepare`
makes the folders that are missing, once the locks are taken, and says so for each,
naming where its path came from (`config.paths`). The start's order is
`daemon.app.service`'s.
"""

from __future__ import annotations

import structlog

from filedrop_etl.config import ConfigError, Settings
from filedrop_etl.config.paths import origin, shown
from filedrop_etl.daemon import files
from filedrop_etl.daemon.warehouse.api import FOLDER_NAMES

log = structlog.get_logger("daemon")


def check(settings: Settings) -> None:
    """`ConfigError` for a folder the start could not or should not make; makes nothing."""
    inbox = settings.inbox
    if not inbox.is_dir() and not inbox.parent.is_dir():
        # A mistyped path (ETL_INBOX=/srv/etl/inbx/ in) would otherwise be made, parents
        # and all, and watched while files wait in the real inbox.
        raise ConfigError(
            f"the inbox {shown(settings, 'inbox')} does not exist, nor does its parent "
            f"folder {inbox.parent}",
            hint=f"create the parent folder (mkdir -p {inbox.parent}) if the path is right, "
            f"or correct the inbox setting")
    for name in FOLDER_NAMES:
        path = getattr(settings, name)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"the {name} {shown(settings, name)} is not a folder",
                              hint=f"move that file away, or correct the {name} setting")


def prepare(settings: Settings) -> list[str]:
    """Make the folders that are missing, saying so for each; the names of those made.
    `ConfigError` if one can not be made, or they span filesystems."""
    made = files.prepare_directories(*(getattr(settings, n) for n in FOLDER_NAMES))
    names = [name for name in FOLDER_NAMES if getattr(settings, name) in made]
    for name in names:
        log.info(f"{name}_created", path=str(getattr(settings, name)),
                 origin=origin(settings, name),
                 hint=f"the daemon made this {name} folder, as it did not exist; if its path "
                 f"is a typo, stop the daemon and correct the {name} setting")
    return names
