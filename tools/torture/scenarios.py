"""The three ordeals: a crash at each named point, SIGKILLs at random moments, a burst.

Each runs a real daemon on its own case directory, gives it drops one at a time (the
next is dropped once the inbox is empty, so the order the daemon applies them in is the
order they were dropped, which the model assumes), survives whatever was done to the
daemon, waits for the drain, stops the daemon cleanly and audits the directory. Each
returns a `Result`: what was done and the divergences found (none, if the promise held).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.torture.audit import TALLIES, audit
from tools.torture.drops import Drop, Model, Producer, publish
from tools.torture.service import Service, TortureError, wait_for

# The daemon's `crashpoints.POINTS`, written out: the harness does not import the daemon.
CRASH_POINTS = ("after_claim", "during_staging", "after_checks", "during_merge",
                "after_commit", "during_move", "during_quarantine")


@dataclass
class Result:
    """One case: what was done to the daemon, and what the audit found afterwards."""

    scenario: str
    write_mode: str
    drops: int
    kills: int
    restarts: int
    seconds: float
    divergences: list[str]
    details: dict[str, object] = field(default_factory=dict)
    # The audit's counts by kind (`torture.audit.TALLIES`): all 0 when the promise held.
    tally: dict[str, int] = field(default_factory=dict)
    backend: str = "sqlite"  # or "postgresql": the warehouse the daemon wrote to


def _archived(service: Service) -> int:
    total = 0
    for name in ("processed", "failed"):
        total += sum(1 for p in service.directory(name).iterdir()
                     if not p.name.startswith(".") and not p.name.endswith(".error.json"))
    return total


def _drain(service: Service, drops: list[Drop]) -> None:
    wait_for(lambda: _archived(service) >= len(drops) and not any(service.inbox.iterdir())
             and not any(service.directory("work").iterdir()), "the drain")


def _finish(service: Service, name: str, drops: list[Drop], model: Model,
            started: float, **details: object) -> Result:
    _drain(service, drops)
    code = service.stop()
    findings = audit(service.root, service.db, drops, model)
    if code != 0:
        findings.divergences.append(f"the daemon's clean stop exited {code}")
    return Result(name, service.write_mode, len(drops), service.kills, service.starts - 1,
                  round(time.monotonic() - started, 2), findings.divergences,
                  {"resumed": service.count("file_resumed"),
                   "already_loaded": service.count("file_already_loaded"), **details},
                  {kind: findings.tally[kind] for kind in TALLIES},
                  "postgresql" if service.db_url else "sqlite")


def crash_at_point(root: Path, point: str, repeat: int, seed: int,
                   write_mode: str = "merge", db_url: str | None = None) -> Result:
    """Arm `point` (at a seeded pass), drop until the daemon freezes there, SIGKILL it,
    restart it unarmed, drop the rest and audit."""
    rng = random.Random(f"{seed}:{point}:{repeat}")
    producer = Producer(rng)
    first = producer.new_day()
    drops = [first, producer.corrected(), producer.new_day(), producer.bad(),
             producer.identical()]
    # Every drop is claimed; the four good ones are staged, checked and loaded (bad files
    # may fail before staging); the bad one is quarantined.
    passes = {"after_claim": 5, "during_quarantine": 1}.get(point, 4)
    hit = rng.randint(1, passes)
    with Service(root, write_mode, db_url=db_url) as service:
        return _crash_at(service, point, hit, drops)


def _crash_at(service: Service, point: str, hit: int, drops: list[Drop]) -> Result:
    model = Model(service.write_mode)
    started = time.monotonic()
    service.start(crash_at=f"{point}@{hit}")
    killed = False

    def frozen() -> bool:
        return not killed and service.count("crash_point_reached", point=point) > 0

    def inbox_empty() -> bool:
        return not any(service.inbox.iterdir())

    for drop in drops:
        # Never drop over a file still in the inbox: that would replace it unread.
        wait_for(lambda: inbox_empty() or frozen(), "an empty inbox")
        if frozen():
            service.kill()
            killed = True
            service.start()
            wait_for(inbox_empty, "an empty inbox")
        publish(drop, service.inbox)
        model.apply(drop)
    if not killed:
        # By the log, not the archive: a file is in processed/ before `during_move`.
        wait_for(lambda: frozen() or service.count("file_processed")
                 + service.count("file_failed") >= len(drops), f"crash point {point}@{hit}")
        if not frozen():
            raise TortureError(f"the daemon never reached crash point {point}@{hit}")
        service.kill()
        service.start()
    return _finish(service, f"crash:{point}", drops, model, started, point=point, hit=hit)


def random_drops(seed: int, write_mode: str, count: int) -> list[Drop]:
    """The stream of drops `random_kills` makes for `seed`: the same on every call."""
    producer = Producer(random.Random(f"{seed}:random:{write_mode}"))
    return [producer.next_drop() for _ in range(count)]


def random_kills(root: Path, drops_count: int, seed: int, write_mode: str = "merge",
                 kill_chance: float = 0.35, max_delay: float = 0.25,
                 db_url: str | None = None) -> Result:
    """A seeded stream of drops while the daemon is SIGKILLed at random moments: after
    a random delay following a drop, now and then again just after a restart, and now
    and then while it is still starting."""
    drops = random_drops(seed, write_mode, drops_count)
    rng = random.Random(f"{seed}:kills:{write_mode}")
    # Kills that land on one file several starts in a row are this harness's doing, not
    # the file's: the daemon would set such a file aside after `max_resumes` (3), which
    # is what it must do for a file that really ends it (tested on its own).
    with Service(root, write_mode, "--max-resumes", "1000", db_url=db_url) as service:
        return _random_kills(service, drops, rng, kill_chance, max_delay)


def _random_kills(service: Service, drops: list[Drop], rng: random.Random,
                  kill_chance: float, max_delay: float) -> Result:
    model = Model(service.write_mode)
    started = time.monotonic()
    service.start()
    for drop in drops:
        wait_for(lambda: not any(service.inbox.iterdir()), "an empty inbox")
        publish(drop, service.inbox)
        model.apply(drop)
        while rng.random() < kill_chance:
            # Deliberately random moments, not a condition to wait for.
            time.sleep(rng.uniform(0, max_delay))
            service.kill()
            if rng.random() < 0.2:
                # Now and then during start-up too: the lock, the schema, the left-overs.
                service.start(wait=False)
                time.sleep(rng.uniform(0, 0.8))
                service.kill()
            service.start()
    return _finish(service, "random-kills", drops, model, started)


def burst(root: Path, files: int, seed: int) -> Result:
    """Freeze the daemon, fill its inotify queue past overflow, drop `files` small files at
    once (their events are lost), thaw it: every file must be archived once, found by the
    rescan the overflow triggers."""
    rng = random.Random(f"{seed}:burst")
    producer = Producer(rng, sizes=(5,))
    drops = [producer.new_day() for _ in range(files)]
    # No periodic rescan during the run: only the overflow's may find the files.
    with Service(root, "merge", "--rescan-seconds", "3600") as service:
        return _burst(service, drops)


def _burst(service: Service, drops: list[Drop]) -> Result:
    model = Model("merge")
    files = len(drops)
    outbox = service.root / "outbox"
    outbox.mkdir()
    for drop in drops:
        (outbox / drop.name).write_bytes(drop.data)
        model.apply(drop)
    service.start()
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    service.freeze()
    try:
        # A hidden file created and removed is at least two events the daemon ignores:
        # enough of them fill the queue, and the drops' own events are lost.
        for i in range(limit // 2 + 1_000):
            hidden = service.inbox / f".noise-{i}"
            hidden.touch()
            hidden.unlink()
        for drop in drops:
            (outbox / drop.name).rename(service.inbox / drop.name)
    finally:
        service.thaw()
    thawed = time.monotonic()
    _drain(service, drops)
    seconds = time.monotonic() - thawed
    details = {"files": files, "files_per_second": round(files / seconds, 1),
               "overflows": service.count("Inotify queue overflowed; filesystem events were lost"),
               "overflow_rescans": service.count("inbox_rescanned", reason="overflow"),
               "found_by_event": service.count("file_detected", found_by="event"),
               "found_by_rescan": service.count("file_detected", found_by="rescan")}
    result = _finish(service, "burst", drops, model, thawed, **details)
    if not details["overflows"]:
        raise TortureError("the inotify queue did not overflow; make more noise")
    if not details["overflow_rescans"]:
        result.divergences.append("the overflow was not followed by a rescan")
    return result
