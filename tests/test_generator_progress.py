"""The generator's progress line: drawn on a terminal only, throttled, truncated, summarised.

The subprocess tests give the real generator a real pseudo-terminal (in raw mode, so the
bytes read are the bytes written); the formatting tests drive `Progress` with a fake clock.
"""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import termios
import time
import tty
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filedrop_etl.config import contract
from filedrop_etl.generator.progress import Progress, Silent, compact, duration, terminal_columns
from filedrop_etl.generator.publish import publish_parquet
from filedrop_etl.generator.transactions import BATCH_ROWS, generate, generate_table

from .conftest import ROOT, day_table

COLUMNS = 60
DAYS_ARGV = ["--start", "2026-02-10", "--days", "3", "--rows", "10"]
NAMES = ["transactions_2026-02-10.parquet", "transactions_2026-02-11.parquet",
         "transactions_2026-02-12.parquet"]


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _batches(*sizes: int) -> Iterator[pa.RecordBatch]:
    for size in sizes:
        yield pa.record_batch([pa.array(range(size))], names=["n"])


def _progress(clock: FakeClock, days: int = 4, rows: int = 1000, columns: int = 200,
              shares_terminal: bool = False) -> tuple[Progress, io.StringIO]:
    stream = io.StringIO()
    return Progress(stream, days, rows, clock=clock, columns=lambda: columns,
                    shares_terminal=shares_terminal), stream


def _drawn(output: str) -> list[str]:
    """Each text drawn after a carriage return, trailing padding removed."""
    return [part.rstrip(" \n") for part in output.split("\r") if part.strip()]


def _screen(output: str) -> list[str]:
    """What a terminal shows: each line as its carriage returns left it, blank lines dropped."""
    lines = []
    for raw in output.split("\n"):
        cells: list[str] = []
        for part in raw.split("\r"):  # each carriage return overwrites from column 0
            cells[:len(part)] = part
        lines.append("".join(cells).rstrip())
    return [line for line in lines if line]


# --- formatting with an injected clock -----------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (25, "25"), (97.14, "97.1"), (999.4, "999"), (999.6, "1k"), (1234, "1.23k"),
    (250_000, "250k"), (999_999, "1M"), (2_750_000, "2.75M"), (91_250_000, "91.2M"),
    (1.5e9, "1.5G"),
])
def test_compact_keeps_three_significant_digits(value: float, text: str) -> None:
    assert compact(value) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0.0s"), (12.34, "12.3s"), (59.9, "59.9s"), (59.97, "1:00"), (75, "1:15"),
    (3599.6, "1:00:00"), (3725, "1:02:05"),
])
def test_duration_reads_as_seconds_then_clock_time(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_line_shows_days_rows_elapsed_rate_and_eta() -> None:
    """Half the rows in 10 s: 200 rows/s, and the other half takes another 10 s."""
    clock = FakeClock()
    progress, _ = _progress(clock)
    assert progress.line(clock.now) == (
        "generator: days 0/4  rows 0/4k (0%)  0.0s  0 rows/s  ETA ?")
    for _ in range(2):
        list(progress.track(_batches(600, 400)))
        progress.day_done()
    clock.now += 10
    assert progress.line(clock.now) == (
        "generator: days 2/4  rows 2k/4k (50%)  10.0s  200 rows/s  ETA 10.0s")


def test_rows_move_within_a_day_batch_by_batch() -> None:
    """A day in several batches advances the line after each batch, before the day ends."""
    clock = FakeClock()
    progress, stream = _progress(clock, days=1, rows=1000)
    for _ in progress.track(_batches(250, 250, 500)):
        clock.now += 1
    assert _drawn(stream.getvalue()) == [
        "generator: days 0/1  rows 250/1k (25%)  1.0s  250 rows/s  ETA 3.0s",
        "generator: days 0/1  rows 500/1k (50%)  2.0s  250 rows/s  ETA 2.0s",
        "generator: days 0/1  rows 1k/1k (100%)  3.0s  333 rows/s  ETA 0.0s",
    ]


def test_redraws_are_throttled_to_the_interval() -> None:
    """Ten batches in one instant draw once; the next draw waits for 0.1 s to pass."""
    clock = FakeClock()
    progress, stream = _progress(clock, days=1, rows=100)
    batches = progress.track(_batches(*[5] * 20))
    for _ in range(10):
        next(batches)
    next(batches)  # counts the tenth batch
    assert len(_drawn(stream.getvalue())) == 1
    clock.now += 0.05
    next(batches)
    assert len(_drawn(stream.getvalue())) == 1
    clock.now += 0.06
    next(batches)
    assert _drawn(stream.getvalue())[-1].startswith("generator: days 0/1  rows 60/100 (60%)")


def test_line_is_cut_to_one_column_short_of_the_terminal() -> None:
    """Nothing drawn reaches the last column, where some terminals wrap."""
    clock = FakeClock()
    progress, stream = _progress(clock, columns=30)
    list(progress.track(_batches(10)))
    assert _drawn(stream.getvalue()) == ["generator: days 0/4  rows 10/"]


def test_summary_replaces_the_line_and_ends_it() -> None:
    """The summary overwrites the longer progress line (padding erases the rest) and ends
    with the run's only newline."""
    clock = FakeClock()
    progress, stream = _progress(clock, days=2, rows=500)
    with progress:
        for _ in range(2):
            list(progress.track(_batches(500)))
            progress.day_done()
        clock.now += 2.5
    output = stream.getvalue()
    assert output.endswith("\n")
    assert output.count("\n") == 1
    assert _screen(output) == ["generator: wrote 2 days, 1,000 rows in 2.5s (400 rows/s)"]


def test_interrupted_run_says_how_far_it_got() -> None:
    """A failure mid-run ends the line with what was published, before the error prints."""
    clock = FakeClock()
    progress, stream = _progress(clock, days=4, rows=1000)
    with pytest.raises(KeyboardInterrupt), progress:
        list(progress.track(_batches(1000)))
        progress.day_done()
        for _ in progress.track(_batches(500, 500)):
            clock.now += 1
            raise KeyboardInterrupt
    assert _screen(stream.getvalue()) == [
        "generator: stopped after 1 of 4 days, 1,000 rows in 1.0s (1k rows/s)"]


def test_run_that_never_drew_prints_no_summary() -> None:
    """An error before the first batch (say, an unwritable inbox) leaves stderr to the error."""
    progress, stream = _progress(FakeClock())
    with pytest.raises(OSError), progress:
        raise OSError("read-only file system")
    assert stream.getvalue() == ""


def test_clear_makes_room_for_stdout_on_the_same_terminal() -> None:
    """`clear` blanks the line, and the day's end redraws it at once despite the throttle."""
    clock = FakeClock()
    progress, stream = _progress(clock, days=2, rows=10, shares_terminal=True)
    list(progress.track(_batches(10)))
    progress.clear()
    stream.write("/inbox/transactions_2026-02-10.parquet\n")
    progress.day_done()
    assert _screen(stream.getvalue()) == [
        "/inbox/transactions_2026-02-10.parquet",
        "generator: days 1/2  rows 10/20 (50%)  0.0s  0 rows/s  ETA ?"]


def test_clear_leaves_the_line_alone_when_stdout_goes_elsewhere() -> None:
    clock = FakeClock()
    progress, stream = _progress(clock, shares_terminal=False)
    list(progress.track(_batches(10)))
    before = stream.getvalue()
    progress.clear()
    assert stream.getvalue() == before


def test_silent_passes_the_batches_through_untouched() -> None:
    """Off a terminal the writer gets the very iterator it got before progress existed."""
    batches = generate(date(2026, 2, 10), 5)
    silent = Silent()
    with silent:
        assert silent.track(batches) is batches


def test_publish_through_progress_writes_the_same_file(tmp_path: Path) -> None:
    """A two-row-group day through `track`: the line moves mid-file and the data is unchanged."""
    clock = FakeClock()
    progress, stream = _progress(clock, days=1, rows=BATCH_ROWS + 7)
    day = date(2026, 2, 10)

    def ticking() -> Iterator[pa.RecordBatch]:
        for batch in generate(day, BATCH_ROWS + 7):
            clock.now += 1
            yield batch

    path = publish_parquet(tmp_path, "day.parquet", contract.ARROW_SCHEMA,
                           progress.track(ticking()))
    drawn = _drawn(stream.getvalue())
    assert drawn[0].startswith("generator: days 0/1  rows 250k/250k (99%)")
    assert drawn[-1].startswith("generator: days 0/1  rows 250k/250k (100%)")
    assert pq.read_table(path).equals(generate_table(day, BATCH_ROWS + 7))


def test_terminal_columns_falls_back_to_80() -> None:
    """No terminal, or a pseudo-terminal whose size was never set (0 columns): 80."""
    assert terminal_columns(io.StringIO()) == 80
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as stream:
            assert terminal_columns(stream) == 80
            termios.tcsetwinsize(follower, (24, 50))
            assert terminal_columns(stream) == 50
    finally:
        os.close(leader)
        os.close(follower)


# --- the real generator on a pseudo-terminal -----------------------------------------------


def _run_generator(argv: list[str], inbox: Path, *, stderr_on_pty: bool = True,
                   stdout_on_pty: bool = False) -> tuple[str, str, str]:
    """Run the generator (`python -m filedrop_etl.generator`); return (stdout, stderr,
    what the pseudo-terminal got)."""
    leader, follower = pty.openpty()
    tty.setraw(follower)  # no "\n" -> "\r\n": the bytes read are the bytes written
    termios.tcsetwinsize(follower, (24, COLUMNS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
    with subprocess.Popen(
        [sys.executable, "-m", "filedrop_etl.generator", *argv, "--inbox", str(inbox)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
        stdout=follower if stdout_on_pty else subprocess.PIPE,
        stderr=follower if stderr_on_pty else subprocess.PIPE,
    ) as process:
        os.close(follower)  # the child holds it now; EOF on the leader once the child exits
        terminal = b""
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if select.select([leader], [], [], 0.5)[0]:
                    try:
                        chunk = os.read(leader, 65536)
                    except OSError:  # EIO: every copy of the follower is closed
                        break
                    if not chunk:
                        break
                    terminal += chunk
            else:
                pytest.fail("the generator did not finish within 60 s")
            out = process.stdout.read() if process.stdout else b""
            err = process.stderr.read() if process.stderr else b""
            assert process.wait(timeout=60) == 0, err
        finally:
            os.close(leader)
    return out.decode(), err.decode(), terminal.decode()


@pytest.mark.slow  # the generator as a process
def test_progress_on_a_terminal(tmp_path: Path) -> None:
    """stderr a terminal: a line with days n/N redrawn in place, then the summary."""
    out, _, terminal = _run_generator(DAYS_ARGV, tmp_path)
    assert out.splitlines() == [str(tmp_path / name) for name in NAMES]
    assert terminal.startswith("\rgenerator: days 0/3  rows 10/30 (33%)")
    assert terminal.endswith("\n")
    assert "\n" not in terminal[:-1]
    drawn = _drawn(terminal)
    assert all(len(line) <= COLUMNS - 1 for line in drawn[:-1])
    assert drawn[-1].startswith("generator: wrote 3 days, 30 rows in ")
    assert pq.read_table(tmp_path / NAMES[2]).equals(day_table("2026-02-12", rows=10))


@pytest.mark.slow  # the generator as a process
def test_paths_and_progress_share_a_terminal(tmp_path: Path) -> None:
    """stdout on the same terminal: each path on a line of its own, the summary last."""
    _, _, terminal = _run_generator(DAYS_ARGV, tmp_path, stdout_on_pty=True)
    assert _screen(terminal)[:3] == [str(tmp_path / name) for name in NAMES]
    assert len(_screen(terminal)) == 4
    assert _screen(terminal)[3].startswith("generator: wrote 3 days, 30 rows in ")


@pytest.mark.slow  # the generator as a process
def test_no_progress_on_a_pipe(tmp_path: Path) -> None:
    """stderr a pipe (scripts, logs): stderr stays empty and stdout is the paths alone."""
    out, err, terminal = _run_generator(DAYS_ARGV, tmp_path, stderr_on_pty=False)
    assert err == ""
    assert terminal == ""
    assert out == "".join(f"{tmp_path / name}\n" for name in NAMES)


@pytest.mark.slow  # the generator as a process
def test_no_progress_flag_silences_a_terminal(tmp_path: Path) -> None:
    _, _, terminal = _run_generator([*DAYS_ARGV, "--no-progress"], tmp_path)
    assert terminal == ""


@pytest.mark.slow  # the generator as a process
def test_progress_flag_draws_on_a_pipe(tmp_path: Path) -> None:
    """`--progress` asks for the line even where it would not be drawn by default."""
    _, err, _ = _run_generator([*DAYS_ARGV, "--progress"], tmp_path, stderr_on_pty=False)
    assert err.startswith("\rgenerator: days 0/3")
    assert _screen(err)[-1].startswith("generator: wrote 3 days, 30 rows in ")
