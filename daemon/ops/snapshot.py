"""A page made once and shared: the status page as every viewer of the moment gets it.

The page's facts are read from the database and its markup made in the daemon's own
process, beside the worker. Made once per request, four viewers reloading it slowed the
worker's small loads tenfold and could take as many database sessions as there were
requests. A `Snapshot` makes it at most once while it is fresh (`fresh_seconds`, and
never for more than a fifth of the time: a make that took 0.4 s keeps its page 1.6 s),
and viewers who ask while it is being made wait for that one and share it. It knows
nothing of HTTP or of what the page says.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A page this old is made again at the next request: an operator sees a change within a
# second; a screen refreshing every 15 s never sees an old one.
FRESH_SECONDS = 1.0
# After a make that took T, the page is kept at least this many times T: making it can
# take at most 1 / (1 + IDLE_RATIO) of the time, however many viewers ask.
IDLE_RATIO = 4.0


class Snapshot:
    """What `make` returns, made again only once it is older than `fresh_seconds`."""

    def __init__(self, make: Callable[[], str], fresh_seconds: float = FRESH_SECONDS) -> None:
        self._make = make
        self.fresh_seconds = fresh_seconds
        self._made: str | None = None
        self._stale_at = 0.0
        # Held while making: the viewers who come meanwhile wait for this one page.
        self._lock = threading.Lock()
        self.makes = 0

    def __call__(self) -> str:
        with self._lock:
            began = time.monotonic()
            if self._made is not None and began < self._stale_at:
                return self._made
            made = self._make()  # an error reaches this viewer; the next one tries again
            ended = time.monotonic()
            self._made, self.makes = made, self.makes + 1
            self._stale_at = ended + max(self.fresh_seconds, (ended - began) * IDLE_RATIO)
            return made
