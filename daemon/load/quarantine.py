"""failed/: moving a bad file there with its error sidecar, and nothing else in between.

Owns the sidecar (`<name>.error.json`, written atomically under a fresh exclusive
temporary name, mode 0644, before the file is moved, so a failed file is never without
its reason) and the quarantine move, which never overwrites, finishes a move a crash
interrupted after its sidecar, and leaves no half-written temporary behind. What a
sidecar says is the pipeline's business; names and renames are `daemon.files`'.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from filedrop_etl.daemon import crashpoints, files

_SIDECAR_TEMP_PREFIX = ".sidecar-"
# Readable by whoever may read the archive, writable only by the daemon.
SIDECAR_MODE = 0o644


def sidecar_leftovers(directory: Path) -> list[Path]:
    """Temporary sidecars left in `directory` by a process killed while writing one."""
    return sorted(directory.glob(f"{_SIDECAR_TEMP_PREFIX}*.tmp"))


def write_sidecar(archived: Path, report: Mapping[str, object]) -> Path:
    """Write `<archived>.error.json` atomically (temp file, fsync, rename), mode 0644."""
    sidecar = archived.with_name(archived.name + files.SIDECAR_SUFFIX)
    payload = json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
    # A fresh temporary name, created exclusively and never through a symlink (whoever can
    # write failed/ could plant one), and short: the sidecar's own may be as long as a
    # name can be.
    fd, temp_name = tempfile.mkstemp(prefix=_SIDECAR_TEMP_PREFIX, suffix=".tmp",
                                     dir=archived.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), SIDECAR_MODE)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        files.rename_no_replace(temp, sidecar)
    except BaseException:
        # The write too may fail (a full disk): leave no half-written file behind.
        temp.unlink(missing_ok=True)
        raise
    files.fsync_dir(sidecar.parent)
    return sidecar


def quarantine(src: Path, directory: Path, report: Mapping[str, object]) -> Path:
    """Move `src` into `directory` with its error sidecar beside it; never overwrite.

    The sidecar is written first, so a failed file is never without its reason: a crash
    or a full disk in between leaves the file in the work directory, to be failed again.
    A sidecar left without its file by such a crash, for this same file, is taken as
    this file's: the move it was written for is finished instead of starting a `~N`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for candidate in files.candidate_names(src.name):
        dst = directory / candidate
        sidecar = directory / (candidate + files.SIDECAR_SUFFIX)
        if os.path.lexists(dst):
            continue
        resumed = os.path.lexists(sidecar)
        if resumed and not _is_sidecar_of(sidecar, report):
            continue
        if not resumed:
            try:
                write_sidecar(dst, report)
            except FileExistsError:
                continue
        crashpoints.reached("during_quarantine")
        try:
            files.rename_no_replace(src, dst)
        except FileExistsError:
            if not resumed:
                sidecar.unlink()
            continue
        except BaseException:
            if not resumed:
                sidecar.unlink(missing_ok=True)
            raise
        files.fsync_dir(directory)
        files.fsync_dir(src.parent)
        return dst
    raise AssertionError("unreachable: the candidate names never run out")


def _is_sidecar_of(sidecar: Path, report: Mapping[str, object]) -> bool:
    """Whether an existing sidecar was written for the file `report` describes (the same
    name and content): only such a file may take its place."""
    if report.get("sha256") is None:
        return False
    try:
        written = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(written, dict) and written.get("sha256") == report["sha256"]
            and written.get("file") == report.get("file"))
