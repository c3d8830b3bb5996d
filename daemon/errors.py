"""The daemon's error classes: what is terminal for a file and what stops start-up.

The pipeline is the per-file error boundary and decides by class: `BadInput` (and any
unexpected `Exception`) sends the file to failed/ with a sidecar, while faults of the
environment (SQLite busy/full/read-only, an archive that cannot be written) are
recognised by the pipeline and retried. `AlreadyRunning` and `SchemaMismatch` stop
start-up; `DatabaseUnavailable` ends an operator's command. All derive from
`config.EtlError`, the project's one base, and carry a hint.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from filedrop_etl.config import EtlError


class BadInput(EtlError):
    """The file itself is wrong: terminal, so it is quarantined and never retried.

    `stage` names where in the per-file path it was found; subclasses fix their own.
    """

    stage = "read"

    def __init__(self, message: str, *, hint: str = "", stage: str | None = None) -> None:
        super().__init__(message, hint=hint)
        if stage is not None:
            self.stage = stage


class FileNameError(BadInput):
    """A name no feed loads; `suggested_name`, the one it most likely meant (if any)."""

    stage = "name"

    def __init__(self, message: str, *, hint: str = "",
                 suggested_name: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.suggested_name = suggested_name


class ContractError(BadInput):
    """The file's columns do not match the contract; `problems` is the column diff."""

    stage = "schema"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "schema does not match the contract: " + "; ".join(self.problems),
            hint="fix the producer so the file has the contract's columns and types, "
            "then drop it again",
        )


@dataclass
class CheckFailure:
    """One failed data-quality check: how many rows broke it, and a few of them: their
    keys and, beside each, the value that broke the check (as text; None for a null).

    `check` is the rule's id (`min:amount`), what tooling matches on; `rule` the same
    rule in words (`amount must be >= 0`, `config.check_words`), what people read. A
    sidecar written before the words has no `rule`: its id stands in."""

    check: str
    failed_rows: int
    sample_keys: list[str] = field(default_factory=list)
    sample_values: list[str | None] = field(default_factory=list)
    # Words for the id: the same failure whichever wording it carries.
    rule: str = field(default="", compare=False)

    def described(self, samples: int = 3) -> str:
        """`amount must be >= 0 (2 rows): -0.01 at 20260210-0003, -5.0 at 20260210-0009`."""
        pairs = zip(self.sample_keys, self.sample_values, strict=False)  # values: newer
        shown = [f"{_short(value)} at {key}" for key, value in list(pairs)[:samples]]
        more = ", ..." if self.failed_rows > len(shown) and shown else ""
        rows = "1 row" if self.failed_rows == 1 else f"{self.failed_rows} rows"
        return f"{self.rule or self.check} ({rows})" + (
            f": {', '.join(shown)}{more}" if shown else "")


# A sample value that reads as a number (or NaN, an infinity, a boolean) is shown as it
# is; any other text is quoted, so that an empty or space-padded value can be seen.
_BARE = re.compile(r"[-+]?(\d+(\.\d*)?([eE][-+]?\d+)?|nan|inf)|true|false")


def _short(value: str | None, width: int = 40) -> str:
    """A sample value as a message shows it: null, a number or a boolean as it is, other
    text quoted and cut to `width`."""
    if value is None:
        return "null"
    if _BARE.fullmatch(value):
        return value
    return repr(value if len(value) <= width else value[:width - 1] + "…")


def value_text(value: object) -> str | None:
    """A row's value as samples and messages carry it: text, None for a null. A timestamp
    in ISO form, a boolean as the config spells it (`true`)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def key_text(values: Sequence[object], row: int) -> str:
    """A row's key as one text: its columns' values joined with `", "` (one column: the
    value itself); a key of nulls only names the row (`<null key, row 7>`, from 0)."""
    if all(v is None for v in values):
        return f"<null key, row {row}>"
    return ", ".join("null" if v is None else str(value_text(v)) for v in values)


class ChecksFailed(BadInput):
    stage = "checks"

    def __init__(self, failures: Sequence[CheckFailure]) -> None:
        self.failures = list(failures)
        summary = "; ".join(f.described() for f in self.failures)
        super().__init__(
            f"data-quality checks failed: {summary}",
            hint="correct the rows named in the sidecar's checks (sample keys and values) "
            "and drop the file again",
        )


class StoppedTooOften(BadInput):
    """The daemon stopped while loading this file every time it was resumed: the file is
    set aside so that the files behind it load (see `daemon.watch.resumes`)."""

    stage = "resume"

    def __init__(self, attempts: Sequence[Mapping[str, object]],
                 retry: str = "filedrop-etl retry") -> None:
        self.attempts = [dict(a) for a in attempts]
        times = ", ".join(str(a.get("resumed_at")) for a in self.attempts)
        super().__init__(
            f"the daemon stopped while loading this file each of the {len(self.attempts)} "
            f"times it was resumed (at {times}), without reaching an outcome; it is set "
            "aside so that the files behind it load",
            hint="look in the daemon's log at those times for what ended it (worker_crashed, "
            "the out-of-memory killer, the systemd watchdog); once that is fixed, "
            f"`{retry}` sends the file back",
        )


class AlreadyRunning(EtlError):
    """Another daemon holds the single-instance lock on this database."""


class SchemaMismatch(EtlError):
    """The database holds tables this daemon did not create, or a newer schema."""


def describe(exc: BaseException, stage: str) -> dict[str, object]:
    """The sidecar's account of an error: where, what, and what to do next."""
    return {
        "stage": stage,
        "error_type": type(exc).__name__,
        "message": getattr(exc, "message", str(exc)),
        "reason": str(exc),
        "hint": getattr(exc, "hint", "") or "this is a bug in the daemon; report it with "
                "this sidecar and the log line",
        "checks": [vars(f) for f in exc.failures] if isinstance(exc, ChecksFailed) else [],
        "schema_problems": exc.problems if isinstance(exc, ContractError) else [],
        **({"resumes": exc.attempts} if isinstance(exc, StoppedTooOften) else {}),
        # The name a misnamed file most likely meant: `retry NAME --as` it.
        **({"suggested_name": exc.suggested_name}
           if isinstance(exc, FileNameError) and exc.suggested_name else {}),
    }


def open_error_message(exc: OSError) -> str:
    """Why a claimed file could not be opened, in words for the sidecar."""
    if exc.errno == errno.ELOOP:
        return "the inbox entry is a symbolic link; the daemon never follows links"
    if exc.errno == errno.EACCES:
        return "permission denied reading the file"
    if exc.errno == errno.EISDIR:
        return "not a regular file"
    return f"cannot open the file: {exc.strerror or exc}"


class DatabaseUnavailable(EtlError):
    """No database where the settings point, or none that can be used (a directory)."""
