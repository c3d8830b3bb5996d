"""A daemon's JSON log read as it grows: the one tail that bench, torture and soak share.

Each call returns the lines completed since the last one. A line counts once its newline
is written, so a line the daemon is still writing waits for the next call. Lines that
are not JSON objects are returned apart, for the caller to judge: the daemon should
write none, and a harness decides whether one is a failure. `events_in` reads a whole
log once, by the same rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class LogTail:
    """Reads one log file incrementally; a missing file has no lines yet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._pending = b""

    def read(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The JSON objects and the other lines completed since the last call."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
                self._offset = log.tell()
        except FileNotFoundError:
            return [], []
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        events: list[dict[str, Any]] = []
        stray: list[str] = []
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                stray.append(line)
                continue
            if isinstance(event, dict):
                events.append(event)
            else:
                stray.append(line)
        return events, stray


def events_in(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of every complete line of the log at `path` now (a line still
    being written is left out; other lines are skipped)."""
    return LogTail(path).read()[0]
