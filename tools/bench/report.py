"""What a benchmark run says: the machine, readable tables, targets, and the JSON file.

Every ratio in a report is between numbers measured in the same run on the same
machine; absolute times are printed beside them but only the ratios are judged.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    limit: float
    at_most: bool = True

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def line(self) -> str:
        sign = "<=" if self.at_most else ">="
        verdict = "met" if self.met else "MISSED"
        return f"  {verdict:6}  {self.name}: {self.value:.2f} (target {sign} {self.limit:g})"


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare this run with theirs."""
    versions = {p: metadata.version(p) for p in
                ("pyarrow", "watchdog", "structlog", "pandas", "adbc-driver-sqlite")}
    return {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "sqlite (python sqlite3)": sqlite3.sqlite_version,
        "sqlite (adbc driver)": _adbc_sqlite_version(),
        "arrow memory pool (daemon)": "system",
        **versions,
    }


def _adbc_sqlite_version() -> str:
    import adbc_driver_manager as adbc
    import adbc_driver_sqlite

    with adbc_driver_sqlite.connect() as database, adbc.AdbcConnection(database) as conn, \
            adbc.AdbcStatement(conn) as statement:
        statement.set_sql_query("SELECT sqlite_version()")
        stream, _ = statement.execute_query()
        table = pa.RecordBatchReader._import_from_c(stream.address).read_all()
        return str(table.column(0)[0].as_py())


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(header)]
    out = [title, "  " + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
