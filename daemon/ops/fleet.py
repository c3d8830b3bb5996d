"""The daemons sharing a warehouse as a person reads them, for `status` and the page.

A node is `alive` while its lease is live, `stopped` once it let go cleanly, `lost` when
its lease ran out without a clean stop (since then); the warehouse says which
(`History.daemons`). The daemons expected to be running are the alive and the lost ones:
a node stopped on purpose is not missed. This module words that: one node's state
(`state`), the whole fleet in one line (`summary`), how many of those expected are
alive (`alive_of_expected`), and which daemon a command speaks for (`spoken_for`). It
reads nothing; a warehouse of one daemon (SQLite) has no fleet (`shared` is False) and
nothing here is shown for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from filedrop_etl.daemon.ops.commands.table import when
from filedrop_etl.daemon.warehouse.api import Daemon


def spoken_for(nodes: Sequence[Daemon], node: str) -> Daemon | None:
    """The daemon whose folders and lock an operator's command reads, of `nodes` (latest
    start first): the node named (`--node`, the host's name by default), else the latest
    started of those alive, else the latest started. Not simply the latest started: on
    a shared warehouse that may be a node since killed, and the command would then say
    "not running" while another node runs."""
    return (next((d for d in nodes if d.node == node), None)
            or next((d for d in nodes if d.state == "alive" or d.alive), None)
            or next(iter(nodes), None))


def shared(nodes: Sequence[Daemon]) -> bool:
    """Whether the nodes are those of a shared warehouse (each with a state)."""
    return any(d.state is not None for d in nodes)


def state(node: Daemon) -> str:
    """`alive`, `stopped`, or `lost since 2026-03-01 12:00:00Z`."""
    if node.state == "lost" and node.lost_since:
        return f"lost since {when(node.lost_since)}"
    return node.state or ("alive" if node.alive else "stopped")


def counts(nodes: Sequence[Daemon]) -> tuple[int, int]:
    """The nodes alive, and those expected to be (alive or lost: not stopped cleanly)."""
    alive = sum(d.state == "alive" for d in nodes)
    return alive, alive + sum(d.state == "lost" for d in nodes)


def lost(nodes: Sequence[Daemon]) -> list[Daemon]:
    return [d for d in nodes if d.state == "lost"]


def alive_of_expected(nodes: Sequence[Daemon]) -> str:
    """`1 of 2 daemons alive`: the alive of those expected to be running."""
    alive, expected = counts(nodes)
    return f"{alive} of {expected} daemon{'s' * (expected != 1)} alive"


def summary(nodes: Sequence[Daemon]) -> str:
    """Every node in one line, the lost first: `2 daemons: a lost since ..., b alive`."""
    order = {"lost": 0, "alive": 1, "stopped": 2}
    ranked = sorted(nodes, key=lambda d: order.get(d.state or "", 3))
    said = ", ".join(f"{d.node} {state(d)}" for d in ranked)
    return f"{len(nodes)} daemon{'s' * (len(nodes) != 1)}: {said}"
