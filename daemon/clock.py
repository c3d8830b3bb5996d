"""Time as the daemon records it: UTC, ISO-8601 with microseconds and a `Z`.

The ledger, the logs, the resume journal and the operator's commands all speak this
form, whichever backend stores the time (SQLite as this text, PostgreSQL as
`timestamptz`, read back as this text), so that stored times compare as text.
"""

from __future__ import annotations

from datetime import UTC, datetime


def stamp(moment: datetime) -> str:
    """`moment` (UTC) as the ledger stores time."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> str:
    """Now, as the ledger stores time (and the logs)."""
    return stamp(datetime.now(UTC))
