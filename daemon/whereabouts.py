"""Where a file went that left a shared inbox under another daemon's hand, not deleted.

On an inbox that several daemons share (a PostgreSQL warehouse), a file this daemon saw
and meant to claim is often claimed first by another: it has not vanished, and is not
logged as if it had (`file_vanished` is for files someone deleted). A rename keeps the
inode, so the file's device and inode number as this daemon last saw them in the inbox
(and its size and mtime, which a rename keeps too: a freed inode number is soon given
to a new file) are looked for where another daemon's claim puts a file: by name in each
other node's work directory (the sibling directories of the work root,
`.<inbox>.work/<node>`), then in processed/ and failed/, where that daemon may have moved
it since. The order follows the file's own path, so that it is found however far it has
moved on meanwhile.

It is bounded, as the worker calls it between two files: one listing of the work root
(a directory per node) and a few `lstat` calls in each place, never a walk; a file found
nowhere counts as deleted. With one daemon per inbox (SQLite) there is nobody else, so
nothing is looked for. It only reads.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from filedrop_etl.config import Settings
from filedrop_etl.daemon import files

# How many of a name's `~N` forms (see `files.candidate_names`) are looked at in one
# directory: the name a move gave the file is the first one free, and a day dropped
# again and again under one name is rare.
NAMES_LOOKED_AT = 8

# A file's, across renames: (st_dev, st_ino, st_size, st_mtime_ns).
Identity = tuple[int, int, int, int]


def identity(st: os.stat_result) -> Identity:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class Elsewhere:
    """A file another daemon claimed: `by` that node, or None when it was found already
    in processed/ or failed/ (which daemon moved it there does not show)."""

    by: str | None


@dataclass(frozen=True)
class Whereabouts:
    """Where this daemon's fellows on a shared inbox put the files they claim."""

    work: Path  # this daemon's own work directory; its siblings are the other nodes'
    processed: Path
    failed: Path

    @classmethod
    def of(cls, settings: Settings) -> Whereabouts | None:
        """For a daemon on a shared warehouse; None with one daemon per inbox."""
        if not settings.shared:
            return None
        return cls(settings.work, settings.processed, settings.failed)

    def claimed_elsewhere(self, name: str, seen: Identity | None) -> Elsewhere | None:
        """Whether the inbox file `name`, last seen as `seen` (its `identity`), is now
        another daemon's; None if it is found nowhere (deleted), or `seen` is unknown."""
        if seen is None:
            return None
        for node in self._other_nodes():
            if _contains(node, name, seen):
                return Elsewhere(files.display_name(node.name))
        if _contains(self.processed, name, seen) or _contains(self.failed, name, seen):
            return Elsewhere(None)
        return None

    def _other_nodes(self) -> list[Path]:
        """The other nodes' work directories (not their lock files, nor links)."""
        try:
            with os.scandir(self.work.parent) as entries:
                return [Path(e.path) for e in entries
                        if e.name != self.work.name and e.is_dir(follow_symlinks=False)]
        except OSError:
            return []


def _contains(directory: Path, name: str, seen: Identity) -> bool:
    """Whether `directory` contains the file `seen` under `name` or one of its `~N` forms."""
    for candidate in itertools.islice(files.candidate_names(name), NAMES_LOOKED_AT):
        try:
            if identity((directory / candidate).lstat()) == seen:
                return True
        except FileNotFoundError:
            # A move takes the first free name whose sidecar is free too: past a name
            # free of both, no move put the file.
            if not os.path.lexists(directory / (candidate + files.SIDECAR_SUFFIX)):
                return False
        except OSError:
            return False
    return False
