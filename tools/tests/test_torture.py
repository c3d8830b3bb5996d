"""The torture tool's plan and its PostgreSQL cases: which cases `--postgres` adds, and a
tiny PostgreSQL plan run for real, each case in a schema of its own, dropped after.

The scenarios themselves are tested at CI sizes in tests/test_survival.py. The PostgreSQL
case skips without `FILEDROP_TEST_POSTGRES` (a URL to a database it may create schemas
in) and fails instead under `FILEDROP_REQUIRE_POSTGRES`, as the project's other
PostgreSQL tests do.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from tools.torture.__main__ import FULL, QUICK, SCHEMA_PREFIX, Plan, _cases, render, run
from tools.torture.scenarios import CRASH_POINTS

# The slow tier: runs tiny torture plans with real daemons.
pytestmark = pytest.mark.slow

SEED = 20261206


def _server() -> str:
    url = os.environ.get("FILEDROP_TEST_POSTGRES")
    if url:
        return url
    reason = ("no PostgreSQL server for the tests: set FILEDROP_TEST_POSTGRES=postgresql://"
              "USER@HOST:PORT/DBNAME (`.ci/run` does, with a scratch database)")
    if os.environ.get("FILEDROP_REQUIRE_POSTGRES"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_without_postgres_every_case_is_sqlite() -> None:
    for plan in (QUICK, FULL):
        cases = _cases(plan, SEED)
        assert {c.backend for c in cases} == {"sqlite"}
        assert len(cases) == len(CRASH_POINTS) * plan.crash_repeats + 2 + 1


@pytest.mark.parametrize("plan", [QUICK, FULL], ids=lambda p: p.name)
def test_postgres_adds_the_crash_points_and_random_kills(plan: Plan) -> None:
    cases = [c for c in _cases(plan, SEED, postgres=True) if c.backend == "postgresql"]
    names = [c.name for c in cases]
    assert names == [f"pg-crash-{p}-{r}" for p in CRASH_POINTS
                     for r in range(plan.pg_crash_repeats)] + ["pg-random-merge",
                                                               "pg-random-replace"]
    modes = [c.run.keywords["write_mode"] for c in cases]
    # Both write modes among the crash points, even at one run per point.
    assert {"merge", "replace"} <= set(modes[:-2])
    assert all("db_url" not in c.run.keywords for c in cases)


def _schemas(server: str) -> set[str]:
    with psycopg.connect(server) as conn:
        return {str(r[0]) for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
            (SCHEMA_PREFIX + "%",))}


def test_a_tiny_postgresql_plan_runs_each_case_in_a_schema_of_its_own(
        tmp_path: Path) -> None:
    """A crash point and a few random kills per write mode, on PostgreSQL only (CI runs
    every crash point on both backends in tests/test_survival.py). Each case audits its
    own schema: had two cases shared tables, the audit of the second would find the
    first's rows and ledger entries extra."""
    server = _server()
    plan = Plan("tiny", crash_repeats=0, random_drops=0, burst_files=0, pg_crash_repeats=1,
                pg_random_drops=2, points=("after_commit",))
    results, errors, kept = run(plan, SEED, tmp_path, server)
    assert errors == [] and kept == []
    for result in results:
        assert result.divergences == [], "\n".join(result.divergences)
        assert not any(result.tally.values())
    assert [(r.scenario, r.write_mode, r.backend) for r in results] == [
        ("crash:after_commit", "merge", "postgresql"),
        ("random-kills", "merge", "postgresql"), ("random-kills", "replace", "postgresql")]
    assert sum(r.kills for r in results) >= 1
    schemas = [str(r.details["schema"]) for r in results]
    assert len(set(schemas)) == 3 and all(s.startswith(SCHEMA_PREFIX) for s in schemas)
    assert not set(schemas) & _schemas(server), "a case's schema was left on the server"
    report = render(results).splitlines()
    assert any(line.split()[:2] == ["postgresql", "after_commit"] for line in report)
    assert sum(line.split()[:1] == ["postgresql"] for line in report) == 3
    assert "0 lost, 0 duplicated (files or rows), 0 divergences" in report[-1]
