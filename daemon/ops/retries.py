"""Sending a failed file back to the inbox, and the `retries` row that remembers it.

Owns the retry of one file in failed/: it goes back under the name it was dropped
under (its sidecar's `file`, not the `name~N` failed/ may have given it), by one atomic
rename that never replaces a file in the inbox; its sidecar is then removed, and the
retry is recorded in the `retries` table (created by `schema.init_schema`). The daemon
then finds the file as it finds any drop. Its feed is the one its name matches
(`Feeds.for_file`); a file whose name can never load (it matches no feed, or holds no
calendar date) is refused (`name_refusal`): that name would fail it again; the refusal
suggests the name it most likely meant (`suggested_name`), which `as_name` (`retry NAME
--as NEW_NAME`) sends it back under, recorded as any retry, under that name. A file
superseded (`daemon.ops.superseded`: its run date loaded since from a later drop) is
held back unless forced: its older bytes would go over the good load. Printing is the
`retry` command's business.

The order is chosen so that a crash at any point loses nothing and hides nothing:
1. the `retries` row is committed first, so every file that went back has its record;
   a crash right after leaves a row for a retry whose move never happened, and the file
   still in failed/, where `status` keeps reporting it until it is retried again;
2. the rename is the one step the daemon can see, and it is atomic: the daemon finds the
   whole file in the inbox or nothing; a rename that fails takes the row back;
3. the sidecar goes last, so a failed file is never without its reason; a crash before
   it leaves a sidecar without its file in failed/, whose content the row holds:
   `remove_leftover` finishes that step (`retry --all` calls it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import BinaryIO, Literal, Protocol

from filedrop_etl.config import Settings
from filedrop_etl.config.invocation import WORDS_ONLY, CommandLine
from filedrop_etl.daemon import files, routing
from filedrop_etl.daemon.errors import BadInput
from filedrop_etl.daemon.ops import superseded
from filedrop_etl.daemon.ops.folders import FailedFile, LeftoverSidecar

# Re-exported: `status` and the page ask this module for them.
from filedrop_etl.daemon.ops.retry_names import (
    NAME_NEVER_LOADS,
    name_refusal,
    new_name_refusal,
    retry_as,
    suggested_name,
)
from filedrop_etl.daemon.warehouse import api

__all__ = ["NAME_NEVER_LOADS", "RetryResult", "name_refusal", "new_name_refusal",
           "remove_leftover", "retry", "retry_as", "suggested_name"]
# What a retry did to a file in failed/ (or would do, with --dry-run): the `outcome`
# of its result.
RetryAction = Literal["retried", "would_retry", "refused", "superseded", "sidecar_removed",
                      "would_remove_sidecar"]
# Stages where the file's own bytes were at fault, so the same bytes fail there again.
# Not open, hash, stage or load, where the environment or a bug (fixed since, perhaps)
# was the cause; not name, which `name_refusal` decides by the name alone.
CONTENT_STAGES = frozenset({"read", "schema", "checks"})


@dataclass(frozen=True)
class RetryResult:
    """What became of one file; `reason` and `hint` say why a refused one stayed, or
    warn of one sent back (or that would be) all the same."""

    failed_as: str
    file_name: str
    outcome: RetryAction
    retry_id: int | None = None
    sha256: str | None = None
    reason: str | None = None
    hint: str | None = None
    # For a name that can never load: the name it most likely meant, to retry it as.
    suggested_name: str | None = None
    # The id of the load that superseded it (held back, or sent back with --force).
    superseded_by: int | None = None


def _refused(failed: FailedFile, reason: str, hint: str) -> RetryResult:
    return RetryResult(failed.name, failed.original, "refused", reason=reason, hint=hint)


def _sent_back(failed: FailedFile, name: str, outcome: RetryAction, retry_id: int | None,
               sha256: str | None, *warnings: tuple[str, str],
               superseded_by: int | None = None) -> RetryResult:
    """The result for a file sent back as `name` (or that would be), its warnings (a
    reason and a hint each) joined by `; `: first, whether it goes back as it was when
    its content failed (the sidecar's sha256), to fail the same way."""
    if failed.stage in CONTENT_STAGES and sha256 is not None and failed.sha256 == sha256:
        warnings = ((f"unchanged since it failed at {failed.stage} (same sha256): it will "
                     "most likely fail again", "fix the file or its producer first"),
                    *warnings)
    return RetryResult(failed.name, name, outcome, retry_id, sha256,
                       "; ".join(r for r, _ in warnings) or None,
                       "; ".join(h for _, h in warnings) or None,
                       superseded_by=superseded_by)


def _taken(settings: Settings, failed: FailedFile, name: str,
           line: CommandLine) -> tuple[str, str]:
    """Why a file whose name is taken in the inbox stays, and what to do: the name it
    could go by instead is one the daemon loads as the same run date, free now."""
    contract = settings.feeds.for_file(name)
    assert contract is not None  # `name_refusal` or `new_name_refusal` let it through
    dropped = contract.file_name_for(routing.run_date_from_name(name, contract))
    free = next(n for n in files.candidate_names(dropped)
                if n != name and not os.path.lexists(settings.inbox / n))
    return (f"the inbox already holds a file named {name}",
            f"wait until the daemon has taken it (`{line('status')}` shows the inbox), "
            f"then retry again; or `{retry_as(failed, free, line)}` (another name must still be "
            f"{routing.name_rule(contract)})")


def _superseded(failed: FailedFile, load: api.Load, force: bool,
                line: CommandLine) -> tuple[str, str]:
    """What a retry of a superseded file says: held back, or sent back by force."""
    said = (f"superseded: its run date has loaded since from a later drop, "
            f"{superseded.described(load)}")
    if force:
        return (f"{said}; sent back with --force: its bytes replace that load's",
                "check the data of that run date once it has loaded")
    return (f"{said}; sent back, its older bytes would replace that load's",
            f"`{line('dismiss', files=[failed.name])}` clears it, recorded; "
            f"`{line('retry', files=[failed.name], then=('--force',))}` sends it back all "
            "the same")


def _hashed(handle: BinaryIO, limit: int | None) -> tuple[str | None, list[tuple[str, str]]]:
    """The SHA-256 of a file going back, or None and a warning for a file larger than
    `limit` (`max_file_bytes`): the daemon refuses it unread, so it is not read here
    either (a sparse file of a terabyte would take hours), nor past the limit if it grows."""
    if limit is None:
        return files.sha256_of(handle)[0], []
    try:
        if os.fstat(handle.fileno()).st_size <= limit:
            return files.sha256_of(handle, limit=limit)[0], []
    except BadInput:
        pass  # it grew while it was read
    return None, [(f"it holds more than max_file_bytes ({limit:,} bytes), so the daemon "
                   "refuses it again, unread (stage open)", "raise max_file_bytes first if "
                   "files this large are expected, or have the producer split it")]


class _Sidecars(Protocol):
    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> api.Retry | None: ...


def retry(log: api.RetryLog | None, settings: Settings, failed: FailedFile, *,
          requested_by: str, requested_at: str, dry_run: bool = False,
          as_name: str | None = None, superseded_by: api.Load | None = None,
          force: bool = False, line: CommandLine = WORDS_ONLY) -> RetryResult:
    """Move one failed file back into the inbox (as `as_name`, else under the name it was
    dropped under) and record it (see the module's order). A file `superseded_by` a
    later load is held back (outcome `superseded`) unless `force`. The commands its
    hints suggest are written by `line` (`config.invocation`)."""
    if as_name is None:
        refusal = name_refusal(failed, settings.feeds, line)
        if refusal is not None:
            return replace(_refused(failed, *refusal),
                           suggested_name=suggested_name(failed, settings.feeds))
    elif (refusal := new_name_refusal(as_name, settings.feeds)) is not None:
        return _refused(failed, *refusal)
    name = as_name or failed.original
    warnings, held = [], None
    if superseded_by is not None:
        held = superseded_by.id
        reason, hint = _superseded(failed, superseded_by, force, line)
        if not force:
            return RetryResult(failed.name, name, "superseded", reason=reason, hint=hint,
                               superseded_by=held)
        warnings.append((reason, hint))
    target = settings.inbox / name
    if os.path.lexists(target):
        return _refused(failed, *_taken(settings, failed, name, line))
    try:
        # The file as it goes back, which may have been fixed in place since it failed;
        # opened as the daemon opens it, so a link or a FIFO is refused here, not there.
        with files.open_no_follow(failed.path) as handle:
            sha256, too_large = _hashed(handle, settings.max_file_bytes)
    except OSError as exc:
        return _refused(failed, f"cannot read {failed.name}: {exc.strerror or exc}",
                        "put a regular, readable file in its place, or remove it")
    warnings += too_large
    if dry_run or log is None:
        return _sent_back(failed, name, "would_retry", None, sha256, *warnings,
                          superseded_by=held)
    # As the daemon would at its start: a retry may come before any daemon ran here.
    target.parent.mkdir(parents=True, exist_ok=True)
    sidecar = failed.path.with_name(failed.path.name + files.SIDECAR_SUFFIX)
    retry_id = log.record_retry(
        file_name=name, failed_as=failed.name, sha256=sha256, reason=failed.reason,
        sidecar=json.dumps(failed.sidecar, sort_keys=True) if failed.sidecar else None,
        requested_by=requested_by, requested_at=requested_at)
    try:
        files.rename_no_replace(failed.path, target)
    except OSError as exc:
        log.forget_retry(retry_id)
        if isinstance(exc, FileExistsError):
            return _refused(failed, *_taken(settings, failed, name, line))
        if not os.path.lexists(failed.path):
            return _refused(failed, f"{failed.name} left failed/ meanwhile",
                            "someone else retried or removed it; see "
                            f"`{line('show', files=[failed.name])}`")
        return _refused(failed, f"cannot move {failed.name} into the inbox: "
                        f"{exc.strerror or exc}", "make the inbox and failed/ writable")
    files.fsync_dir(target.parent)
    try:
        sidecar.unlink(missing_ok=True)
        files.fsync_dir(failed.path.parent)
    except OSError as exc:
        # The retry stands: the file is in the inbox and the row holds the sidecar.
        warnings.append((f"its sidecar could not be removed: {exc.strerror or exc}",
                         f"remove {sidecar} by hand"))
    return _sent_back(failed, name, "retried", retry_id, sha256, *warnings,
                      superseded_by=held)


def remove_leftover(history: _Sidecars, leftover: LeftoverSidecar, *,
                    dry_run: bool = False) -> RetryResult | None:
    """Remove a sidecar whose retry is recorded with its content (step 3 above, which a
    crash or an error cut short); None if no retry recorded it, or it is gone already.

    A sidecar no retry vouches for is left to a person: its file may have been moved
    out by hand, and it may be the only account of why that file failed.
    """
    recorded = history.retry_of_sidecar(leftover.name, leftover.content)
    if recorded is None:
        return None
    reason = (f"its file went back to the inbox as {recorded.file_name} by retry "
              f"{recorded.id}, which holds this sidecar's content")
    if dry_run:
        return RetryResult(leftover.name, recorded.file_name, "would_remove_sidecar",
                           recorded.id, recorded.sha256, reason=reason)
    try:
        leftover.path.unlink()
        files.fsync_dir(leftover.path.parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return RetryResult(leftover.name, recorded.file_name, "refused", recorded.id,
                           recorded.sha256, f"its sidecar, left by retry {recorded.id}, "
                           f"could not be removed: {exc.strerror or exc}",
                           f"remove {leftover.path} by hand")
    return RetryResult(leftover.name, recorded.file_name, "sidecar_removed", recorded.id,
                       recorded.sha256, reason=reason)
