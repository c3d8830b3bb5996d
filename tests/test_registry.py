"""The backend registry: which backend a `db` setting names, and what it says of it.

The registry asks each backend in turn and takes the first that accepts the setting
(PostgreSQL by its URL, then SQLite, which takes any other text as a path); placing the
settings fills in what follows from the backend: the setting as it is shown, whether the
warehouse is shared, the lock file, the database file, each node's work directory.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from filedrop_etl.config import ConfigError, Settings, contract, load_settings
from filedrop_etl.daemon.warehouse import postgresql, registry, sqlite
from filedrop_etl.daemon.warehouse.api import Backend
from tests.conftest import ROOT


@pytest.mark.parametrize(("db", "name"), [
    ("postgresql://etl@db/warehouse", "postgresql"),
    ("postgres://etl@db/warehouse", "postgresql"),
    ("POSTGRESQL://etl@db/warehouse", "postgresql"),
    ("etl.db", "sqlite"),
    ("/srv/etl/etl.db", "sqlite"),
    ("~/etl.db", "sqlite"),
])
def test_the_registry_picks_the_backend_that_accepts_the_setting(db: str, name: str) -> None:
    assert registry.backend_for(db).name == name


def test_a_setting_no_backend_accepts_is_refused_saying_what_to_give() -> None:
    """SQLite takes any text as a path, so this is only reachable with fewer backends:
    the message must still show no secret."""
    with pytest.raises(ConfigError) as refused:
        registry.backend_for("mysql://etl:hunter2@db/warehouse", (postgresql.BACKEND,))
    assert refused.value.message == ("no warehouse backend accepts the db setting "
                                     "mysql://***")
    assert "postgresql://" in refused.value.hint


def placed(tmp_path: Path, db: str, **more: object) -> Settings:
    return registry.place(load_settings({"inbox": tmp_path / "inbox", "db": db, **more},
                                        config_file=ROOT / "config" / "etl.toml",
                                        environ={}))


def test_sqlite_places_a_file_beside_its_lock(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    settings = placed(tmp_path, "link/etl.db")
    assert settings.db == str(tmp_path / "link" / "etl.db")  # absolute, link kept
    assert settings.placed.file == tmp_path / "link" / "etl.db"
    assert settings.lock_file == tmp_path / "real" / "etl.db.lock"  # beside the real file
    assert (settings.shared, settings.where) == (False, settings.db)
    assert settings.work == settings.work_root


def test_postgresql_places_each_node_in_a_work_directory_of_its_own(tmp_path: Path) -> None:
    settings = placed(tmp_path, "POSTGRESQL://etl:hunter2@db/warehouse", node="a")
    assert settings.db == "postgresql://etl:hunter2@db/warehouse"  # as libpq reads it
    assert settings.where == "postgresql://etl:***@db/warehouse"
    assert "hunter2" not in repr(settings)
    assert settings.shared and settings.placed.file is None
    assert settings.work == settings.work_root / "a"
    assert settings.lock_file == settings.work_root / "a.lock"
    given = placed(tmp_path, "postgresql://etl@db/warehouse", work=tmp_path / "mine")
    assert given.work == tmp_path / "mine"  # a work directory given is kept as given


def test_unplaced_settings_say_so_when_asked_what_the_backend_says() -> None:
    settings = load_settings({"db": "postgresql://etl@db/warehouse"}, environ={})
    assert settings.db == "postgresql://etl@db/warehouse"
    with pytest.raises(RuntimeError, match="not placed"):
        _ = settings.shared


@pytest.mark.parametrize("backend", registry.BACKENDS, ids=lambda b: b.name)
def test_each_backend_maps_every_column_kind_to_its_own_type(
        backend: Backend) -> None:
    # The types each backend declared for transactions before contracts held kinds only.
    before = {sqlite.BACKEND: {"string": "TEXT", "integer": "INTEGER", "float": "REAL",
                               "date": "TEXT"},
              postgresql.BACKEND: {"string": "text", "integer": "bigint",
                                   "float": "double precision", "date": "date"}}[backend]
    kinds = {column.kind for column in contract.TRANSACTIONS.columns}
    assert kinds == set(before)
    assert {kind: backend.column_type(contract.Column('c', kind)) for kind in kinds} == before


def test_choosing_a_backend_imports_no_driver() -> None:
    """The registry imports every backend's package: none may cost its driver's import
    (psycopg's is a large part of a SQLite daemon's start otherwise)."""
    code = ("import sys; from filedrop_etl.daemon.warehouse import registry; "
            "registry.backend_for('etl.db'); registry.backend_for('postgresql://h/d'); "
            "print(sorted(m for m in ('psycopg', 'sqlite3', 'pgpq') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
