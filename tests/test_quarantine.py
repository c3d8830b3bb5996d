"""Unit tests for `daemon.load.quarantine`: the sidecar and the move to failed/, on real files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from filedrop_etl.daemon.load import quarantine

NAME = "transactions_2026-02-10.parquet"


def _make(directory: Path, name: str, content: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(content)
    return path


def test_write_sidecar_writes_json_next_to_the_file(tmp_path: Path) -> None:
    archived = _make(tmp_path / "failed", "transactions_2026-02-10~1.parquet", b"x")
    report: dict[str, object] = {"stage": "checks", "rows": 3, "where": tmp_path,
                                 "failures": [{"check": "min:amount", "failed_rows": 1}]}
    sidecar = quarantine.write_sidecar(archived, report)
    assert sidecar == archived.parent / "transactions_2026-02-10~1.parquet.error.json"
    loaded = json.loads(sidecar.read_text(encoding="utf-8"))
    assert loaded == {**report, "where": str(tmp_path)}
    assert sorted(p.name for p in archived.parent.iterdir()) == sorted(
        [archived.name, sidecar.name])
    assert archived.read_bytes() == b"x"


def test_write_sidecar_never_replaces_one_and_leaves_no_temp(tmp_path: Path) -> None:
    archived = _make(tmp_path / "failed", NAME, b"x")
    first = quarantine.write_sidecar(archived, {"n": 1})
    with pytest.raises(FileExistsError):
        quarantine.write_sidecar(archived, {"n": 2})
    assert json.loads(first.read_text()) == {"n": 1}
    assert sorted(p.name for p in archived.parent.iterdir()) == sorted([NAME, first.name])


def test_quarantine_writes_the_sidecar_and_never_leaves_it_orphaned(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    failed = tmp_path / "failed"
    source = work / "transactions_2026-02-10.parquet"
    source.write_bytes(b"x")
    moved = quarantine.quarantine(source, failed, {"stage": "read"})
    assert moved == failed / source.name and not source.exists()
    assert json.loads((failed / f"{source.name}.error.json").read_text()) == {"stage": "read"}
    # A source that vanished before the move leaves no sidecar behind.
    with pytest.raises(FileNotFoundError):
        quarantine.quarantine(source, failed, {"stage": "read"})
    assert sorted(p.name for p in failed.iterdir()) == [source.name, f"{source.name}.error.json"]


def _orphaned_sidecar(tmp_path: Path, report: Mapping[str, object]) -> tuple[Path, Path]:
    """A file in work/ and, in failed/, a sidecar under its name without it: what a kill
    between the sidecar and the move leaves."""
    source = _make(tmp_path / "work", NAME, b"x")
    failed = tmp_path / "failed"
    failed.mkdir()
    quarantine.write_sidecar(failed / NAME, report)
    return source, failed


def test_quarantine_finishes_the_move_its_orphaned_sidecar_was_written_for(
        tmp_path: Path) -> None:
    report = {"file": NAME, "sha256": "ab" * 32, "stage": "checks"}
    source, failed = _orphaned_sidecar(tmp_path, report)
    moved = quarantine.quarantine(source, failed, {**report, "attempted_at": "later"})
    assert moved == failed / NAME and moved.read_bytes() == b"x"
    assert sorted(p.name for p in failed.iterdir()) == [NAME, f"{NAME}.error.json"]
    assert json.loads((failed / f"{NAME}.error.json").read_text()) == report


@pytest.mark.parametrize("other", [{"file": NAME, "sha256": "cd" * 32},
                                   {"file": "other.parquet", "sha256": "ab" * 32},
                                   {"file": NAME, "sha256": None}])
def test_quarantine_leaves_a_sidecar_of_another_file_alone(tmp_path: Path,
                                                           other: dict[str, object]) -> None:
    source, failed = _orphaned_sidecar(tmp_path, other)
    report = {"file": NAME, "sha256": "ab" * 32 if other["sha256"] else None}
    moved = quarantine.quarantine(source, failed, report)
    assert moved.name == "transactions_2026-02-10~1.parquet"
    assert json.loads((failed / f"{NAME}.error.json").read_text()) == other
    assert json.loads((failed / f"{moved.name}.error.json").read_text()) == report


def test_sidecar_leftovers_are_only_the_temporary_sidecars(tmp_path: Path) -> None:
    failed = tmp_path / "failed"
    for name in (".sidecar-123.tmp", ".sidecar-9.tmp", NAME, f"{NAME}.error.json", ".other.tmp"):
        _make(failed, name, b"x")
    assert [p.name for p in quarantine.sidecar_leftovers(failed)] == [".sidecar-123.tmp",
                                                                 ".sidecar-9.tmp"]


def test_a_sidecar_is_never_written_through_a_planted_symlink(tmp_path: Path) -> None:
    """failed/ may be writable by others: a link under any temporary name the daemon
    could pick must not make it write elsewhere."""
    failed = tmp_path / "failed"
    victim = _make(tmp_path, "victim", b"keep me")
    archived = _make(failed, NAME, b"x")
    for name in (f".sidecar-{os.getpid()}.tmp", ".sidecar-planted.tmp"):
        (failed / name).symlink_to(victim)
    sidecar = quarantine.write_sidecar(archived, {"stage": "read"})
    assert victim.read_bytes() == b"keep me"
    assert json.loads(sidecar.read_text()) == {"stage": "read"}
    assert sidecar.stat().st_mode & 0o777 == quarantine.SIDECAR_MODE
