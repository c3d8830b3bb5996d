"""What the first and last bytes of a file say of it as Parquet: its frame.

A whole Parquet file starts with the magic `PAR1` and ends with its footer's length and
the magic again. The frame is read before anything else of a file: the inbox takes a
file whose frame is whole as complete (`has_parquet_footer`), and the reader tells a file
cut short from one that is not Parquet at all (`parquet_framing`). It reads eight bytes
and four, never the footer itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from filedrop_etl.daemon import files

PARQUET_MAGIC = b"PAR1"
# Header magic, footer length, footer magic: the least bytes a Parquet file can hold.
SMALLEST_PARQUET = 12


@dataclass(frozen=True)
class ParquetFraming:
    """What the first and last bytes of a file say of it as Parquet."""

    size: int
    starts: bool  # with the magic
    ends: bool  # with the magic
    footer_fits: bool  # the footer length before the closing magic fits in the file

    @property
    def complete(self) -> bool:
        """The magic at both ends around a plausible footer: a whole file, by its frame."""
        return self.starts and self.ends and self.footer_fits

    @property
    def cut_short(self) -> bool:
        """Begun as Parquet, but without the footer a whole file ends with."""
        return self.starts and (self.size < SMALLEST_PARQUET or not self.ends)


def parquet_framing(handle: BinaryIO) -> ParquetFraming:
    """Read an open file's first four and last eight bytes; rewinds it."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    head = handle.read(4)
    handle.seek(max(size - 8, 0))
    tail = handle.read(8)
    handle.seek(0)
    footer_len = int.from_bytes(tail[:4], "little")
    return ParquetFraming(size, head == PARQUET_MAGIC, tail[-4:] == PARQUET_MAGIC,
                          size >= SMALLEST_PARQUET and footer_len + SMALLEST_PARQUET <= size)


def has_parquet_footer(path: Path) -> bool:
    """True when the file starts and ends with the Parquet magic around a plausible footer."""
    try:
        with files.open_no_follow(path) as handle:
            return parquet_framing(handle).complete
    except OSError:
        return False
