"""Atomic, Maildir-style publication of a Parquet file into a directory.

The file is written under a hidden temporary name in the destination directory itself,
flushed and fsynced, then renamed into place and the directory fsynced. A reader (the
daemon) therefore sees either nothing or the complete file, and one rename event. This
module knows Parquet and the filesystem, not what the rows mean.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_parquet(
    directory: Path, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> Path:
    """Write `batches` as `directory/name`, one row group per batch, atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    # Hidden and `.tmp`: the daemon ignores both, and the pid keeps two writers apart.
    temp = directory / f".{name}.{os.getpid()}.tmp"
    try:
        with temp.open("wb") as sink:
            with pq.ParquetWriter(sink, schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
            sink.flush()
            os.fsync(sink.fileno())
        temp.replace(final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final
