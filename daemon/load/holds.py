"""The claims this daemon holds on its claimed files, where several daemons share the work.

On a shared warehouse each claimed file is recorded as this daemon's (`Claims.claimed`,
with the time it was dropped, taken before the claim's rename changed it) before it is
loaded; the ticket goes with the load to its commit, which checks it; the claim is
forgotten once the file has left the work directory. A file taken over from a dead
daemon arrives with its ticket. While a file stages, its load renews its own claim
(`keep`), every third of the lease: a large file commits even if the heartbeat can not
renew it. On an embedded warehouse nothing is recorded.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.daemon import files
from filedrop_etl.daemon.warehouse.api import ClaimLost, Claims, Ticket, WarehouseFault

log = structlog.get_logger("daemon.pipeline")


class Holds:
    """This daemon's tickets, by claimed file."""

    def __init__(self, settings: Settings, claims: Claims) -> None:
        self.shared, self.claims = settings.shared, claims
        self.renew_every = settings.lease_seconds / 3
        self.tickets: dict[Path, Ticket] = {}
        # When this daemon last renewed each held claim itself (monotonic).
        self._renewed: dict[Path, float] = {}
        # When each file claimed in this run was dropped (its inbox entry's ctime, ns).
        self._dropped: dict[Path, int] = {}

    def dropped(self, claimed: Path, ctime_ns: int) -> None:
        self._dropped[claimed] = ctime_ns

    def adopt(self, claimed: Path, ticket: Ticket) -> None:
        """A file taken over from another daemon, with the ticket the take-over gave."""
        self.tickets[claimed] = ticket
        self._renewed[claimed] = time.monotonic()

    def held(self, claimed: Path) -> bool:
        """Whether the claim of `claimed` is this daemon's (always, unshared)."""
        return not self.shared or claimed in self.tickets

    def hold(self, claimed: Path) -> Ticket | None:
        """Hold the claim of `claimed` (recorded now for a file claimed, resumed or taken
        over); `ClaimLost` if another daemon holds it, a fault if it can not be asked."""
        if not self.shared or claimed in self.tickets:
            return self.tickets.get(claimed)
        dropped = self._dropped.pop(claimed, None)
        if dropped is None:
            # Resumed from the work directory: its claim's ctime is the best left.
            try:
                dropped = claimed.lstat().st_ctime_ns
            except FileNotFoundError:
                return None  # gone: the load finds it so, and says it vanished
        ticket = self.claims.claimed(claimed, dropped)
        if ticket is not None:
            self.tickets[claimed] = ticket
            self._renewed[claimed] = time.monotonic()
        return ticket

    def keep(self, claimed: Path) -> None:
        """As a load of `claimed` goes on: renew its claim if a third of the lease has
        passed since; `ClaimLost` if it is no longer this daemon's (the load can stop
        now: its commit would be refused). A warehouse out of reach renews nothing now,
        which the heartbeat reports; the commit checks the claim either way."""
        ticket = self.tickets.get(claimed)
        now = time.monotonic()
        if ticket is None or now - self._renewed.get(claimed, now) < self.renew_every:
            return
        self._renewed[claimed] = now
        try:
            held = self.claims.renew(ticket)
        except WarehouseFault:
            return
        if not held:
            raise ClaimLost(
                f"this daemon's claim on the file lapsed while it was being loaded (claim "
                f"{ticket.id}, fence {ticket.fence}): another daemon may have taken it over",
                hint="nothing was committed; the file is claimed again if it is still "
                "here, or loaded by the daemon that took it")

    def lost(self, claimed: Path) -> None:
        """The claim lapsed: forget it; a retry claims the file again if it is here."""
        self.tickets.pop(claimed, None)
        self._renewed.pop(claimed, None)

    def release(self, claimed: Path) -> None:
        """Forget the claim of a file that left the work directory; a claim that can not
        be forgotten now points at nothing, and the next take-over removes it."""
        ticket = self.tickets.pop(claimed, None)
        self._renewed.pop(claimed, None)
        if ticket is None:
            return
        try:
            self.claims.released(ticket)
        except WarehouseFault as exc:
            log.warning("claim_release_failed", file=files.display_name(claimed.name),
                        reason=str(exc), hint="nothing to do: the claim is removed later")
