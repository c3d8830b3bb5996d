"""A check's rule in words, as a failure reason and an operator read it.

`rule_words(check, run_date)` says what a rule asks of a column: `amount must be >= 0`,
`run_date must be 2026-11-11`, `txn_id must start with 20261121-`. Without a run date
(a feed described before any file) the two file-date rules name the file's date instead
of a day. The rule's id (`Check.name`: `min:amount`) stays what tooling matches on; these
words are for people and may be reworded. Nothing here evaluates a rule: that is
`daemon.load.checks`'.
"""

from __future__ import annotations

from filedrop_etl.config.contract import Check, Scalar, key_prefix


def rule_words(check: Check, run_date: str | None = None) -> str:
    """What `check` asks, in words; the file-date rules name `run_date` (ISO) if given."""
    column = check.column
    match check.kind:
        case "not_null":
            return f"{column} must not be null"
        case "unique":
            if len(check.columns) == 1:
                return f"{column} must be unique"
            return f"({', '.join(check.columns)}) must be unique together"
        case "min":
            return f"{column} must be >= {bound_text(check.value)}"
        case "max":
            return f"{column} must be <= {bound_text(check.value)}"
        case "finite":
            return f"{column} must be a finite number, not NaN or infinite"
        case "one_of":
            return f"{column} must be one of {', '.join(bound_text(v) for v in check.values)}"
        case "matches":
            return f"{column} must match the pattern {check.value} (the whole value)"
        case "max_length":
            return f"{column} must be at most {check.value} characters"
        case "equals_file_date":
            return f"{column} must be {run_date or 'the date in the file name'}"
        case "file_date_prefix":
            prefix = key_prefix(run_date) if run_date else "the file's date as YYYYMMDD-"
            return f"{column} must start with {prefix}"
    raise AssertionError(f"a rule without words: {check.kind}")


def bound_text(value: Scalar | None) -> str:
    """A declared bound or member as the words show it: `0`, not `0.0`; `true`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
