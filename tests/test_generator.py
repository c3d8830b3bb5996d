"""The generator: deterministic rows, the contract's schema, atomic publication, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filedrop_etl.config import Settings, contract
from filedrop_etl.daemon.load.pipeline import Pipeline
from filedrop_etl.generator import cli
from filedrop_etl.generator.publish import publish_parquet
from filedrop_etl.generator.transactions import BATCH_ROWS, generate, generate_table

from .conftest import ROOT, day_table, write_parquet

DAY = date(2026, 2, 10)
FILE_NAME = "transactions_2026-02-10.parquet"


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _column(table: pa.Table, name: str) -> list[Any]:
    """A column's values as Python objects."""
    return list(table.column(name).to_pylist())


def _run_cli(argv: list[str],
             capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    """Run `main(argv)` in-process; return its exit code, stdout lines and stderr."""
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def _exit_code(argv: list[str]) -> int | str | None:
    """The code an argparse error exits with."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return info.value.code


# --- determinism ----------------------------------------------------------------------------


def _generate_in_subprocess(inbox: Path, hash_seed: str) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
    env["PYTHONHASHSEED"] = hash_seed
    result = subprocess.run(
        [sys.executable, "-m", "filedrop_etl.generator", "--date", "2026-02-10", "--rows", "200",
         "--inbox", str(inbox)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(inbox / FILE_NAME)]
    return inbox / FILE_NAME


@pytest.mark.slow  # a process
def test_same_inputs_give_same_table_across_processes(tmp_path: Path) -> None:
    """Two processes with different str-hash salts write equal tables."""
    first = pq.read_table(_generate_in_subprocess(tmp_path / "one", "1"))
    second = pq.read_table(_generate_in_subprocess(tmp_path / "two", "2"))
    assert first.num_rows == 200
    assert first.equals(second)
    # ... and equal to what this process generates for the same inputs.
    assert first.equals(day_table("2026-02-10", rows=200))


def test_different_seed_gives_different_data() -> None:
    """`--seed` varies customers and amounts; keys and date stay the same."""
    base = generate_table(DAY, 100, seed=0)
    other = generate_table(DAY, 100, seed=1)
    assert not base.equals(other)
    assert _column(base, "amount") != _column(other, "amount")
    assert base.column("txn_id").equals(other.column("txn_id"))


def test_different_date_gives_different_data() -> None:
    """Another day has other amounts, not just other keys and run_date."""
    base = generate_table(DAY, 100)
    other = generate_table(date(2026, 2, 11), 100)
    assert _column(base, "amount") != _column(other, "amount")
    assert set(_column(other, "run_date")) == {"2026-02-11"}


def test_same_inputs_give_same_table_in_process() -> None:
    """Regenerating is repeatable within a process too."""
    assert generate_table(DAY, 50, seed=3).equals(generate_table(DAY, 50, seed=3))


# --- schema and format --------------------------------------------------------------------


def test_schema_is_the_contract() -> None:
    """Columns, order, types and non-nullability match the data contract."""
    table = generate_table(DAY, 10)
    assert table.schema.equals(contract.ARROW_SCHEMA)
    assert table.column_names == ["txn_id", "customer_id", "amount", "run_date"]
    assert table.schema.field("txn_id").type == pa.string()
    assert table.schema.field("customer_id").type == pa.int64()
    assert table.schema.field("amount").type == pa.float64()
    assert table.schema.field("run_date").type == pa.string()
    assert all(table.column(name).null_count == 0 for name in table.column_names)


def test_keys_are_date_prefixed_zero_padded_to_four() -> None:
    """Small days use four digits: `YYYYMMDD-0000` upwards, one per row, in order."""
    keys = _column(generate_table(DAY, 12), "txn_id")
    assert keys[0] == "20260210-0000"
    assert keys[-1] == "20260210-0011"
    assert keys == [f"20260210-{i:04d}" for i in range(12)]


@pytest.mark.parametrize(
    ("rows", "last_key"),
    [
        (10_000, "20260210-9999"),    # the largest index still fits in four digits
        (10_001, "20260210-10000"),   # one more row needs five
        (12_345, "20260210-12344"),
    ],
)
def test_key_width_grows_with_the_largest_index(rows: int, last_key: str) -> None:
    """All keys of a day share one width, enough for the last index, so they sort."""
    keys = _column(generate_table(DAY, rows), "txn_id")
    assert keys[-1] == last_key
    assert {len(k) for k in keys} == {len(last_key)}
    assert keys[0] == "20260210-" + "0" * (len(last_key) - 9)


def test_keys_unique_and_sorted() -> None:
    """Keys are unique and already in ascending order (lexicographic = numeric)."""
    keys = _column(generate_table(DAY, 12_345), "txn_id")
    assert len(set(keys)) == len(keys)
    assert keys == sorted(keys)


def test_amounts_are_non_negative_with_at_most_two_decimals() -> None:
    """Amounts are money: >= 0, finite, rounded to cents, and not all equal."""
    amounts = _column(generate_table(DAY, 2_000), "amount")
    assert min(amounts) >= 0.0
    assert max(amounts) <= 500.0
    assert all(round(a, 2) == a for a in amounts)
    assert any(round(a, 1) != a for a in amounts)  # genuinely cents, not coarser
    assert len(set(amounts)) > 100


def test_run_date_is_the_day_and_customers_are_known() -> None:
    """Every row carries the ISO run date; customer ids come from the fixed small set."""
    table = generate_table(date(2025, 12, 31), 500)
    assert set(_column(table, "run_date")) == {"2025-12-31"}
    assert _column(table, "txn_id")[0] == "20251231-0000"
    assert set(_column(table, "customer_id")) <= {10, 11, 12, 13, 14}
    assert len(set(_column(table, "customer_id"))) > 1


def test_zero_rows_gives_no_batches_and_negative_is_refused() -> None:
    """`generate` yields nothing for an empty day and refuses a negative count."""
    assert list(generate(DAY, 0)) == []
    assert generate_table(DAY, 0).num_rows == 0
    with pytest.raises(ValueError, match="negative"):
        list(generate(DAY, -1))


# --- batching ------------------------------------------------------------------------------


def test_batches_split_at_batch_rows_and_file_has_row_groups(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """BATCH_ROWS + 7 rows: two batches, two row groups, and the same data either way."""
    rows = BATCH_ROWS + 7
    batches = list(generate(DAY, rows))
    assert [b.num_rows for b in batches] == [BATCH_ROWS, 7]
    # Keys run on across the batch boundary, at one width, with no restart.
    assert batches[0].column(0)[-1].as_py() == f"20260210-{BATCH_ROWS - 1:06d}"
    assert batches[1].column(0)[0].as_py() == f"20260210-{BATCH_ROWS:06d}"

    code, out, _ = _run_cli(["--date", "2026-02-10", "--rows", str(rows),
                          "--inbox", str(tmp_path)], capsys)
    assert code == 0
    path = Path(out[0])
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups > 1
    assert metadata.num_rows == rows
    assert pq.read_table(path).equals(pa.Table.from_batches(batches))


def test_first_batch_does_not_depend_on_later_rows() -> None:
    """Rows past a batch boundary do not disturb the batches before it."""
    first_of_two = next(generate(DAY, BATCH_ROWS + 7))
    only = next(generate(DAY, BATCH_ROWS))
    assert first_of_two.equals(only)


# --- atomic publish ------------------------------------------------------------------------


def test_publish_leaves_only_the_final_file(tmp_path: Path) -> None:
    """After publication the directory holds the file and nothing hidden or temporary."""
    inbox = tmp_path / "new" / "inbox"  # created on demand
    path = publish_parquet(inbox, FILE_NAME, contract.ARROW_SCHEMA, generate(DAY, 30))
    assert path == inbox / FILE_NAME
    assert _listing(inbox) == [FILE_NAME]
    assert pq.read_table(path).equals(generate_table(DAY, 30))


def _failing_batches(after: int) -> Iterator[pa.RecordBatch]:
    """Yield `after` good batches, then fail as a crashing producer would."""
    batch = next(generate(DAY, 5))
    for _ in range(after):
        yield batch
    raise RuntimeError("producer crashed")


def test_failed_publish_leaves_no_file_and_propagates(tmp_path: Path) -> None:
    """A mid-stream error leaves neither the final nor the temporary file, and re-raises."""
    with pytest.raises(RuntimeError, match="producer crashed"):
        publish_parquet(tmp_path, FILE_NAME, contract.ARROW_SCHEMA, _failing_batches(2))
    assert _listing(tmp_path) == []


def test_failed_publish_keeps_the_previous_file(tmp_path: Path) -> None:
    """Republishing over an existing file is all-or-nothing: a failure keeps the old one."""
    old = publish_parquet(tmp_path, FILE_NAME, contract.ARROW_SCHEMA, generate(DAY, 3))
    with pytest.raises(RuntimeError):
        publish_parquet(tmp_path, FILE_NAME, contract.ARROW_SCHEMA, _failing_batches(1))
    assert _listing(tmp_path) == [FILE_NAME]
    assert pq.read_table(old).equals(generate_table(DAY, 3))


def test_interrupt_during_publish_cleans_up(tmp_path: Path) -> None:
    """Ctrl-C (a BaseException, not an Exception) also removes the temporary file."""
    def interrupted() -> Iterator[pa.RecordBatch]:
        yield next(generate(DAY, 5))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        publish_parquet(tmp_path, FILE_NAME, contract.ARROW_SCHEMA, interrupted())
    assert _listing(tmp_path) == []


# --- command line --------------------------------------------------------------------------


def test_start_and_days_write_consecutive_days(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`--start D --days 3` writes D, D+1, D+2, printing each path in order."""
    code, out, _ = _run_cli(["--start", "2026-02-10", "--days", "3", "--rows", "4",
                          "--inbox", str(tmp_path)], capsys)
    assert code == 0
    names = ["transactions_2026-02-10.parquet", "transactions_2026-02-11.parquet",
             "transactions_2026-02-12.parquet"]
    assert out == [str(tmp_path / n) for n in names]
    assert _listing(tmp_path) == names
    assert pq.read_table(tmp_path / names[2]).equals(day_table("2026-02-12", rows=4))


def test_days_cross_month_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Consecutive days are calendar days: 2026-02-27 + 2 is 2026-03-01."""
    code, _, _ = _run_cli(["--start", "2026-02-27", "--days", "3", "--rows", "1",
                        "--inbox", str(tmp_path)], capsys)
    assert code == 0
    assert _listing(tmp_path) == ["transactions_2026-02-27.parquet",
                                  "transactions_2026-02-28.parquet",
                                  "transactions_2026-03-01.parquet"]


def test_start_without_days_writes_one_day(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`--days` defaults to 1."""
    code, out, _ = _run_cli(["--start", "2026-02-10", "--inbox", str(tmp_path)], capsys)
    assert code == 0
    assert out == [str(tmp_path / FILE_NAME)]


def test_repeated_date_writes_each_once(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Each `--date` is written (a repeated one only once), with default 25 rows."""
    code, out, _ = _run_cli(["--date", "2026-03-01", "--date", "2026-02-10",
                          "--date", "2026-03-01", "--inbox", str(tmp_path)], capsys)
    assert code == 0
    assert out == [str(tmp_path / "transactions_2026-03-01.parquet"),
                   str(tmp_path / FILE_NAME)]
    assert _listing(tmp_path) == [FILE_NAME, "transactions_2026-03-01.parquet"]
    assert pq.read_table(tmp_path / FILE_NAME).num_rows == 25


def test_cli_file_matches_generate_with_seed(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`--rows` and `--seed` reach the generator; different seeds give different files."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run_cli(["--date", "2026-02-10", "--rows", "40", "--seed", "7",
                     "--inbox", str(a)], capsys)[0] == 0
    assert _run_cli(["--date", "2026-02-10", "--rows", "40", "--inbox", str(b)], capsys)[0] == 0
    seeded = pq.read_table(a / FILE_NAME)
    assert seeded.equals(day_table("2026-02-10", rows=40, seed=7))
    assert not seeded.equals(pq.read_table(b / FILE_NAME))


def test_main_returns_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`main` is callable directly and returns an int exit code rather than exiting."""
    result = cli.main(["--date", "2026-02-10", "--rows", "1", "--inbox", str(tmp_path)])
    assert isinstance(result, int)
    assert result == 0
    assert capsys.readouterr().out == f"{tmp_path / FILE_NAME}\n"


def test_days_without_start_exits_2(tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`--days` only means something with `--start`; nothing is written."""
    assert _exit_code(["--date", "2026-02-10", "--days", "2",
                       "--inbox", str(tmp_path)]) == 2
    assert "--days needs --start" in capsys.readouterr().err
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("bad", ["2026-02-30", "20260210", "2026-2-10x", "tomorrow"])
def test_invalid_date_exits_2(bad: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """A date that is not a real YYYY-MM-DD day is a usage error naming the value."""
    assert _exit_code(["--date", bad, "--inbox", str(tmp_path)]) == 2
    assert repr(bad) in capsys.readouterr().err
    assert _listing(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--date", "2026-02-10", "--rows", "0"],
        ["--date", "2026-02-10", "--rows", "-5"],
        ["--date", "2026-02-10", "--rows", "1.5"],
        ["--start", "2026-02-10", "--days", "0"],
        ["--date", "2026-02-10", "--seed", "-1"],
        ["--rows", "3"],                                       # no day at all
        ["--date", "2026-02-10", "--start", "2026-02-10"],     # both ways of naming days
    ],
    ids=["rows-0", "rows-negative", "rows-fraction", "days-0", "seed-negative", "no-day",
         "date-and-start"],
)
def test_bad_arguments_exit_2(argv: list[str], tmp_path: Path) -> None:
    """Usage errors exit 2 before anything is written."""
    assert _exit_code([*argv, "--inbox", str(tmp_path)]) == 2
    assert _listing(tmp_path) == []


def test_seed_zero_is_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--seed 0` is the default seed, explicitly."""
    code, _, _ = _run_cli(["--date", "2026-02-10", "--rows", "3", "--seed", "0",
                        "--inbox", str(tmp_path)], capsys)
    assert code == 0
    assert pq.read_table(tmp_path / FILE_NAME).equals(day_table("2026-02-10", rows=3))


def _clear_etl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("ETL_")]:
        monkeypatch.delenv(name)


def test_default_inbox_comes_from_etl_inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Without `--inbox`, files go where the daemon looks: `ETL_INBOX`."""
    _clear_etl_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ETL_INBOX", str(tmp_path / "drop"))
    code, out, _ = _run_cli(["--date", "2026-02-10", "--rows", "2"], capsys)
    assert code == 0
    assert out == [str(tmp_path / "drop" / FILE_NAME)]
    assert _listing(tmp_path) == ["drop"]


def test_default_inbox_without_env_is_inbox_under_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """With no `--inbox` and no `ETL_INBOX`, the shipped config's `inbox/` under the cwd."""
    _clear_etl_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run_cli(["--date", "2026-02-10", "--rows", "2"], capsys)
    assert code == 0
    assert out == [str(tmp_path / "inbox" / FILE_NAME)]


def test_bad_settings_exit_2_with_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A bad setting, needed for the default inbox, exits 2 naming its source."""
    _clear_etl_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ETL_SETTLE_SECONDS", "soon")
    code, out, err = _run_cli(["--date", "2026-02-10"], capsys)
    assert code == 2
    assert out == []
    assert "ETL_SETTLE_SECONDS" in err
    assert _listing(tmp_path) == []


def test_unwritable_inbox_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An inbox that is a regular file is reported, not a traceback."""
    blocker = tmp_path / "inbox"
    blocker.write_text("not a directory", encoding="utf-8")
    code, out, err = _run_cli(["--date", "2026-02-10", "--inbox", str(blocker)], capsys)
    assert code == 2
    assert out == []
    assert "cannot write to the inbox" in err
    assert blocker.read_text(encoding="utf-8") == "not a directory"


@pytest.mark.parametrize("day", ["0001-01-01", "0999-12-31", "9999-12-31"])
def test_its_files_for_years_of_any_width_load(day: str, settings: Settings,
                                               pipeline: Pipeline) -> None:
    """Guards a found bug: keys were prefixed with `strftime("%Y%m%d")`, which glibc does not
    zero-pad below the year 1000 (`10101-0000` for 0001-01-01), so the generator's own file
    failed the daemon's key check."""
    table = generate_table(date.fromisoformat(day), 25)
    assert table.column("txn_id")[0].as_py() == day.replace("-", "") + "-0000"
    claimed = write_parquet(settings.work, table, run_date=day)
    outcome = pipeline.process(claimed)
    assert outcome.status == "processed" and outcome.counts is not None
    assert outcome.counts.inserted == 25
