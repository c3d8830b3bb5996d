"""The promise, checked from outside: what a case directory must look like after the drops.

Given the drops and the model, `audit` reads the database with the standard `sqlite3`
module and lists the directories, and returns every divergence it finds as a sentence
(an empty list is a pass): the fact table equals the model with no key twice; nothing is
left in the inbox, the work directory or beside the database; every dropped file is in
processed/ (good ones) or failed/ (bad ones) exactly once, each failed file with its
sidecar and no sidecar without its file; `load_history` has one row per archived file
with the archive's status and bytes; the database passes its integrity check, and (on
SQLite) its rows per day agree with the fact table.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from filedrop_etl.daemon.warehouse.postgresql import books
from tools.torture.drops import Drop, Model, Row

SIDECAR_SUFFIX = ".error.json"
_SHOWN = 3


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The tallies the report adds up: what "0 lost, 0 duplicated" is the sum of.
TALLIES = ("files lost", "files duplicated", "rows lost", "rows extra", "rows repeated",
           "rows wrong", "days miscounted", "ledger rows missing", "ledger rows extra",
           "claims left")


@dataclass
class Findings:
    """Every divergence as a sentence, and the counts behind them by kind (`TALLIES`)."""

    divergences: list[str] = field(default_factory=list)
    tally: Counter[str] = field(default_factory=Counter)


def _differences(what: str, expected: Counter[str], actual: Counter[str],
                 tally: Counter[str], kinds: tuple[str, str]) -> list[str]:
    missing, extra = expected - actual, actual - expected
    tally[kinds[0]] += sum(missing.values())
    tally[kinds[1]] += sum(extra.values())
    found = []
    if missing:
        found.append(f"{what}: {sum(missing.values())} expected but absent "
                     f"(e.g. {sorted(missing)[:_SHOWN]})")
    if extra:
        found.append(f"{what}: {sum(extra.values())} present but not expected "
                     f"(e.g. {sorted(extra)[:_SHOWN]})")
    return found


def _fact(read: Read, model: Model, tally: Counter[str]) -> list[str]:
    rows = read('SELECT "txn_id", "customer_id", "amount", "run_date" '
                'FROM "fact_transactions"', ())
    found = []
    keys = Counter(str(r[0]) for r in rows)
    repeated = [k for k, n in keys.items() if n > 1]
    tally["rows repeated"] += sum(keys[k] - 1 for k in repeated)
    if repeated:
        found.append(f"fact: {len(repeated)} keys appear more than once (e.g. {repeated[:_SHOWN]})")
    actual: dict[str, Row] = {str(r[0]): (r[1], r[2], r[3]) for r in rows}
    found += _differences("fact keys", Counter(model.fact.keys()), Counter(actual.keys()),
                          tally, ("rows lost", "rows extra"))
    changed = [k for k in model.fact.keys() & actual.keys() if model.fact[k] != actual[k]]
    tally["rows wrong"] += len(changed)
    if changed:
        k = sorted(changed)[0]
        found.append(f"fact: {len(changed)} rows hold other values than the drops say "
                     f"(e.g. {k}: {actual[k]} instead of {model.fact[k]})")
    return found


def _archive(root: Path, drops: Sequence[Drop],
             tally: Counter[str]) -> tuple[list[str], dict[str, Counter[str]]]:
    found = []
    archived: dict[str, Counter[str]] = {}
    for status, directory in (("processed", root / "processed"), ("failed", root / "failed")):
        names = {p.name for p in directory.iterdir()}
        hidden = sorted(n for n in names if n.startswith("."))
        if hidden:
            found.append(f"{status}/: left-over hidden files {hidden[:_SHOWN]}")
        sidecars = {n for n in names if n.endswith(SIDECAR_SUFFIX)}
        files = names - sidecars - set(hidden)
        if status == "failed":
            orphans = sorted(s for s in sidecars if s.removesuffix(SIDECAR_SUFFIX) not in files)
            bare = sorted(f for f in files if f + SIDECAR_SUFFIX not in sidecars)
            if orphans:
                found.append(f"failed/: sidecars without their file {orphans[:_SHOWN]}")
            if bare:
                found.append(f"failed/: files without their sidecar {bare[:_SHOWN]}")
        elif sidecars:
            found.append(f"processed/: sidecars {sorted(sidecars)[:_SHOWN]}")
        archived[status] = Counter(_sha256(directory / f) for f in files)
        expected = Counter(d.sha256 for d in drops if d.good == (status == "processed"))
        found += _differences(f"{status}/ (by content)", expected, archived[status], tally,
                              ("files lost", "files duplicated"))
    return found, archived


def _ledger(read: Read, archived: dict[str, Counter[str]],
            tally: Counter[str]) -> list[str]:
    found = []
    for status, files in archived.items():
        rows = read('SELECT "sha256" FROM "load_history" WHERE "status" = ?', (status,))
        found += _differences(f"load_history {status} rows vs {status}/",
                              files, Counter(str(r[0]) for r in rows), tally,
                            ("ledger rows missing", "ledger rows extra"))
    return found


def audit(root: Path, db: Path | str, drops: Sequence[Drop], model: Model) -> Findings:
    """Every way the case directory breaks the promise; none when it keeps it."""
    findings = Findings()
    found, tally = findings.divergences, findings.tally
    for name in ("inbox", "work"):
        left = sorted(p.name for p in (root / name).iterdir())
        if left:
            found.append(f"{name}/: {len(left)} files left (e.g. {left[:_SHOWN]})")
    archive_found, archived = _archive(root, drops, tally)
    found += archive_found
    if isinstance(db, str):  # a PostgreSQL URL
        with psycopg.connect(db) as server:
            read = _reader(server)
            found += _fact(read, model, tally)
            found += _ledger(read, archived, tally)
            [(facts,)] = read("SELECT current_schema()", ())
            found += _claims(read, books.default_for(str(facts)), tally)
        return findings
    staging = sorted(p.name for p in db.parent.glob(db.name + ".staging-*"))
    if staging:
        found.append(f"staging databases left beside {db.name}: {staging[:_SHOWN]}")
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        check, = conn.execute("PRAGMA integrity_check").fetchone()
        if check != "ok":
            found.append(f"database integrity check: {check}")
        found += _fact(_reader(conn), model, tally)
        found += _days(conn, tally)
        found += _ledger(_reader(conn), archived, tally)
    return findings


def _claims(read: Read, kept: str, tally: Counter[str]) -> list[str]:
    """PostgreSQL: once drained and stopped, no claim stands (each file is archived).
    `kept`: the bookkeeping schema the daemons keep their claims in."""
    left = sorted(str(name) for name, in read(
        f'SELECT "name" FROM {books.Books(kept).claims}', ()))
    tally["claims left"] += len(left)
    return [f"claims: {len(left)} rows left for files no daemon holds "
            f"(e.g. {left[:_SHOWN]})"] if left else []


def _days(conn: sqlite3.Connection, tally: Counter[str]) -> list[str]:
    """The rows per day each load keeps (SQLite's schema version 4) against a count."""
    kept = dict(conn.execute('SELECT "run_date", "rows" FROM "fact_transactions_days"'))
    counted = dict(conn.execute('SELECT "run_date", COUNT(*) FROM "fact_transactions" '
                                'GROUP BY "run_date"'))
    wrong = sorted(d for d in kept.keys() | counted.keys() if kept.get(d) != counted.get(d))
    tally["days miscounted"] += len(wrong)
    return [f"fact_transactions_days: {len(wrong)} days disagree with the fact table (e.g. "
            f"{[(d, kept.get(d), counted.get(d)) for d in wrong[:_SHOWN]]})"] if wrong else []


Read = Callable[[str, tuple[object, ...]], list[tuple[Any, ...]]]


def _reader(conn: sqlite3.Connection | psycopg.Connection[tuple[Any, ...]]) -> Read:
    """Rows of a query on either database, dates as ISO text (SQLite's `?` marks)."""
    def read(query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        if isinstance(conn, sqlite3.Connection):
            return conn.execute(query, params).fetchall()
        rows = conn.execute(query.replace("?", "%s").encode(), params).fetchall()
        return [tuple(v.isoformat() if isinstance(v, date) else v for v in r) for r in rows]
    return read
