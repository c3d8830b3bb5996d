"""Which backend a `db` setting names, and what follows from it for the settings.

The only module that lists the backends. `backend_for` asks each in turn whether it
accepts the setting's text and takes the first that does: PostgreSQL by its URL, then
SQLite, which takes any other text as a path (and so comes last). `place` fills in
what the settings can not know by themselves (`config` knows no backend): the setting
read by its backend (a path made absolute, a URL checked), each node's own work
directory where the warehouse is shared, the backend's location checks, and the
`Place` (how the setting is shown, shared or not, the lock file, the database file).
Importing a backend package here imports no driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from filedrop_etl.config import ConfigError, Settings
from filedrop_etl.config.settings import Place, check_folders, masked, source_named
from filedrop_etl.daemon.warehouse import postgresql, sqlite
from filedrop_etl.daemon.warehouse.api import Backend

# Asked in this order: a backend that accepts any text (SQLite: a path) comes last.
BACKENDS: tuple[Backend, ...] = (postgresql.BACKEND, sqlite.BACKEND)


def backend_for(db: str, backends: Sequence[Backend] = BACKENDS) -> Backend:
    """The first of `backends` that accepts `db`; `ConfigError` if none does."""
    for backend in backends:
        if backend.accepts(db):
            return backend
    raise ConfigError(f"no warehouse backend accepts the db setting {masked(db)}",
                      hint="give a database file's path or a postgresql:// URL")


def place(settings: Settings, backends: Sequence[Backend] = BACKENDS) -> Settings:
    """`settings` placed by the backend that accepts its `db`; `ConfigError` naming the
    setting's source if that backend refuses it, or if the folders clash with it."""
    backend = backend_for(settings.db, backends)
    try:
        db = backend.read(settings.db)
    except ValueError as exc:
        source = source_named(settings, "db")
        raise ConfigError(f"invalid db from {source}: {backend.shown(settings.db)}: {exc}",
                          hint=f"correct the {source}") from None
    settings = replace(settings, db=db)
    if backend.shared and settings.sources.get("work") == "default" \
            and settings.work == settings.work_root:
        # Daemons sharing a warehouse may share the inbox: each node claims into a
        # folder of its own, where the others can find its files if it dies.
        settings = replace(settings, work=settings.work_root / settings.node)
        check_folders(settings)
    backend.check_location(settings)
    return replace(settings, place=Place(shown=backend.shown(db), shared=backend.shared,
                                         file=backend.file(db), lock=backend.lock_file))


def backend_of(settings: Settings) -> Backend:
    """The backend of placed `settings`."""
    return backend_for(settings.db)
