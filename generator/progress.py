"""The generator's progress line: days and rows done, elapsed time, rate and ETA on stderr.

It owns one line of a terminal, redrawn in place with a carriage return at most once per
`interval`, truncated to the terminal's width and replaced at the end by a summary that
ends with a newline. It counts the rows of each record batch as the writer asks for the
next one, so a large day moves the line once per row group; it never changes, buffers or
reorders the batches, so a file is the same with or without it. `Silent` is the same
interface doing nothing, for when stderr is not a terminal. It knows nothing of Parquet
files or of the command line, and it never decides by itself whether to draw.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TextIO

import pyarrow as pa

FALLBACK_COLUMNS = 80


def compact(value: float) -> str:
    """Three significant digits with a k/M/G suffix: 25, 1.23k, 250k, 2.75M."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        # 0.9995: a value that rounds up to 1000 of the smaller unit prints as 1 of this one.
        if value >= scale * 0.9995:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def duration(seconds: float) -> str:
    """12.3s under a minute, then m:ss, then h:mm:ss."""
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def terminal_columns(stream: TextIO) -> int:
    """The width of the terminal behind `stream`, or 80 when it has none (or says 0)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return FALLBACK_COLUMNS
    # A freshly opened pseudo-terminal reports 0 columns until someone sets its size.
    return columns if columns > 0 else FALLBACK_COLUMNS


class Silent:
    """The progress interface, doing nothing: the run's output stays exactly as it was."""

    def track(self, batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
        """The batches of one day, counted as they are consumed."""
        return batches

    def clear(self) -> None:
        """Erase the line so that other output to the same terminal starts on a clean one."""

    def day_done(self) -> None:
        """One more day is published."""

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        """End the run, successful or not."""


class Progress(Silent):
    """One self-redrawing line on `stream` for a run of `days` days of `rows` rows each."""

    def __init__(self, stream: TextIO, days: int, rows: int, *, shares_terminal: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 columns: Callable[[], int] | None = None, interval: float = 0.1) -> None:
        self._stream = stream
        self._days = days
        self._rows_per_day = rows
        # True when stdout prints to the same terminal, so `clear` must make room for it.
        self._shares_terminal = shares_terminal
        self._clock = clock
        self._columns = columns or (lambda: terminal_columns(stream))
        self._interval = interval
        self._started = clock()
        self._days_done = 0
        self._rows_done = 0
        self._last_draw: float | None = None
        self._drawn = 0  # characters now on the line; 0 when it is blank

    def track(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield batch
            # The writer asks for the next batch only once it has written this one.
            self._rows_done += batch.num_rows
            self._draw()

    def clear(self) -> None:
        if self._shares_terminal and self._drawn:
            self._write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def day_done(self) -> None:
        self._days_done += 1
        # After a `clear`, redraw at once so the line stays visible under the printed path.
        self._draw(force=self._last_draw is not None and not self._drawn)

    def line(self, now: float) -> str:
        """The progress line as of `now`, before truncation."""
        elapsed = now - self._started
        total = self._days * self._rows_per_day
        rate = self._rows_done / elapsed if elapsed > 0 else 0.0
        eta = duration((total - self._rows_done) / rate) if rate > 0 else "?"
        percent = 100 * self._rows_done // total if total else 100
        return (f"generator: days {self._days_done}/{self._days}  "
                f"rows {compact(self._rows_done)}/{compact(total)} ({percent}%)  "
                f"{duration(elapsed)}  {compact(rate)} rows/s  ETA {eta}")

    def summary(self, now: float) -> str:
        """The closing line: what was published, how long it took, how fast."""
        elapsed = now - self._started
        rows = self._days_done * self._rows_per_day
        rate = f" ({compact(rows / elapsed)} rows/s)" if elapsed > 0 else ""
        days = "day" if self._days == 1 else "days"
        done = (f"wrote {self._days} {days}" if self._days_done == self._days
                else f"stopped after {self._days_done} of {self._days} {days}")
        return f"generator: {done}, {rows:,} rows in {duration(elapsed)}{rate}"

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        # A run that failed before drawing anything leaves the error message on its own.
        if self._last_draw is not None:
            self._replace(self.summary(self._clock()), end="\n")

    def _draw(self, force: bool = False) -> None:
        now = self._clock()
        if not force and self._last_draw is not None and now - self._last_draw < self._interval:
            return
        self._last_draw = now
        # One column short of the width: a full line would wrap on some terminals.
        self._replace(self.line(now)[: max(self._columns() - 1, 1)])

    def _replace(self, text: str, end: str = "") -> None:
        # Trailing spaces erase what a longer previous line would leave behind.
        self._write("\r" + text + " " * (self._drawn - len(text)) + end)
        self._drawn = 0 if end else len(text)

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
