"""The per-load staging database: one file's rows, bulk-written from Arrow, read by SQL.

Each load stages its file into a fresh private SQLite file beside the database
(`<db>.staging-XXXXXXXX`), written by the ADBC SQLite driver straight from the file's
Arrow batches: values are bound in C, never turned into Python objects. The file is
scratch, rebuilt from the source on any retry, so it is written without a journal or
fsync. The driver links its own copy of SQLite, and two SQLite libraries holding one
file open in one process break each other's POSIX locks. So they never share a file
while it is open: the driver never opens the daemon's database, and it closes the
staging file before the daemon's own connection attaches it read-only with
`immutable=1` (no locks taken, no journal opened); the file is deleted once detached.
Decimal, boolean and timestamp columns reach the driver in SQLite's form of them
(`types.in_sqlite_form`), so that staging holds exactly what the fact table compares.
This module owns that hand-over and nothing of the checks, the merge or the ledger.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import adbc_driver_manager as adbc
import adbc_driver_sqlite
import pyarrow as pa
import structlog

from filedrop_etl.config import EtlError
from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.errors import BadInput
from filedrop_etl.daemon.warehouse.api import WarehouseFault
from filedrop_etl.daemon.warehouse.batches import BatchSource
from filedrop_etl.daemon.warehouse.sql import q
from filedrop_etl.daemon.warehouse.sqlite.connection import uri
from filedrop_etl.daemon.warehouse.sqlite.types import column_type, in_sqlite_form, staging_schema

log = structlog.get_logger("daemon.staging")

class StagingUnavailable(WarehouseFault):
    """The private staging file could not be written. The batches are already contract-
    shaped, so this is a fault of the machine (disk full, permissions, memory), never of
    the input: the pipeline retries the load and never quarantines the file for it."""


class StagingFailed(EtlError):
    """The driver refused contract-shaped rows for no reason of the machine's: a bug,
    so the file is set aside with a traceback rather than retried forever."""


# SQLite's own words (`sqlite3_errstr`) for faults of the machine. The ADBC driver reports
# only the message, never the result code, so the words are all there is to go by.
_MACHINE_FAULTS = ("database or disk is full", "disk I/O error", "out of memory",
                   "unable to open database file", "attempt to write a readonly database",
                   "database is locked",
                   # The driver is loaded for each file: with no memory left, the loader
                   # can not map it (ENOMEM from mmap, in the loader's words).
                   "failed to map segment from shared object", "Cannot allocate memory")
_TOO_BIG = "string or blob too big"

# Kinds whose Arrow values SQLite stores in another form.
_CONVERTED = frozenset({"decimal", "boolean", "timestamp"})


def _batches(source: BatchSource, contract: Contract) -> Iterator[pa.RecordBatch]:
    if not any(c.kind in _CONVERTED for c in contract.columns):
        yield from source
        return
    for batch in source:
        yield in_sqlite_form(batch, contract)


def _create_sql(contract: Contract) -> str:
    # No constraints: a null or a repeated key must arrive, to be counted by the checks.
    columns = ", ".join(f"{q(c.name)} {column_type(c)}" for c in contract.columns)
    return f"CREATE TABLE {q(contract.staging_table)} ({columns})"


def leftover_files(db: Path) -> list[Path]:
    """Staging files of this database left by a process that was killed mid-load."""
    return sorted(db.parent.glob(f"{_glob_escape(db.name)}.staging-*"))


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _execute(conn: adbc.AdbcConnection, sql: str) -> None:
    with adbc.AdbcStatement(conn) as statement:
        statement.set_sql_query(sql)
        statement.execute_update()


def _write(path: Path, source: BatchSource, contract: Contract) -> None:
    # The driver's low-level API: its DB-API layer imports pyarrow.dataset, some 55 MB
    # of resident memory the daemon does not need.
    # The connection is in autocommit; the transaction is ours, by SQL.
    # A URI, not the path: the driver takes text, and a name need not be UTF-8.
    with adbc_driver_sqlite.connect(uri(path)) as database, \
            adbc.AdbcConnection(database) as conn:
        _execute(conn, "PRAGMA journal_mode = OFF")
        _execute(conn, "PRAGMA synchronous = OFF")
        _execute(conn, "BEGIN")
        _execute(conn, _create_sql(contract))
        with adbc.AdbcStatement(conn) as statement:
            statement.set_options(**{adbc.INGEST_OPTION_TARGET_TABLE: contract.staging_table,
                                     adbc.INGEST_OPTION_MODE: adbc.INGEST_OPTION_MODE_APPEND})
            statement.bind_stream(pa.RecordBatchReader.from_batches(
                staging_schema(contract), _batches(source, contract)))
            statement.execute_update()
        _execute(conn, "COMMIT")


@contextlib.contextmanager
def staged(db: Path, batches: Iterable[pa.RecordBatch],
           contract: Contract) -> Iterator[tuple[Path, int]]:
    """Write `batches` (contract-shaped) into a new staging file beside `db`; yield its
    path and row count; delete it afterwards, whatever happened.

    An exception raised while producing the batches is re-raised as it was; a failure of
    the staging file itself is `StagingUnavailable` when the machine is at fault (see
    `_staging_error` for the rest).
    """
    path: Path | None = None
    source = BatchSource(batches)
    try:
        try:
            fd, name = tempfile.mkstemp(prefix=f"{db.name}.staging-", dir=db.parent)
            os.close(fd)
            path = Path(name)
            _write(path, source, contract)
        except (adbc.Error, OSError) as exc:
            if source.error is None:
                raise _staging_error(exc, path or db.parent) from exc
        if source.error is not None:
            # Raised outside the handler, so that it keeps its own cause and context
            # instead of taking the driver's report of it as its context.
            raise source.error
        assert path is not None
        yield path, source.rows
    finally:
        if path is not None:
            _remove(path)


def _remove(path: Path) -> None:
    """Delete a staging file; failing that, say so and go on. The load's outcome stands
    (it may have committed already), and the next start deletes leftovers."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("staging_cleanup_failed", path=str(path), reason=str(exc),
                    hint="delete the file by hand, or restart the daemon, which does")


def _staging_error(exc: adbc.Error | OSError, where: Path) -> EtlError:
    """What a failure to write the staging file means: the machine's fault (retried), a
    value too large to store (the file's), or else a bug (the file is set aside)."""
    reason = _reason(exc)
    if isinstance(exc, OSError) or any(words in reason for words in _MACHINE_FAULTS):
        return StagingUnavailable(
            f"cannot write the staging file {where}: {reason}",
            hint="free disk space or memory, or make the database's directory "
            "writable; the file stays in the work directory and is retried")
    if _TOO_BIG in reason:
        return BadInput(f"a value or row is too large for SQLite to store: {reason}",
                        stage="stage", hint="have the producer keep each value and row "
                        "well under 1 GB, then drop the file again")
    return StagingFailed(f"the staging database refused the rows: {reason}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

