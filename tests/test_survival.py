"""kill -9 at every named crash point, SIGKILLs at random moments, a burst with an
inotify overflow: the real daemon, restarted after each kill, then audited.

These are `python -m tools.torture`'s scenarios at CI sizes (`make torture` runs them at the
sizes docs/robustness.md quotes); each asserts that the audit found nothing. The audit
itself is shown to see each kind of divergence, so that a pass means something.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from filedrop_etl.daemon import crashpoints
from tools.torture import scenarios
from tools.torture.audit import TALLIES, audit
from tools.torture.drops import Drop, Model
from tools.torture.scenarios import Result

# The slow tier: kills real daemons at each crash point.
pytestmark = pytest.mark.slow

SEED = 20261126


def _passed(result: Result) -> None:
    assert result.divergences == [], "\n".join(result.divergences)
    assert set(result.tally) == set(TALLIES) and not any(result.tally.values())


def test_the_harness_knows_every_crash_point_the_daemon_has() -> None:
    assert scenarios.CRASH_POINTS == crashpoints.POINTS


@pytest.mark.parametrize("point", scenarios.CRASH_POINTS)
@pytest.mark.parametrize("write_mode", ["merge", "replace"])
def test_a_kill_at_each_crash_point_loses_and_repeats_nothing(tmp_path: Path, point: str,
                                                              write_mode: str) -> None:
    result = scenarios.crash_at_point(tmp_path, point, repeat=0, seed=SEED,
                                      write_mode=write_mode)
    _passed(result)
    assert result.kills == 1 and result.restarts == 1
    # The file in flight was found again where the kill left it, unless it was already
    # in processed/ (a kill during the move to it).
    assert result.details["resumed"] == (0 if point == "during_move" else 1)


@pytest.mark.parametrize("point", scenarios.CRASH_POINTS)
def test_a_kill_at_each_crash_point_loses_and_repeats_nothing_on_postgresql(
        tmp_path: Path, point: str, pg_url: str) -> None:
    """The same kills against a PostgreSQL warehouse: the transaction the killed
    session held is rolled back by the server, the restart takes back its own claims."""
    result = scenarios.crash_at_point(tmp_path, point, repeat=0, seed=SEED, db_url=pg_url)
    _passed(result)
    assert result.kills == 1 and result.restarts == 1
    assert result.details["resumed"] == (0 if point == "during_move" else 1)


@pytest.mark.parametrize("write_mode", ["merge", "replace"])
def test_random_kills_during_a_stream_of_drops(tmp_path: Path, write_mode: str) -> None:
    result = scenarios.random_kills(tmp_path, drops_count=16, seed=SEED, write_mode=write_mode)
    _passed(result)
    assert result.kills >= 3


def test_a_burst_that_overflows_the_inotify_queue_is_loaded_once(tmp_path: Path) -> None:
    result = scenarios.burst(tmp_path, files=300, seed=SEED)
    _passed(result)
    assert result.details["overflows"] == result.details["overflow_rescans"] == 1
    # The drops' events were lost in the overflow: the rescan found them.
    assert result.details["found_by_rescan"] == 300


@pytest.fixture(scope="module")
def clean_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """One case run without kills, kept as a template for the audit's own tests."""
    root = tmp_path_factory.mktemp("clean") / "case"
    return root, scenarios.random_kills(root, drops_count=8, seed=SEED, kill_chance=0.0)


def _copy(clean_case: tuple[Path, Result], tmp_path: Path) -> Path:
    root = tmp_path / "case"
    shutil.copytree(clean_case[0], root)
    return root


def _expected(write_mode: str = "merge", count: int = 8) -> tuple[list[Drop], Model]:
    """The drops `clean_case` made (`count` of them), and the model of them."""
    drops = scenarios.random_drops(SEED, write_mode, count)
    model = Model(write_mode)
    for drop in drops:
        model.apply(drop)
    return drops, model


def _tamper_fact(root: Path) -> None:
    with closing(sqlite3.connect(root / "etl.db")) as conn, conn:
        conn.execute('DELETE FROM "fact_transactions" WHERE "txn_id" = '
                     '(SELECT MAX("txn_id") FROM "fact_transactions")')
        conn.execute('UPDATE "fact_transactions" SET "amount" = "amount" + 1 WHERE "txn_id" = '
                     '(SELECT MIN("txn_id") FROM "fact_transactions")')


def _tamper_archive(root: Path) -> None:
    archived = sorted((root / "processed").iterdir())[0]
    shutil.copy(archived, root / "processed" / ("copy-" + archived.name))
    shutil.copy(archived, root / "inbox" / archived.name)


def _tamper_sidecar(root: Path) -> None:
    (root / "failed" / "transactions_1999-01-01.parquet.error.json").write_text("{}")


def _tamper_ledger(root: Path) -> None:
    with closing(sqlite3.connect(root / "etl.db")) as conn, conn:
        conn.execute('DELETE FROM "load_history" WHERE "id" = 1')


@pytest.mark.parametrize(("tamper", "phrases", "tallies"), [
    (_tamper_fact, ["fact keys: 1 expected but absent", "fact: 1 rows hold other values",
                    "fact_transactions_days: 1 days disagree with the fact table"],
     {"rows lost": 1, "rows wrong": 1, "days miscounted": 1}),
    (_tamper_archive, ["processed/ (by content): 1 present but not expected", "inbox/: 1"],
     {"files duplicated": 1, "ledger rows missing": 1}),
    (_tamper_sidecar, ["sidecars without their file"], {}),
    (_tamper_ledger, ["load_history processed rows vs processed/: 1 expected but absent"],
     {"ledger rows missing": 1}),
])
def test_the_audit_sees_each_kind_of_divergence(clean_case: tuple[Path, Result],
                                                tmp_path: Path,
                                                tamper: Callable[[Path], None],
                                                phrases: list[str],
                                                tallies: dict[str, int]) -> None:
    _passed(clean_case[1])
    drops, model = _expected()
    root = _copy(clean_case, tmp_path)
    clean = audit(root, root / "etl.db", drops, model)
    assert clean.divergences == [] and sum(clean.tally.values()) == 0
    tamper(root)
    findings = audit(root, root / "etl.db", drops, model)
    found = "\n".join(findings.divergences)
    for phrase in phrases:
        assert phrase in found
    assert {k: n for k, n in findings.tally.items() if n} == tallies


def test_the_audit_reads_the_postgresql_fact_table_and_ledger(tmp_path: Path,
                                                             pg_url: str) -> None:
    """A case on PostgreSQL is audited in the server's tables: a fact row deleted there
    is lost, a ledger row written twice there is extra."""
    result = scenarios.random_kills(tmp_path, drops_count=6, seed=SEED, kill_chance=0.0,
                                    db_url=pg_url)
    _passed(result)
    assert result.backend == "postgresql"
    drops, model = _expected(count=6)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute('DELETE FROM "fact_transactions" WHERE "txn_id" = '
                     '(SELECT MAX("txn_id") FROM "fact_transactions")')
        columns = ('"file_name", "sha256", "bytes", "status", "write_mode", "run_date", '
                   '"rows", "started_at", "finished_at", "feed"')
        conn.execute(f'INSERT INTO "load_history" ({columns}) SELECT {columns} '
                     'FROM "load_history" ORDER BY "id" LIMIT 1'.encode())
    findings = audit(tmp_path, pg_url, drops, model)
    assert {k: n for k, n in findings.tally.items() if n} == {"rows lost": 1,
                                                              "ledger rows extra": 1}


def test_the_report_totals_what_the_cases_did() -> None:
    from tools.torture.__main__ import render

    def crash(mode: str, divergences: list[str], tally: dict[str, int]) -> Result:
        return Result("crash:during_merge", mode, 5, 1, 1, 1.0, divergences,
                      {"point": "during_merge", "resumed": 1, "already_loaded": 0}, tally)

    text = render([crash("merge", [], {}),
                   crash("replace", ["fact: 1 keys appear more than once"],
                         {"rows repeated": 1, "files lost": 2}),
                   Result("random-kills", "merge", 30, 7, 7, 9.0, [],
                          {"resumed": 3, "already_loaded": 1}),
                   Result("crash:during_merge", "merge", 5, 1, 1, 1.0, [],
                          {"point": "during_merge", "resumed": 1, "already_loaded": 0}, {},
                          "postgresql")])
    rows = [line.split() for line in text.splitlines() if "during_" in line]
    assert rows[:2] == [["sqlite", "during_merge", "2", "1", "1", "2", "2", "2", "1", "1"],
                        ["postgresql", "during_merge", "1", "1", "0", "1", "1", "0", "0", "0"]]
    assert ("DIVERGENCE crash:during_merge (replace, sqlite): fact: 1 keys appear more than "
            "once") in text
    assert ("Total: 3 crash-point kills, 7 random kills, 45 drops: 2 lost, 1 duplicated "
            "(files or rows), 1 divergences of any kind.") in text
