"""Dropping a file as a careful producer does: a hidden temporary name, then a rename.

The daemon ignores hidden names, so it sees the file only once it is whole, by the
rename's event. bench times drops by the returned clock; torture only drops.
"""

from __future__ import annotations

import time
from pathlib import Path


def renamed(inbox: Path, name: str, data: bytes) -> float:
    """Write `data` under a hidden name in `inbox`, rename it to `name`; the wall-clock
    time just before the rename."""
    temp = inbox / f".{name}.tmp"
    temp.write_bytes(data)
    started = time.time()
    temp.rename(inbox / name)
    return started
