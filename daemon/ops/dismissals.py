"""Clearing a failed file from failed/ without a retry, and the `dismissals` row that
remembers who did.

Owns the dismissal of one file in failed/. It is meant for a superseded file
(`daemon.ops.superseded`: its feed's run date has loaded since from a later drop, so a
retry would only put older bytes over the good load); a file that is not superseded is
dismissed only when forced (someone decided it must never load), and the row says so.
The row records the file (as dropped and as failed/ held it), its feed and run date, its
sha256 and its sidecar, the load that superseded it, why, the OS user, the node and the
time; the `file_dismissed` log line says the same.

The order is chosen so that nothing is lost without its record: the row is committed
first; then the file is removed (a removal that fails takes the row back), then its
sidecar, last, so that a failed file is never without its reason. A crash after the row
leaves the file in failed/, where `status` goes on showing it: dismissing it again
finishes, with a second row. Printing is the `dismiss` command's business.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Literal

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.config.invocation import WORDS_ONLY, CommandLine
from filedrop_etl.daemon import files
from filedrop_etl.daemon.errors import BadInput
from filedrop_etl.daemon.ops import superseded
from filedrop_etl.daemon.ops.folders import FailedFile
from filedrop_etl.daemon.warehouse import api

# The options after a file name that a forced dismissal takes.
_FORCED = ("--force", "--reason", "TEXT")
log = structlog.get_logger("daemon.commands")

DismissAction = Literal["dismissed", "would_dismiss", "refused"]


@dataclass(frozen=True)
class DismissResult:
    """What became of one file; `reason` says why it was (or would be) dismissed, or
    why it stays, and `hint` what to do then."""

    failed_as: str
    file_name: str  # as dropped
    outcome: DismissAction
    dismissal_id: int | None = None
    feed: str | None = None
    run_date: str | None = None
    superseded_by: int | None = None
    reason: str | None = None
    hint: str | None = None


def _why(load: api.Load | None, note: str | None) -> str:
    said = (f"superseded by {superseded.described(load)}" if load is not None
            else "not superseded: dismissed with --force")
    return f"{said}: {note}" if note else said


def _sha256(failed: FailedFile, limit: int | None) -> str | None:
    """The file's SHA-256 for its row; None for one unreadable, not a regular file, or
    larger than `max_file_bytes` (not read: a sparse file of a terabyte takes hours)."""
    try:
        with files.open_no_follow(failed.path) as handle:
            if limit is not None and os.fstat(handle.fileno()).st_size > limit:
                return None
            return files.sha256_of(handle, limit=limit)[0]
    except (OSError, BadInput):
        return None


def dismiss(log_: api.RetryLog | None, settings: Settings, failed: FailedFile,
            superseded_by: api.Load | None, *, force: bool, note: str | None,
            dismissed_by: str, dismissed_at: str, dry_run: bool = False,
            line: CommandLine = WORDS_ONLY) -> DismissResult:
    """Remove one failed file and its sidecar, recorded (see the module's order); a file
    not superseded only with `force`. `log_` None (or `dry_run`): say what would be. The
    commands its hints suggest are written by `line` (`config.invocation`)."""
    day = superseded.day_of(failed, settings.feeds)
    feed, run_date = day if day is not None else (None, None)
    held = None if superseded_by is None else superseded_by.id
    result = DismissResult(failed.name, failed.original, "refused", feed=feed,
                           run_date=run_date, superseded_by=held)
    if superseded_by is None and not force:
        return replace(result, reason="it is not superseded: no later drop of its run date has "
                       "loaded since it failed", hint=f"fix its cause and "
                       f"`{line('retry', files=[failed.name])}`; or, if it must never load, "
                       f"`{line('dismiss', files=[failed.name], then=_FORCED)}`")
    why = _why(superseded_by, note)
    if dry_run or log_ is None:
        return replace(result, outcome="would_dismiss", reason=why)
    sidecar = failed.path.with_name(failed.path.name + files.SIDECAR_SUFFIX)
    sha256 = _sha256(failed, settings.max_file_bytes)
    dismissal_id = log_.record_dismissal(api.Dismissal(
        failed.original, failed.name, feed, run_date, sha256, failed.reason,
        json.dumps(failed.sidecar, sort_keys=True) if failed.sidecar else None, held, why,
        dismissed_by, settings.node, dismissed_at))
    try:
        failed.path.unlink()
    except OSError as exc:
        log_.forget_dismissal(dismissal_id)
        if isinstance(exc, FileNotFoundError):
            return replace(result, reason=f"{failed.name} left failed/ meanwhile",
                           hint="someone else retried or removed it; see "
                           f"`{line('show', files=[failed.name])}`")
        return replace(result, reason=f"cannot remove {failed.name}: {exc.strerror or exc}",
                       hint="make failed/ writable")
    hint = None
    try:
        sidecar.unlink(missing_ok=True)
        files.fsync_dir(failed.path.parent)
    except OSError as exc:
        hint = (f"its sidecar could not be removed ({exc.strerror or exc}): remove "
                f"{sidecar} by hand; the dismissals row holds its content")
    log.info("file_dismissed", file=failed.original, failed_as=failed.name, feed=feed,
             run_date=run_date, superseded_by=held, forced=superseded_by is None,
             reason=why, dismissed_by=dismissed_by, node=settings.node,
             dismissal_id=dismissal_id, sha256=sha256)
    return replace(result, outcome="dismissed", dismissal_id=dismissal_id, reason=why,
                   hint=hint)
