"""The daemons (nodes) working on this PostgreSQL warehouse: where each keeps its folders.

At its start a daemon records, under its node's name, its pid, its folders (as SQLite's
`daemons` table keeps them) and, here, its owner (unique per start) and a lease its
heartbeat renews. One daemon per node: a node whose lease is still live elsewhere (another
work directory: not a killed run of this one, whose work directory this start now holds)
refuses the start, as a second daemon on one SQLite file is refused. `identity` says
which warehouse this is, for the daemons sharing an inbox to agree on it.

A node's state is read from its row (`STATE`): `alive` while its lease is live, `stopped`
once it let go cleanly (its claims' `close` clears the row's owner: no start runs as the
node), `lost` when the lease ran out with the owner still there (killed, frozen, cut off),
since its `lease_until`. The file in a node's hands is shown only while that node's start
still holds the file's claim (`IN_HAND`): once another daemon took the file over, or it
was loaded and the claim forgotten, the row's word on it is stale.
"""

from __future__ import annotations

import json
import os

import psycopg

from filedrop_etl.daemon.errors import AlreadyRunning
from filedrop_etl.daemon.warehouse.api import Folders
from filedrop_etl.daemon.warehouse.postgresql.books import Books
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt, transaction

STATES = ("alive", "lost", "stopped")
# The state of the `daemons` row in scope (unqualified columns), as `STATES` names it. A
# row without a lease (recorded before daemons shared warehouses) never beat: stopped.
STATE = ('CASE WHEN "lease_until" > now() THEN \'alive\' '
         'WHEN "owner" IS NULL OR "lease_until" IS NULL THEN \'stopped\' '
         'ELSE \'lost\' END')


def in_hand(books: Books) -> str:
    """The file in hand of the `daemons` row `d` while its start still holds that file's
    claim, else NULL."""
    return (f'CASE WHEN EXISTS (SELECT 1 FROM {books.claims} AS c WHERE c."node" = d."node" '
            'AND c."name" = d."file_in_hand" AND c."owner" = d."owner") '
            'THEN d."file_in_hand" END')


def record_start(conn: Connection, node: str, folders: Folders, *, owner: str,
                 lease_seconds: float) -> None:
    """Record this daemon's start; `AlreadyRunning` if the node is live elsewhere."""
    with transaction(conn):
        row = conn.execute(stmt(
            f'INSERT INTO {conn.books.daemons} AS d ("node", "pid", "started_at", "inbox", "work", '
            '"processed", "failed", "created", "owner", "heartbeat_at", "lease_until") '
            "VALUES (%s, %s, now(), %s, %s, %s, %s, %s, %s, now(), now() + %s::interval) "
            'ON CONFLICT ("node") DO UPDATE SET "pid" = EXCLUDED."pid", '
            '"started_at" = EXCLUDED."started_at", "inbox" = EXCLUDED."inbox", '
            '"work" = EXCLUDED."work", "processed" = EXCLUDED."processed", '
            '"failed" = EXCLUDED."failed", "created" = EXCLUDED."created", '
            '"owner" = EXCLUDED."owner", "heartbeat_at" = EXCLUDED."heartbeat_at", '
            '"lease_until" = EXCLUDED."lease_until", "file_in_hand" = NULL '
            'WHERE d."lease_until" IS NULL OR d."lease_until" < now() '
            'OR d."work" = EXCLUDED."work" '
            'RETURNING "node"'),
            (node, os.getpid(), folders.inbox, folders.work, folders.processed,
             folders.failed, json.dumps(folders.created), owner,
             f"{lease_seconds} seconds")).fetchone()
        if row is None:
            held = conn.execute(stmt(
                f'SELECT "pid", "work", "heartbeat_at" FROM {conn.books.daemons} '
                'WHERE "node" = %s'),
                (node,)).fetchone()
            pid, work, beat = held if held else ("?", "?", "?")
            raise AlreadyRunning(
                f"node {node} is already running elsewhere (pid {pid}, work directory "
                f"{work}, last heartbeat {beat})",
                hint="give each daemon its own --node (ETL_NODE), or stop that one first")


def identity(conn: Connection) -> str:
    """This warehouse, the same from every host whatever name the URL gives the server: the
    cluster's system identifier, the database and the schema the tables are in. Where the
    server keeps its identifier from this role, its address stands in."""
    try:
        row = conn.execute("SELECT (SELECT system_identifier FROM pg_control_system())::text, "
                           "current_database(), current_schema()").fetchone()
    except psycopg.errors.InsufficientPrivilege:
        row = conn.execute("SELECT coalesce(host(inet_server_addr()), 'local') || ':' || "
                           "coalesce(inet_server_port(), 0)::text, current_database(), "
                           "current_schema()").fetchone()
    assert row is not None
    return "postgresql:" + "/".join(str(part) for part in row)
