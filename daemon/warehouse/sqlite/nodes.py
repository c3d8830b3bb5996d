"""The daemons that use this database, by node: where each keeps its folders.

At every start the daemon records, under its node's name (the host's), its pid, when it
started, its folders as it resolved them, and which of them that start had to create
(`daemons`, schema version 3). The operator's commands read it (`History.daemons`), so
that `status --db PATH` alone finds the inbox, the work directory and failed/ the daemon
uses, and can say which folders it created. It knows nothing of loads.
"""

from __future__ import annotations

import json
import os
import sqlite3

from filedrop_etl.daemon import clock
from filedrop_etl.daemon.warehouse.api import Folders
from filedrop_etl.daemon.warehouse.sql import DAEMONS_TABLE, q
from filedrop_etl.daemon.warehouse.sqlite.connection import transaction


def record_start(conn: sqlite3.Connection, node: str, folders: Folders) -> None:
    """Record this daemon's start: its folders, and the names of those it created."""
    with transaction(conn):
        conn.execute(
            f'INSERT INTO {q(DAEMONS_TABLE)} ("node", "pid", "started_at", "inbox", '
            '"work", "processed", "failed", "created") VALUES (?, ?, ?, ?, ?, ?, ?, ?) '
            'ON CONFLICT ("node") DO UPDATE SET "pid" = excluded."pid", '
            '"started_at" = excluded."started_at", "inbox" = excluded."inbox", '
            '"work" = excluded."work", "processed" = excluded."processed", '
            '"failed" = excluded."failed", "created" = excluded."created"',
            (node, os.getpid(), clock.utc_now(), folders.inbox, folders.work,
             folders.processed, folders.failed, json.dumps(folders.created)))
