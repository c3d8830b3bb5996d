"""The warehouse seam's contract, held for every backend alike (SQLite and PostgreSQL).

Each test drives the worker's role (`open_warehouse`, `staged`, `commit`, `recorded`,
`record_failure`) and reads back through the history role and the tables themselves,
parametrised over the backends by `any_settings`: one test, two real databases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon import clock, warehouse
from filedrop_etl.daemon.warehouse.api import (
    FOLDER_NAMES,
    Folders,
    LoadFilter,
    LoadRecord,
    MergeCounts,
    MergePlan,
    Warehouse,
)
from tests.backends import fact_rows_in, ledger_in
from tests.conftest import day_table, replaced_at

DAY1, DAY2 = "2026-02-10", "2026-02-11"


@pytest.fixture
def opened(any_settings: Settings) -> Iterator[Warehouse]:
    inbox, work, processed, failed = (str(getattr(any_settings, n)) for n in FOLDER_NAMES)
    folders = Folders(inbox, work, processed, failed)
    held = warehouse.open_warehouse(any_settings, folders)
    yield held
    held.close()


def record(name: str, claim: str, run_date: str = DAY1, mode: str = "merge") -> LoadRecord:
    return LoadRecord(name, "ab" * 32, 1000, mode, run_date, clock.utc_now(), claim,
                      feed="transactions")


def load(held: Warehouse, table: pa.Table, claim: str, run_date: str = DAY1,
         replace: bool = False) -> MergeCounts:
    plan = MergePlan(keys_sorted=False, keys_counted=False,
                     replace_date=run_date if replace else None)
    with held.staged(TRANSACTIONS, table.to_batches(max_chunksize=7)) as staged:
        assert staged.rows == table.num_rows
        return staged.commit(record(f"transactions_{run_date}.parquet", claim, run_date,
                                    "replace" if replace else "merge"), plan)


def test_a_new_day_is_inserted_and_recorded(any_settings: Settings,
                                             opened: Warehouse) -> None:
    counts = load(opened, day_table(DAY1, 25), "c1")
    assert counts == MergeCounts(25, 25, 0, 0, 0)
    rows = fact_rows_in(any_settings)
    keys = day_table(DAY1, 25).column("txn_id").to_pylist()
    assert [r[0] for r in rows] == sorted(map(str, keys))
    assert {r[3] for r in rows} == {DAY1}
    [entry] = ledger_in(any_settings)
    assert (entry["status"], entry["rows"], entry["inserted"], entry["claim"]) == (
        "processed", 25, 25, "c1")
    recorded = opened.recorded("c1")
    assert recorded is not None and (recorded.status, recorded.counts) == ("processed", counts)
    assert opened.recorded("elsewhere") is None


def test_an_identical_rerun_changes_nothing_and_keeps_loaded_at(
        any_settings: Settings, opened: Warehouse) -> None:
    load(opened, day_table(DAY1, 25), "c1")
    before = fact_rows_in(any_settings)
    counts = load(opened, day_table(DAY1, 25).take(list(range(24, -1, -1))), "c2")
    assert counts == MergeCounts(25, 0, 0, 25, 0)
    assert fact_rows_in(any_settings) == before  # loaded_at and load_id kept


def test_a_corrected_value_is_the_one_row_updated(any_settings: Settings,
                                                  opened: Warehouse) -> None:
    load(opened, day_table(DAY1, 25), "c1")
    before = {r[0]: r for r in fact_rows_in(any_settings)}
    corrected = replaced_at(day_table(DAY1, 25), "amount", 3, 12345.5)
    assert load(opened, corrected, "c2") == MergeCounts(25, 0, 1, 24, 0)
    after = {r[0]: r for r in fact_rows_in(any_settings)}
    changed = [k for k in after if after[k] != before[k]]
    assert len(changed) == 1 and after[changed[0]][2] == 12345.5


def test_replace_mode_deletes_the_days_keys_the_file_no_longer_has(
        any_settings: Settings, opened: Warehouse) -> None:
    load(opened, day_table(DAY1, 25), "c1")
    load(opened, day_table(DAY2, 5), "c2", DAY2)
    counts = load(opened, day_table(DAY1, 25).slice(0, 20), "c3", replace=True)
    assert counts == MergeCounts(20, 0, 0, 20, 5)
    rows = fact_rows_in(any_settings)
    assert sum(r[3] == DAY1 for r in rows) == 20 and sum(r[3] == DAY2 for r in rows) == 5


def test_an_error_of_the_source_midway_leaves_nothing(any_settings: Settings,
                                                      opened: Warehouse) -> None:
    class Broken(Exception):
        pass

    def batches() -> Iterator[pa.RecordBatch]:
        yield from day_table(DAY1, 25).to_batches(max_chunksize=10)[:2]
        raise Broken("the file's third batch is corrupt")

    with pytest.raises(Broken), opened.staged(TRANSACTIONS, batches()) as staged:
        staged.commit(record("x.parquet", "c1"), MergePlan(False, False))
    assert fact_rows_in(any_settings) == [] and ledger_in(any_settings) == []
    load(opened, day_table(DAY1, 25), "c2")  # and the warehouse still loads
    assert len(fact_rows_in(any_settings)) == 25


def test_leaving_without_commit_rolls_the_staging_back(any_settings: Settings,
                                                       opened: Warehouse) -> None:
    with opened.staged(TRANSACTIONS, day_table(DAY1, 25).to_batches()) as staged:
        assert staged.surplus_rows("txn_id", 3) == (0, [])
    assert fact_rows_in(any_settings) == [] and ledger_in(any_settings) == []


def test_repeated_keys_are_counted_with_samples(opened: Warehouse) -> None:
    table = day_table(DAY1, 10)
    twice = pa.concat_tables([table, table.slice(2, 2)])
    with opened.staged(TRANSACTIONS, twice.to_batches()) as staged:
        surplus, samples = staged.surplus_rows("txn_id", 5)
    assert surplus == 2 and samples == sorted(map(str, table.column("txn_id").to_pylist()[2:4]))


def test_a_failure_is_recorded_once_per_claim(any_settings: Settings,
                                              opened: Warehouse) -> None:
    failed = record("bad.parquet", "c9")
    opened.record_failure(failed, rows=7, error="checks: boom")
    opened.record_failure(failed, rows=7, error="checks: boom")  # resumed after a crash
    [entry] = ledger_in(any_settings)
    assert (entry["status"], entry["rows"], entry["error"]) == ("failed", 7, "checks: boom")
    assert fact_rows_in(any_settings) == []


def test_the_history_reads_back_what_was_loaded(any_settings: Settings,
                                                opened: Warehouse) -> None:
    load(opened, day_table(DAY1, 25), "c1")
    load(opened, day_table(DAY2, 5), "c2", DAY2)
    opened.record_failure(record("transactions_2026-02-12.parquet", "c3", "2026-02-12"),
                          rows=None, error="schema: no")
    with warehouse.reading(any_settings) as history:
        loads = history.recent_loads(LoadFilter(limit=10))
        assert [(x.file_name, x.status) for x in loads] == [
            ("transactions_2026-02-12.parquet", "failed"),
            ("transactions_2026-02-11.parquet", "processed"),
            ("transactions_2026-02-10.parquet", "processed")]
        assert history.recent_loads(LoadFilter(file="*-02-1[01].parquet")) == loads[1:]
        assert history.recent_loads(LoadFilter(status="failed")) == loads[:1]
        tally = history.tally()
        assert (tally.processed, tally.failed, tally.loads) == (2, 1, 3)
        last = history.last_success(clock.utc_now())
        assert last is not None and last.file_name == "transactions_2026-02-11.parquet"
        assert history.loads_in_the_future(clock.utc_now()) == 0
        days = history.day_totals()
        assert [(d.run_date, d.rows) for d in days] == [(DAY1, 25), (DAY2, 5)]
        amounts = day_table(DAY1, 25).column("amount").to_pylist()
        assert days[0].amount == pytest.approx(sum(float(a or 0) for a in amounts))
        assert [(d.run_date, d.rows) for d in history.rows_per_day(31, "2026-03-01")] == [
            (DAY1, 25), (DAY2, 5)]
        customers = history.customer_totals(DAY2, DAY2)
        assert sum(c.transactions for c in customers) == 5
        assert history.has_rows()
        assert [d.node for d in history.daemons()] == [any_settings.node]
        assert history.schema_version() == (3 if any_settings.shared else 4)
