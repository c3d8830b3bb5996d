"""The status server as the daemon's start makes it: its address asked before anything
is made, the server built once the worker it reports on is.

A daemon refused for its HTTP address (another daemon's port) so leaves nothing behind,
as one refused for a lock does. The server itself is `daemon.ops.server`'s.
"""

from __future__ import annotations

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.daemon import package_version
from filedrop_etl.daemon.app import worker
from filedrop_etl.daemon.ops import page
from filedrop_etl.daemon.ops.server import StatusServer, check_bindable

log = structlog.get_logger("daemon")


def address_shown(address: tuple[str, int]) -> str:
    """HOST:PORT, an IPv6 host in brackets."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def can_serve(address: tuple[str, int]) -> bool:
    """Whether HTTP can be served on `address` now, the reason logged if not."""
    try:
        check_bindable(address)
    except OSError as exc:
        _unservable(address, exc)
        return False
    return True


def server(settings: Settings, address: tuple[str, int],
           built: worker.Worker) -> StatusServer | None:
    """The HTTP server bound to `address`; None, with the reason logged, if it cannot be."""
    try:
        return StatusServer(address, built.report, built.metrics,
                            page=page.source(settings, built.report, package_version()))
    except OSError as exc:  # taken since `can_serve` asked
        _unservable(address, exc)
        return None


def _unservable(address: tuple[str, int], exc: OSError) -> None:
    # In use, not an address of this machine, an unknown host.
    log.error("config_invalid", reason=f"cannot serve HTTP on {address_shown(address)}: "
              f"{exc.strerror or exc}", hint="choose a free port (0 picks one) on an "
              "address of this machine, or turn --http off")
