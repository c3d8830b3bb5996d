"""The `migrate` command: create or migrate the warehouse's tables without running a daemon.

For the role that owns the tables, so that the daemons and `retry` can run as a role
that may only read and write them (on PostgreSQL; see "Two roles" in the README).
Creates what is missing, migrates an older schema in place, refuses a database that is
not the daemon's or is newer, and says which version the schema is at. `--grant ROLE`
then grants that runtime role exactly what it needs. The work is the backend's
(`daemon.warehouse.migrate`); this module parses and prints.
"""

from __future__ import annotations

import argparse

from filedrop_etl.config import Settings
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.ops.commands import common, table
from filedrop_etl.daemon.warehouse.api import Migration

EPILOG = """\
examples:
  filedrop-etl migrate --db postgresql://etl_owner@db.example:5432/warehouse --grant etl
  filedrop-etl migrate --db /srv/etl/etl.db
  filedrop-etl migrate --config /etc/filedrop-etl/etl.toml --json

A daemon migrates the schema at its own start as well, when its role may. Run this as
the tables' owner where the daemons connect as a runtime role that may not, or to
migrate ahead of a start. On a current schema it changes nothing and takes no lock the
loads would wait for; a migration that must lock a table a running load holds gives up
at once (exit 2, database_busy): try again when no load of the old release runs.
--grant ROLE gives the runtime role USAGE on the schema and SELECT, INSERT, UPDATE and
DELETE on the daemon's tables (SELECT on filedrop_schema); it says so if the role may
not create the temporary table each load stages in. --grant-read ROLE gives an
analysts' role USAGE on the fact tables' schema and SELECT on the fact tables and the
load_history view, and nothing of the daemon's own tables.

exit codes: 0 the schema is current (migrated now, or already); 2 bad usage or
configuration, a database that is not the daemon's, newer, busy, or that this role
may not migrate.
"""


def add(commands: common.Subcommands, shared: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "migrate", parents=[shared], formatter_class=common.Help, epilog=EPILOG,
        help="create or migrate the warehouse's tables (as their owner)",
        description="Create the warehouse's tables, or migrate an older schema in place, "
        "and print the schema version; on PostgreSQL, optionally grant a runtime role "
        "what the daemons need to run as it.")
    parser.add_argument("--grant", metavar="ROLE",
                        help="PostgreSQL: grant ROLE what the daemons and `retry` need "
                        "(USAGE on the schemas; SELECT, INSERT, UPDATE, DELETE on the tables)")
    parser.add_argument("--grant-read", metavar="ROLE",
                        help="PostgreSQL: grant ROLE what an analyst needs (USAGE on the "
                        "fact tables' schema; SELECT on the fact tables and load_history)")
    common.add_json(parser)


def _schema_line(done: Migration) -> str:
    if done.found is None:
        return f"version {done.version} (created)"
    if done.migrated:
        return f"version {done.version} (migrated from version {done.found})"
    return f"version {done.version}, current: nothing to do"


def run(settings: Settings, args: argparse.Namespace) -> int:
    for flag, role in (("--grant", args.grant), ("--grant-read", args.grant_read)):
        if role is not None and not settings.shared:
            raise common.UsageError(f"{flag} is for a PostgreSQL warehouse: a SQLite "
                                    "database has no roles", hint=f"drop {flag}")
        if role is not None and not role:
            raise common.UsageError(f"{flag} needs a role's name", hint=f"{flag} ROLE")
    done = warehouse.migrate(settings, args.grant, reader=args.grant_read)
    if args.json:
        table.emit_json({"db": settings.where, **table.record(done),
                         "migrated": done.migrated})
        return common.EXIT_OK
    lines: list[tuple[str, table.Cell]] = [("database", settings.where),
                                           ("schema", _schema_line(done))]
    if done.granted is not None:
        lines.append(("granted", f"{done.granted}: USAGE on the schemas; SELECT, INSERT, "
                      "UPDATE, DELETE on the daemon's tables; SELECT on filedrop_schema"))
    if done.granted_read is not None:
        lines.append(("granted", f"{done.granted_read}: USAGE on the fact tables' schema; "
                      "SELECT on the fact tables and load_history"))
    lines += [("note", note) for note in done.notes]
    table.emit(table.pairs(lines))
    return common.EXIT_OK
