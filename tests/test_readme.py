"""The README's sqlite3-shell recipes, run as written against a real database.

The recipes are read out of README.md itself (the shell block of "Reading the load
history with the sqlite3 shell"), so a renamed column or a typo there fails here. The
database is the one the demo leaves: the same day loaded twice and the next day, plus a
bad file that failed and was sent back with `retry`, all through the real pipeline and
command. Each recipe runs on a read-only connection, as `sqlite3 -readonly` opens it,
and the shell runs it too when it is installed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from filedrop_etl.config import Settings
from filedrop_etl.daemon.app import cli
from filedrop_etl.daemon.load.pipeline import Pipeline
from tests.conftest import ROOT, day_table, replaced_at, write_parquet

SECTION = "### Reading the load history with the sqlite3 shell"
DAY, NEXT, BAD_DAY = "2026-02-10", "2026-02-11", "2026-02-12"


def recipes() -> list[tuple[str, str]]:
    """(comment, SQL) for each `sqlite3 ... etl.db "SQL"` line of the section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(re.escape(SECTION) + r".*?```sh\n(.*?)```", text, re.S)
    assert block, f"README.md has no {SECTION!r} shell block"
    found, comment = [], ""
    for line in block[1].splitlines():
        if line.startswith("#"):
            comment = line.lstrip("# ")
        elif line.startswith("sqlite3 "):
            argv = shlex.split(line)
            assert argv[-2] == "etl.db", line
            found.append((comment, argv[-1]))
    return found


@pytest.fixture
def demo_db(settings: Settings, pipeline: Pipeline) -> Path:
    for day in (DAY, DAY, NEXT):
        path = write_parquet(settings.work, day_table(day), run_date=day)
        assert pipeline.process(path).status == "processed"
    bad = replaced_at(day_table(BAD_DAY), "amount", 3, -1.0)
    assert pipeline.process(write_parquet(settings.work, bad, run_date=BAD_DAY)).status \
        == "failed"
    settings.inbox.mkdir(exist_ok=True)
    assert cli.main(["retry", "--all", "--inbox", str(settings.inbox), "--failed",
                     str(settings.failed), "--processed", str(settings.processed),
                     "--db", str(settings.db_file)]) == 0
    return settings.db_file


def test_the_readme_has_the_recipes() -> None:
    # Guards the reader itself: an empty list would make the test below pass vacuously.
    assert len(recipes()) >= 7


@pytest.mark.parametrize(("comment", "sql"), recipes(), ids=[c for c, _ in recipes()])
def test_each_recipe_runs_and_finds_what_it_says(demo_db: Path, comment: str,
                                                  sql: str) -> None:
    conn = sqlite3.connect(f"file:{demo_db}?mode=ro", uri=True)
    try:
        rows = conn.execute(sql).fetchall()
    finally:
        conn.close()
    # Every recipe has something to show on this database (the failures "of the last
    # week" are the bad file's, today).
    assert rows, f"{comment}: no rows"
    shell_path = shutil.which("sqlite3")
    if shell_path:
        shell = subprocess.run([shell_path, "-readonly", "-box", str(demo_db), sql],
                               capture_output=True, text=True, timeout=30, check=False)
        assert shell.returncode == 0 and not shell.stderr, shell.stderr
        assert shell.stdout.count("\n") >= len(rows) + 4  # the box: 3 rules and a header
