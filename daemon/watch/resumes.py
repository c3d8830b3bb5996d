"""Resumed claims: how often the daemon stopped while loading one file, kept across starts.

A file left in the work directory is resumed first at the next start. If it is what
ends the daemon (a crash in a library, the out-of-memory killer, the systemd watchdog on
a stuck load), every restart would resume it first and end again, and no later drop
would ever load. So each attempt at a resumed file is written down before it begins, in
a small journal in the work directory (`.resumes.json`, a hidden name, so never taken
for a claim), and crossed out when it ends with any outcome, a retry included: the file
did not end the daemon then. A file whose attempts began `limit` times without ending
is set aside instead of being tried again. The journal exists only while it has
entries; it is written only for resumed files, so a steady stream of drops never pays
for it. It knows nothing of what loading a file means.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog

from filedrop_etl.daemon import files
from filedrop_etl.daemon.clock import utc_now

log = structlog.get_logger("daemon.resumes")

JOURNAL = ".resumes.json"


class Resumes:
    """The journal of one work directory; not thread-safe: the worker owns it."""

    def __init__(self, work: Path, limit: int) -> None:
        self.path = work / JOURNAL
        self.limit = limit

    def keep_only(self, claimed: list[Path]) -> dict[str, int]:
        """Forget files no longer in the work directory (finished by a run that was
        killed before it could cross them out); return, by name, how many attempts at
        each of the others began and never ended."""
        entries = self._read()
        kept = {name: history for name, history in entries.items()
                if name in {path.name for path in claimed}}
        if kept != entries:
            self._write(kept)
        return {name: len(history) for name, history in kept.items()}

    def begin(self, claimed: Path) -> list[dict[str, Any]] | None:
        """Write down that an attempt at a resumed file begins; None if it may go on,
        else (nothing written) the attempts that began and never ended: it is to be set
        aside."""
        entries = self._read()
        history = entries.get(claimed.name, [])
        if len(history) >= self.limit:
            return history
        entries[claimed.name] = [*history, {"resumed_at": utc_now(), "pid": os.getpid()}]
        self._write(entries)
        return None

    def ended(self, claimed: Path) -> None:
        """Cross out the file's attempts: one of them reached an outcome."""
        entries = self._read()
        if entries.pop(claimed.name, None) is not None:
            self._write(entries)

    def _read(self) -> dict[str, list[dict[str, Any]]]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.error("resumes_unreadable", path=str(self.path), reason=str(exc),
                      hint="make the work directory readable; until then a file that "
                      "keeps stopping the daemon is not set aside")
            return {}
        try:
            entries = json.loads(text)["files"]
            if isinstance(entries, dict):
                return entries
        except (ValueError, KeyError, TypeError):
            pass
        log.warning("resumes_unreadable", path=str(self.path), reason="not the journal's JSON",
                    hint="it is written again from scratch; nothing else depends on it")
        return {}

    def _write(self, entries: dict[str, list[dict[str, Any]]]) -> None:
        """Replace the journal atomically (durably: the entry must outlive a crash that
        comes right after it), or remove it once empty."""
        try:
            if not entries:
                self.path.unlink(missing_ok=True)
                return
            temp = self.path.with_name(self.path.name + ".tmp")
            with temp.open("w", encoding="utf-8", errors="surrogateescape") as handle:
                json.dump({"files": entries}, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            temp.replace(self.path)
            files.fsync_dir(self.path.parent)
        except OSError as exc:
            log.error("resumes_unwritable", path=str(self.path), reason=str(exc),
                      hint="free space or make the work directory writable; until then a "
                      "file that keeps stopping the daemon is not set aside")
