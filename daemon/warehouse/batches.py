"""The batches a backend stages, with the source's own errors kept apart from its own.

Both backends hand the reader's batches to a driver that pulls them (ADBC's bulk ingest,
psycopg's COPY). A driver reports an error raised while producing a batch (the file's:
a corrupt page, a value too large) as its own failure, or closes the stream on one of
its own; `BatchSource` keeps only what the source raised, so that the backend can re-raise
the input's error as it was, and count the rows that went through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa


class BatchSource:
    """Passes batches through and keeps any exception the source itself raised.

    Only the source's own errors are kept. A driver that fails mid-stream (a full disk)
    lets go of the stream, which closes this generator: the `GeneratorExit` thrown in at
    its `yield` is the driver's doing, not the input's, and kept as the input's error it
    once escaped the per-file boundary and crashed the worker.
    """

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self.batches = batches
        self.error: BaseException | None = None
        self.rows = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        source = iter(self.batches)
        while True:
            try:
                batch = next(source)
            except StopIteration:
                return
            except BaseException as exc:
                self.error = exc
                raise
            self.rows += batch.num_rows
            yield batch
