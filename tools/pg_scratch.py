"""`python -m tools.pg_scratch create|drop ADMIN_URL NAME`: a scratch PostgreSQL database.

For `.ci/run` (and anyone running the PostgreSQL tests by hand): `create` waits up to 30
seconds for the server to answer, then creates database NAME, saying so; `drop` removes
it, closing any session still on it. Exit 2 with the reason when the server is out of
reach. The tests then take `postgresql://.../NAME` from `FILEDROP_TEST_POSTGRES`.
`create_schema` and `drop_schema` do the same for a schema, for a tool that runs each
case in a schema of its own (`python -m tools.torture --postgres URL`).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from filedrop_etl.daemon.warehouse.postgresql import books

WAIT_SECONDS = 30.0


def _connect(admin: str) -> psycopg.Connection[tuple[object, ...]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            return psycopg.connect(admin, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"pg_scratch: the PostgreSQL server does not answer: "
                                 f"{str(exc).strip()}") from None
            time.sleep(0.5)


def url_of(admin: str, name: str) -> str:
    """The admin URL with its database replaced by `name`."""
    parts = urlsplit(admin)
    return urlunsplit(parts._replace(path="/" + name))


def create_schema(server: str, prefix: str) -> tuple[str, str]:
    """A new schema named `prefix` and a random suffix in the server's database: its name,
    and a URL whose tables land in it (its `search_path`)."""
    name = prefix + secrets.token_hex(6)
    with _connect(server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    joiner = "&" if "?" in server else "?"
    return name, f"{server}{joiner}options={quote(f'-csearch_path={name}')}"


def drop_schema(server: str, name: str) -> None:
    """Drop schema `name` and everything in it, and the daemons' bookkeeping schema
    beside it (`books.default_for`)."""
    with _connect(server) as conn:
        for schema in (name, books.default_for(name)):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pg_scratch", description=__doc__)
    parser.add_argument("action", choices=("create", "drop"))
    parser.add_argument("admin", help="a URL to a database the user may CREATE DATABASE from")
    parser.add_argument("name")
    args = parser.parse_args(argv)
    with _connect(args.admin) as conn:
        if args.action == "create":
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.name)))
            print(url_of(args.admin, args.name))
        else:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(args.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
