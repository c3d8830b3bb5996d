"""The benchmark's declared feeds: the floor generalised to any feed (composite primary
key, SQLite's forms of decimals, timestamps and booleans), and the seam section at a
small size once the warehouse serves declared feeds."""

from __future__ import annotations

import dataclasses
import sqlite3
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.warehouse.api import LoadRecord
from tools.bench import composite, feeds, floor


def _floor_db(path: Path, feed: Contract) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute(floor.create_sql(floor.TABLE, key=True, feed=feed))
        conn.execute(floor.create_sql(floor.STAGING, key=False, feed=feed))
    conn.close()
    return path


@pytest.mark.parametrize("feed", [feeds.ORDERS, feeds.ORDER_LINES])
def test_the_floor_loads_a_feed_by_its_composite_key_and_skips_unchanged_rows(
        tmp_path: Path, feed: Contract) -> None:
    parquet = composite.day_file(tmp_path, feed, 0, 300)
    db = _floor_db(tmp_path / "floor.db", feed)
    floor.load(db, parquet, feed)
    conn = sqlite3.connect(db)
    try:
        info = conn.execute(f"PRAGMA index_list({floor.TABLE})").fetchall()
        key_index = next(row[1] for row in info if row[3] == "pk")
        assert [r[2] for r in conn.execute(f"PRAGMA index_info({key_index})")] == list(feed.key)
        stamps = [r[0] for r in conn.execute(f"SELECT loaded_at FROM {floor.TABLE}")]
        table = pq.read_table(parquet)
        price, paid, placed = conn.execute(
            f"SELECT price, paid, placed_at FROM {floor.TABLE} ORDER BY rowid LIMIT 1").fetchone()
        assert price == str(table.column("price")[0].as_py())
        assert Decimal(price).as_tuple().exponent == -2
        assert paid == int(table.column("paid")[0].as_py())
        assert placed == table.column("placed_at")[0].as_py().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    finally:
        conn.close()
    assert len(stamps) == 300
    # The same file again changes nothing: every value compares equal to its row's.
    floor.load(db, parquet, feed)
    conn = sqlite3.connect(db)
    try:
        again = [r[0] for r in conn.execute(f"SELECT loaded_at FROM {floor.TABLE}")]
    finally:
        conn.close()
    assert again == stamps


def test_the_feeds_differ_in_the_path_their_key_takes() -> None:
    assert feeds.ORDERS.date_leads_key and feeds.ORDERS.dated_keys
    assert not feeds.ORDER_LINES.dated_keys
    assert composite.LIMITS == {"orders": 1.1, "order_lines": 1.3}


_SEAM_OF_FEEDS = "feed" in {f.name for f in dataclasses.fields(LoadRecord)}


@pytest.mark.slow  # processes
@pytest.mark.skipif(not _SEAM_OF_FEEDS, reason="the warehouse serves declared feeds from "
                    "issue 23's seam on (LoadRecord.feed)")
def test_the_feed_section_runs_at_a_small_size(tmp_path: Path) -> None:
    plan = composite.FeedPlan(history_days=2, rows=2_000, repeats=1)
    results = composite.sqlite(plan, tmp_path)
    assert [r["feed"] for r in results] == ["orders", "order_lines"]
    for one in results:
        assert one["history_rows"] == 4_000 and one["rows"] == 2_000
        assert one["seam_s"] > 0 and one["floor_s"] > 0
        assert one["vs_floor"] == one["seam_s"] / one["floor_s"]
