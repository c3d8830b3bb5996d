"""The daemons that use this database, by node: where each keeps its folders.

At every start the daemon records, under its node's name (the host's), its pid, when it
started, its folders as it resolved them, and which of them that start had to create
(`daemons`, schema version 3). The operator's commands read it (`queries.daemons`), so
that `status --db PATH` alone finds the inbox, the work directory and failed/ the daemon
uses, and can say which folders it created. It knows nothing of loads.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3

from config import Settings
from daemon import ledger, store
from daemon.schema import DAEMONS_TABLE

FOLDERS = ("inbox", "work", "processed", "failed")


def this_node() -> str:
    return socket.gethostname()


def record_start(conn: sqlite3.Connection, settings: Settings, created: list[str]) -> None:
    """Record this daemon's start: its folders, and the names of those it created."""
    folders = {name: str(getattr(settings, name)) for name in FOLDERS}
    with store.transaction(conn):
        conn.execute(
            f'INSERT INTO {store.q(DAEMONS_TABLE)} ("node", "pid", "started_at", "inbox", '
            '"work", "processed", "failed", "created") VALUES (?, ?, ?, ?, ?, ?, ?, ?) '
            'ON CONFLICT ("node") DO UPDATE SET "pid" = excluded."pid", '
            '"started_at" = excluded."started_at", "inbox" = excluded."inbox", '
            '"work" = excluded."work", "processed" = excluded."processed", '
            '"failed" = excluded."failed", "created" = excluded."created"',
            (this_node(), os.getpid(), ledger.utc_now(), *folders.values(),
             json.dumps(created)))
