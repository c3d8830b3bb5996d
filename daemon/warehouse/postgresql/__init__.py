"""The PostgreSQL backend (being built): until it lands, a URL is refused clearly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from config import Settings
from config.contract import Contract
from config.database import PostgresUrl
from daemon.errors import DatabaseUnavailable
from daemon.warehouse.api import Folders, History, RetryLog


def _refuse(url: PostgresUrl) -> NoReturn:
    raise DatabaseUnavailable(f"{url}: the PostgreSQL backend is not in this build yet",
                              hint="give --db a SQLite file path")


def open_warehouse(url: PostgresUrl, contract: Contract, *, settings: Settings,
                   folders: Folders) -> NoReturn:
    _refuse(url)


@contextmanager
def reading(url: PostgresUrl, contract: Contract, timeout: float) -> Iterator[History]:
    _refuse(url)
    yield


@contextmanager
def writing(url: PostgresUrl, contract: Contract, timeout: float) -> Iterator[RetryLog]:
    _refuse(url)
    yield
