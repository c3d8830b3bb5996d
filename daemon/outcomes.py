"""The words for what became of a file the worker took up, defined here and nowhere else.

An attempt at a file ends in one of the `OUTCOMES`: the worker tallies them, the
`daemon_stopped` and `daemon_status` lines and `etl_files_total{outcome}` report them.
Two of them, `processed` and `failed`, are final and recorded in the ledger: a load's
`Status` (`loads.status`, what the read side filters by). A claim that succeeds is
`claimed`, the step before an attempt, never an outcome. It holds words only: no module
of the daemon is below it, so the warehouse, the load, the worker and the operations
all take their words from here.
"""

from __future__ import annotations

from typing import Literal, get_args

# What the ledger records of a finished load.
Status = Literal["processed", "failed"]
# How an attempt at a file ended: recorded (`Status`), to be retried, gone before its
# claim (`vanished`), left in the inbox by a failed claim, or taken first by another
# daemon sharing the inbox (`claimed_elsewhere`, not deleted).
Ending = Literal[Status, "retry", "vanished", "claim_failed", "claimed_elsewhere"]
Claimed = Literal["claimed"]

STATUSES: tuple[Status, ...] = get_args(Status)
OUTCOMES: tuple[Ending, ...] = get_args(Ending)
