"""What waits in the daemon's directories, as an operator sees it: read, never touched.

Owns the listing of failed/ (each file with the one-line reason, stage and original name
its `<name>.error.json` sidecar gives, and the sidecars left without their file) and the
counts of files waiting in the inbox and claimed in the work directory. The `status`,
`show` and `retry` commands and the status page read the directories through it. It
never moves, creates or deletes a file: the quarantine is `daemon.load.quarantine`'s and the
retry `daemon.ops.retries`'.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from filedrop_etl.config import Settings
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon import files, routing


@dataclass(frozen=True)
class FailedFile:
    """A file in failed/ and what its sidecar says of it."""

    name: str  # in failed/, shown (undecodable bytes as \xNN)
    original: str  # the name it was dropped under: the one a retry gives it back
    reason: str  # one line; says so when there is no readable sidecar
    stage: str | None
    hint: str | None
    attempted_at: str | None
    sha256: str | None  # of the file when it failed
    path: Path = field(repr=False)
    # The whole sidecar, or None without a readable one.
    sidecar: dict[str, object] | None = field(default=None, repr=False)


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines too) as one space."""
    return " ".join(text.split())


def _dropped_name(value: object) -> str | None:
    """The sidecar's `file` if it can be a name in the inbox again, else None.

    The sidecar sits in a directory others may write: a path, a hidden name (which the
    daemon would ignore forever) or a shown form of an undecodable name is not used.
    """
    if not isinstance(value, str) or value in ("", ".", "..") or files.is_ignored(value):
        return None
    if "/" in value or "\0" in value or "\\x" in value:
        return None
    return value


def _read_sidecar(path: Path) -> tuple[dict[str, object] | None, str | None]:
    """The sidecar's content, or None and why it could not be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "no sidecar: put into failed/ by hand?"
    except (OSError, ValueError) as exc:
        return None, f"sidecar unreadable: {exc}"
    if not isinstance(data, dict):
        return None, "sidecar unreadable: not a JSON object"
    return data, None


def _text(data: dict[str, object], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else one_line(str(value))


def failed_file(path: Path) -> FailedFile:
    """One file in failed/ with what its sidecar says (whether or not it has one)."""
    name = files.display_name(path.name)
    data, problem = _read_sidecar(path.with_name(path.name + files.SIDECAR_SUFFIX))
    if data is None:
        return FailedFile(name, name, problem or "", None, None, None, None, path)
    # `message` is what happened; `reason` repeats it with the hint in brackets.
    reason = _text(data, "message") or _text(data, "reason") or "the sidecar gives no reason"
    original = _dropped_name(data.get("file")) or name
    return FailedFile(name, original, reason, _text(data, "stage"), _text(data, "hint"),
                      _text(data, "attempted_at"), _text(data, "sha256"), path, data)


def waits_for_a_person(name: str) -> bool:
    """Whether an entry of failed/ is a failed file: neither a sidecar nor a hidden
    temporary."""
    return not name.endswith(files.SIDECAR_SUFFIX) and not files.is_ignored(name)


def failed_files(directory: Path) -> list[FailedFile]:
    """Every file waiting in failed/, oldest failure first (no sidecar: first of all)."""
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    found = [failed_file(p) for p in entries if waits_for_a_person(p.name)]
    return sorted(found, key=lambda f: (f.attempted_at or "", f.name))


def lookup(waiting: list[FailedFile], asked: str) -> FailedFile | None:
    """The failed file an operator named: by its name in failed/, else by the name it
    was dropped under if only one was; None if none (or several) is."""
    name = files.display_name(Path(asked).name)
    matches = ([f for f in waiting if f.name == name]
               or [f for f in waiting if f.original == name])
    return matches[0] if len(matches) == 1 else None


def failed_names(directory: Path) -> frozenset[str]:
    """The names (as the directory gives them) of the files `failed_files` would list,
    without reading their sidecars (the metrics, at every scrape); none for a failed/
    gone or unreadable (the worker's own log lines say so)."""
    try:
        with os.scandir(directory) as entries:
            return frozenset(e.name for e in entries if waits_for_a_person(e.name))
    except OSError:
        return frozenset()


def failed_count(directory: Path) -> int:
    """How many files `failed_files` would list, without reading their sidecars."""
    return len(failed_names(directory))


@dataclass(frozen=True)
class LeftoverSidecar:
    """A sidecar in failed/ without its file: the file was moved out by hand, or a `retry`
    stopped between its rename and the sidecar's removal (`daemon.ops.retries`), or the
    daemon is between writing a sidecar and moving its file in (`daemon.load.quarantine`)."""

    name: str  # of the file it was written for, as failed/ held it (shown)
    path: Path
    content: dict[str, object] | None  # None if unreadable


def leftover_sidecars(directory: Path) -> list[LeftoverSidecar]:
    """Every sidecar in failed/ whose file is not beside it, by name."""
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    return [LeftoverSidecar(files.display_name(p.name.removesuffix(files.SIDECAR_SUFFIX)), p,
                            _read_sidecar(p)[0])
            for p in entries if p.name.endswith(files.SIDECAR_SUFFIX)
            and not files.is_ignored(p.name)
            and not os.path.lexists(p.with_name(p.name.removesuffix(files.SIDECAR_SUFFIX)))]


def in_flight(settings: Settings) -> int:
    """Claimed files not yet archived: in this daemon's work directory, or, where daemons
    share the inbox (PostgreSQL), in every node's work directory under the inbox's work
    root and in the root itself (files a SQLite daemon on this inbox claimed, which the
    next daemon to start adopts)."""
    root = settings.work_root
    if not settings.shared or root == settings.work:
        return files.claimed_count(settings.work)
    try:
        nodes = {p for p in root.iterdir()
                 if not files.is_ignored(p.name) and p.is_dir() and not p.is_symlink()}
    except FileNotFoundError:
        nodes = set()
    nodes.add(settings.work)
    return files.claimed_count(root) + sum(files.claimed_count(node) for node in nodes)


def waiting(directory: Path, feeds: Feeds | None = None) -> int:
    """Entries the daemon would take from the inbox (or resume from the work directory):
    everything but the hidden and temporary names of writers at work, directories, and,
    with `feeds`, the files of no feed it leaves there (`unmatched = "leave"`)."""
    try:
        with os.scandir(directory) as entries:
            return sum(1 for e in entries
                       if not files.is_ignored(e.name) and not e.is_dir(follow_symlinks=False)
                       and not (feeds is not None and routing.left_unmatched(e.name, feeds)))
    except FileNotFoundError:
        return 0
