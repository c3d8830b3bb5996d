"""How every operator command prints: aligned tables for people, one JSON document for jq.

Owns the table layout (a header, columns padded to their widest cell, numbers aligned
right, `-` for nothing), the escaping of text that came from outside (a file name may
hold a newline or a terminal escape sequence: control characters print as `\\xNN`), the
short form of timestamps in tables, and the JSON output (dataclasses as objects,
timestamps as the ISO-8601 UTC text the database holds). Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TextIO

Cell = str | int | float | None
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?Z")


def safe(text: str) -> str:
    """`text` with control characters shown as `\\xNN`, never sent to the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def short(text: str, width: int) -> str:
    """`text` cut to `width` characters, ending in `…` when cut."""
    return text if len(text) <= width else text[:width - 1] + "…"


def when(timestamp: str | None) -> str | None:
    """A ledger timestamp to the second, as a table shows it: `2026-03-01 12:00:00Z`."""
    if timestamp is None:
        return None
    match = _TIMESTAMP.fullmatch(timestamp)
    return f"{match[1]} {match[2]}Z" if match else timestamp


def _shown(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return safe(str(value))


def render(columns: Sequence[str], rows: Iterable[Sequence[Cell]], *,
           empty: str = "(none)", numeric: Collection[str] = ()) -> str:
    """An aligned table, its header in capitals; `empty` when there are no rows.

    Columns of numbers are right-aligned, and so are those named in `numeric` whatever
    they hold: a count column of only "-" (unknown) still lines up with its neighbours.
    """
    raw = [list(row) for row in rows]
    if not raw:
        return empty
    right = [columns[i] in numeric
             or (all(isinstance(r[i], int | float) or r[i] is None for r in raw)
                 and any(r[i] is not None for r in raw)) for i in range(len(columns))]
    cells = [[c.upper() for c in columns], *([_shown(v) for v in row] for row in raw)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(w) if r else cell.ljust(w)
                       for cell, w, r in zip(line, widths, right, strict=True)).rstrip()
             for line in cells]
    return "\n".join(lines)


def pairs(items: Sequence[tuple[str, Cell]]) -> str:
    """`label  value` lines, the values aligned: the heading of a status or a file."""
    width = max(len(label) for label, _ in items)
    return "\n".join(f"{label.ljust(width)}  {_shown(value)}" for label, value in items)


def record(value: object) -> dict[str, object]:
    """A dataclass instance as a JSON object: its fields but those with `repr=False`."""
    assert dataclasses.is_dataclass(value) and not isinstance(value, type)
    return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}


def plain(value: object) -> object:
    """`value` with dataclasses, tuples and paths made into what `json` can write."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return record(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def emit(text: str, stream: TextIO | None = None) -> None:
    """Print `text`; a reader that went away (`| head`) ends the output quietly, and the
    command still returns its own exit code."""
    out = stream or sys.stdout
    try:
        out.write(text + "\n")
        out.flush()
    except BrokenPipeError:
        # Python would report the failed flush again at exit: point stdout elsewhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)


def emit_json(document: object, stream: TextIO | None = None) -> None:
    """One JSON document on stdout (dataclass fields with `repr=False` left out)."""
    emit(json.dumps(plain(document), indent=2, ensure_ascii=False), stream)
