"""The benchmark's declared feeds: composite keys against the floor with the same key.

For each feed of `tools.bench.feeds` besides transactions (orders, whose key leads with
its date; order_lines, whose key does not carry it), a warehouse holding `history_days`
generated days of `rows` rows, built through the warehouse seam, takes one more day of
`rows` rows through the seam (`tools.bench.seam`, a process of its own), and a copy of
the same rows in a plain table with the same composite primary key takes the same file
through the floor (`floor`, `pg_floor`). SQLite: fresh copies of both, interleaved
`repeats` times, medians compared. PostgreSQL (given a server): once each, on schemas of
their own, history analyzed first, as the transactions column does.
"""

from __future__ import annotations

import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.warehouse.sql import Tables, q
from filedrop_etl.generator.feed import generate
from filedrop_etl.generator.publish import publish_parquet
from tools.bench import feeds, fixtures, floor, pg_floor, postgres, runs, seam


@dataclass(frozen=True)
class FeedPlan:
    history_days: int
    rows: int
    repeats: int


FEED_QUICK = FeedPlan(3, 100_000, 1)
FEED_FULL = FeedPlan(3, 1_000_000, 3)
# Seam / floor, at most: the targets.
LIMITS = {feeds.ORDERS.name: 1.1, feeds.ORDER_LINES.name: 1.3}
BENCHED = (feeds.ORDERS, feeds.ORDER_LINES)


def day_file(root: Path, contract: Contract, index: int, rows: int) -> Path:
    """One generated day of `contract`, published as a producer would."""
    day = fixtures.day(index)
    directory = root / "files" / contract.name / str(rows)
    path = directory / contract.file_name_for(day.isoformat())
    return path if path.exists() else publish_parquet(
        directory, path.name, contract.arrow_schema, generate(contract, day, rows))


def _shape(contract: Contract) -> str:
    return ("key leads with the date" if contract.date_leads_key
            else "key carries the date" if contract.keys_carry_their_date
            else "key without the date")


def _result(contract: Contract, plan: FeedPlan, seconds: list[float],
            floors: list[float]) -> dict[str, Any]:
    seam_s, floor_s = statistics.median(seconds), statistics.median(floors)
    return {"feed": contract.name, "key": "+".join(contract.key), "shape": _shape(contract),
            "history_rows": plan.history_days * plan.rows, "rows": plan.rows,
            "repeats": len(seconds), "seam_s": seam_s, "floor_s": floor_s,
            "vs_floor": seam_s / floor_s, "limit": LIMITS[contract.name]}


def sqlite_feed(contract: Contract, plan: FeedPlan, root: Path) -> dict[str, Any]:
    """One feed on SQLite: history through the seam, then seam and floor interleaved."""
    template = root / f"template-{contract.name}.db"
    days = [fixtures.day(i) for i in range(plan.history_days)]
    seam.history(seam.settings_for(str(template), root / f"history-{contract.name}",
                                   (contract,)), contract, days, plan.rows)
    with sqlite3.connect(template) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    floor_template = floor.make_history(root / f"floor-{contract.name}.db", template, contract)
    parquet = day_file(root, contract, plan.history_days, plan.rows)
    seconds, floors = [], []
    for _ in range(plan.repeats):
        floors.append(runs.floor_once(fixtures.copy_db(floor_template, root / "floor.db"),
                                      parquet, contract.name).seconds)
        run = runs.seam_once(str(fixtures.copy_db(template, root / "seam.db")), contract.name,
                             parquet)
        if run.counts["inserted"] != plan.rows:
            raise RuntimeError(f"{contract.name}: the new day did not insert its rows: {run}")
        seconds.append(run.seconds)
    return _result(contract, plan, seconds, floors)


def sqlite(plan: FeedPlan, root: Path) -> list[dict[str, Any]]:
    return [sqlite_feed(contract, plan, root) for contract in BENCHED]


def _floor_history(server: str, contract: Contract, daemon_schema: str) -> str:
    """A floor schema whose plain table holds the daemon schema's fact rows."""
    url = postgres.fresh_schema(server, "bench_feed_floor")
    t = Tables(contract)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(pg_floor.create_sql(contract))
        conn.execute((f"INSERT INTO {q(pg_floor.TABLE)} ({t.columns()}, \"loaded_at\") "
                      f"SELECT {t.columns()}, \"loaded_at\" FROM {q(daemon_schema)}.{t.fact} "
                      f"ORDER BY {t.key}").encode())
        conn.execute(f"VACUUM ANALYZE {q(pg_floor.TABLE)}".encode())
    return url


def postgres_feed(server: str, contract: Contract, plan: FeedPlan,
                  root: Path) -> dict[str, Any]:
    """One feed on PostgreSQL: the floor's load, then the seam's, on the same history."""
    url = postgres.fresh_schema(server, "bench_feed_daemon")
    try:
        days = [fixtures.day(i) for i in range(plan.history_days)]
        seam.history(seam.settings_for(url, root / f"pg-history-{contract.name}",
                                       (contract,)), contract, days, plan.rows)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"VACUUM ANALYZE {Tables(contract).fact}".encode())
        floor_url = _floor_history(server, contract, "bench_feed_daemon")
        parquet = day_file(root, contract, plan.history_days, plan.rows)
        floor_s = postgres.floor_seconds(floor_url, parquet, contract.name)
        postgres.drop_schema(server, "bench_feed_floor")
        run = runs.seam_once(url, contract.name, parquet)
    finally:
        postgres.drop_schema(server, "bench_feed_floor")
        postgres.drop_schema(server, "bench_feed_daemon")
    return _result(contract, plan, [run.seconds], [floor_s])


def on_postgres(server: str, plan: FeedPlan, root: Path) -> list[dict[str, Any]]:
    return [postgres_feed(server, contract, plan, root) for contract in BENCHED]
