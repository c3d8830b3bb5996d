"""Claims shared by daemons on one PostgreSQL warehouse: leases, fences, take-over.

A daemon renames a file from the shared inbox into its own work directory (the rename
decides between daemons racing for it), then records the claim: a `claims` row with
this process's owner (unique per start), a fence, and a lease ending at the database's
`now()` plus `lease_seconds`. `beat` renews the leases and the node's heartbeat; the
load's commit renews the file's lease only while it is still live and the fence
unchanged (`renew_in`), so a daemon whose lease ran out can not commit. A take-over
(run by `watch.sharing`, which finds the dead daemons here with `lapsed`, holds their
work-directory locks and moves their files) asks this module only which claims are now
this daemon's: `take_lapsed` bumps their fences and makes this daemon their owner in
one statement, `claim_orphan` claims a file its daemon never recorded (it died between
rename and record), and `moved` records where a taken file went. `fleet` counts the
nodes by state (`nodes.STATE`), read at each beat for the metrics. A file name is data:
it is bound as text the server accepts (`stored`).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from filedrop_etl.daemon import files
from filedrop_etl.daemon.warehouse.api import ClaimLost, Lapsed, NodeTaken, Ticket
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, Session, stmt
from filedrop_etl.daemon.warehouse.postgresql.faults import translated
from filedrop_etl.daemon.warehouse.postgresql.nodes import STATE, STATES
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl


def _ticket(row: tuple[object, ...]) -> Ticket:
    return Ticket(*(int(str(value)) for value in row[:3]))


def stored(name: str) -> str:
    """A file name as the claims table holds it: a name that is not UTF-8 (the server
    takes only text) with its undecodable bytes as `\\xNN`, as the ledger and the log
    show it."""
    return files.display_name(name)


class PostgresClaims:
    """This process's claims, on a session of their own (the heartbeat's thread and the
    worker share it; psycopg serialises them, and every statement is short)."""

    def __init__(self, url: PostgresUrl, busy_timeout_seconds: float, *, node: str,
                 work: Path, lease_seconds: float) -> None:
        self.url, self.timeout = url, busy_timeout_seconds
        self.node, self.work, self.lease = node, work, lease_seconds
        self.owner = f"{node}:{uuid.uuid4()}"
        self._session = Session(url, busy_timeout_seconds)

    @property
    def conn(self) -> Connection:
        with translated():
            return self._session.conn

    @property
    def _claims(self) -> str:
        """The claims table, in the bookkeeping schema (`books`)."""
        return self.conn.books.claims

    @property
    def _daemons(self) -> str:
        return self.conn.books.daemons

    def _lease(self) -> str:
        return f"{self.lease} seconds"

    def take_back(self) -> None:
        """At start, holding this node's work directory: the claims a killed run of this
        node left are this process's now (nobody else may take them meanwhile), and those
        of files no longer in it (archived by a run killed before it forgot the claim)
        are forgotten: renewed by every beat, they would stand for ever."""
        held = ({stored(p.name) for p in files.in_claim_order(self.work)}
                if self.work.is_dir() else set())
        with translated(), self.conn.transaction():
            rows = self.conn.execute(stmt(
                f'UPDATE {self._claims} SET "owner" = %s, "fence" = "fence" + 1, '
                '"lease_until" = now() + %s::interval WHERE "node" = %s '
                'RETURNING "id", "name"'), (self.owner, self._lease(), self.node)).fetchall()
            gone = [claim for claim, name in rows if str(name) not in held]
            if gone:
                self.conn.execute(stmt(f'DELETE FROM {self._claims} WHERE "id" = ANY(%s)'), (gone,))

    def claimed(self, path: Path, dropped_ns: int) -> Ticket | None:
        with translated():
            row = self.conn.execute(stmt(
                f'INSERT INTO {self._claims} AS c ("node", "name", "owner", "fence", '
                '"lease_until", "claimed_at", "dropped_ns") VALUES (%s, %s, %s, 1, '
                'now() + %s::interval, now(), %s) '
                'ON CONFLICT ("node", "name") DO UPDATE SET "owner" = EXCLUDED."owner", '
                '"fence" = c."fence" + 1, "lease_until" = EXCLUDED."lease_until" '
                'WHERE c."owner" = EXCLUDED."owner" OR c."lease_until" < now() '
                'RETURNING "id", "fence", "dropped_ns"'),
                (self.node, stored(path.name), self.owner, self._lease(),
                 dropped_ns)).fetchone()
        if row is None:
            raise ClaimLost(f"another daemon holds a live claim on {path.name}",
                            hint="it is retried once that claim lapses")
        return _ticket(row)

    def renew_in(self, conn: Connection, ticket: Ticket) -> bool:
        """On `conn`, in the load's transaction: renew the lease of `ticket` if it is
        still this process's and live; whether it was."""
        # clock_timestamp(), not now(): inside the load's transaction now() is the time
        # it began, minutes ago for a large file, when the lease may still have been live.
        row = conn.execute(stmt(
            f'UPDATE {conn.books.claims} SET "lease_until" = clock_timestamp() + '
            '%s::interval WHERE "id" = %s AND "owner" = %s AND "fence" = %s '
            'AND "lease_until" > clock_timestamp() RETURNING "id"'),
            (self._lease(), ticket.id, self.owner, ticket.fence)).fetchone()
        return row is not None

    def renew(self, ticket: Ticket) -> bool:
        """Outside any load's transaction, on this session: extend the lease of `ticket`
        if it is still this process's, with its fence, and live."""
        with translated():
            return self.conn.execute(stmt(
                f'UPDATE {self._claims} SET "lease_until" = now() + %s::interval '
                'WHERE "id" = %s AND "owner" = %s AND "fence" = %s '
                'AND "lease_until" > now() RETURNING "id"'),
                (self._lease(), ticket.id, self.owner, ticket.fence)).fetchone() is not None

    def released(self, ticket: Ticket) -> None:
        with translated():
            self.conn.execute(stmt(f'DELETE FROM {self._claims} WHERE "id" = %s AND "owner" = %s'),
                              (ticket.id, self.owner))

    def beat(self, file_in_hand: str | None) -> None:
        # Two statements, each its own transaction: the node's heartbeat never waits.
        # The claim of a file being committed is locked by its load, which renews that
        # lease itself (`renew_in`): the beat skips it rather than wait for the commit.
        with translated():
            beaten = self.conn.execute(stmt(
                f'UPDATE {self._daemons} SET "heartbeat_at" = now(), "lease_until" = now() + '
                '%s::interval, "file_in_hand" = %s WHERE "node" = %s AND "owner" = %s'),
                (self._lease(), file_in_hand, self.node, self.owner)).rowcount
            if not beaten:
                self._node_taken()
            self.conn.execute(stmt(
                f'UPDATE {self._claims} SET "lease_until" = now() + %s::interval WHERE "id" IN '
                f'(SELECT "id" FROM {self._claims} WHERE "owner" = %s FOR UPDATE SKIP LOCKED)'),
                (self._lease(), self.owner))

    def _node_taken(self) -> None:
        """The node's row is another start's now: say whose, as `NodeTaken`."""
        row = self.conn.execute(stmt(
            f'SELECT "pid", "work", "started_at" FROM {self._daemons} WHERE "node" = %s'),
            (self.node,)).fetchone()
        pid, work, started = row if row else ("?", "?", "?")
        raise NodeTaken(
            f"another daemon started as node {self.node} (pid {pid}, work directory {work}, "
            f"at {started}) while this one ran: the node's claims are that daemon's now, "
            "so this daemon claims no more files",
            hint="give each daemon its own --node (ETL_NODE); stop this one, and restart it "
            "under its own name to load the files left in its work directory "
            f"{self.work}")

    def fleet(self) -> dict[str, int]:
        with translated():
            counted = {str(state): int(str(n)) for state, n in self.conn.execute(stmt(
                f'SELECT {STATE}, count(*) FROM {self._daemons} GROUP BY 1')).fetchall()}
        return {state: counted.get(state, 0) for state in STATES}

    def lapsed(self) -> list[tuple[str, str]]:
        with translated():
            dead = self.conn.execute(stmt(
                f'SELECT "node", "work" FROM {self._daemons} WHERE "node" <> %s AND '
                '("lease_until" IS NULL OR "lease_until" < now()) ORDER BY "node"'),
                (self.node,)).fetchall()
        return [(str(node), str(work)) for node, work in dead]

    def take_lapsed(self, node: str) -> Lapsed:
        with translated():
            rows = {str(name): _ticket((i, f, d)) for i, name, f, d in
                    self.conn.execute(stmt(
                        f'UPDATE {self._claims} SET "owner" = %s, "fence" = "fence" + 1, '
                        '"lease_until" = now() + %s::interval WHERE "node" = %s '
                        'AND "lease_until" < now() RETURNING "id", "name", "fence", '
                        '"dropped_ns"'), (self.owner, self._lease(), node))}
            recorded = frozenset(str(n) for n, in self.conn.execute(
                stmt(f'SELECT "name" FROM {self._claims} WHERE "node" = %s'), (node,)))
        return Lapsed(rows, recorded)

    def moved(self, ticket: Ticket, path: Path) -> None:
        with translated():
            self.conn.execute(stmt(f'UPDATE {self._claims} SET "node" = %s, "name" = %s '
                                   'WHERE "id" = %s AND "owner" = %s'),
                              (self.node, stored(path.name), ticket.id, self.owner))

    def claim_orphan(self, node: str, name: str, dropped_ns: int) -> Ticket | None:
        with translated():
            row = self.conn.execute(stmt(
                f'INSERT INTO {self._claims} ("node", "name", "owner", "fence", "lease_until", '
                '"claimed_at", "dropped_ns") VALUES (%s, %s, %s, 1, now() + %s::interval, '
                'now(), %s) ON CONFLICT ("node", "name") DO NOTHING '
                'RETURNING "id", "fence", "dropped_ns"'),
                (node, name, self.owner, self._lease(), dropped_ns)).fetchone()
        return None if row is None else _ticket(row)

    def close(self) -> None:
        """Let go: this process's claims and heartbeat lapse now, so that another daemon
        may take over at once what this one leaves claimed."""
        conn = self._session.open
        if conn is not None:
            try:
                with translated(), conn.transaction():
                    conn.execute(stmt(f'UPDATE {conn.books.claims} SET "lease_until" = now() '
                                      'WHERE "owner" = %s'), (self.owner,))
                    # No owner: the node stopped cleanly, which `nodes.STATE` tells
                    # from a lease that ran out on a daemon lost.
                    conn.execute(stmt(
                        f'UPDATE {conn.books.daemons} SET "lease_until" = now(), '
                        '"file_in_hand" = NULL, "owner" = NULL WHERE "node" = %s AND "owner" = %s'),
                        (self.node, self.owner))
            except Exception:  # noqa: S110 (stopping: the leases lapse anyway)
                pass
        self._session.close()
