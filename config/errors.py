"""The project's one exception base, and the error a bad setting raises.

It lives in `config` because every other package may import `config` and nothing else
in common: `daemon` and `generator` both derive their errors from `EtlError`. Every error
carries a `hint`, the next thing the reader should do, so no message ends at "what".
"""

from __future__ import annotations


class EtlError(Exception):
    """Base of every error this project raises on purpose."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(EtlError):
    """A setting from a flag, the environment or the TOML file is missing or malformed.
    `problems`: where a refusal lists several (a feeds declaration), each as data (`where`,
    `problem`, `instead`), so that a log line carries them as such, not only as text."""

    def __init__(self, message: str, *, hint: str = "",
                 problems: tuple[dict[str, str], ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems
