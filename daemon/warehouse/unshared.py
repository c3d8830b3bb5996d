"""The claims of a warehouse that no other daemon shares: they record nothing.

A backend whose warehouse has one daemon (SQLite: one daemon per database file, its
work directory its own, claimed by `flock`) hands out these: a claim needs no record,
no ticket is handed out, and no other daemon's files are ever there to take over.
"""

from __future__ import annotations

from pathlib import Path

from filedrop_etl.daemon.warehouse.values import Lapsed, Ticket


class NoClaims:
    """`api.Claims` for a warehouse that one daemon has to itself."""

    def claimed(self, path: Path, dropped_ns: int) -> Ticket | None:
        return None

    def released(self, ticket: Ticket) -> None:
        raise AssertionError("an unshared warehouse hands out no tickets")

    def renew(self, ticket: Ticket) -> bool:
        raise AssertionError("an unshared warehouse hands out no tickets")

    def lapsed(self) -> list[tuple[str, str]]:
        return []

    def take_lapsed(self, node: str) -> Lapsed:
        raise AssertionError("an unshared warehouse has no other daemon to take from")

    def claim_orphan(self, node: str, name: str, dropped_ns: int) -> Ticket | None:
        raise AssertionError("an unshared warehouse has no other daemon to take from")

    def moved(self, ticket: Ticket, path: Path) -> None:
        raise AssertionError("an unshared warehouse hands out no tickets")

    def beat(self, file_in_hand: str | None) -> None:
        return None

    def fleet(self) -> dict[str, int]:
        return {}  # no heartbeat asks: this daemon is the warehouse's only one

    def close(self) -> None:
        return None
