"""Write `dump.sql`: a PostgreSQL warehouse as the release with feeds (schema version 4)
left it, its daemon's tables beside the fact tables.

Run with that release's code first on the path (a checkout of commit 3d2e31e with its
own .venv, PostgreSQL schema version 4), against a server whose user may create schemas:

    git worktree add /tmp/release-5 3d2e31e && (cd /tmp/release-5 && make install)
    /tmp/release-5/.venv/bin/python tests/data/release-5-postgresql/dump.py \\
        postgresql://postgres@127.0.0.1:5432/postgres

It runs that release's own daemons (`--once`, two nodes) and `retry` in a schema of its
own on the generator's files of two feeds (`etl.toml` beside this script: the built-in
transactions and config/feeds.example.toml's orders), then dumps the schema
(`pg_dump --inserts`, no owner, no privileges) beside this script, and drops it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import psycopg

SCHEMA = "filedrop_release_5"
HERE = Path(__file__).resolve().parent


def main(server: str) -> None:
    import filedrop_etl.daemon.warehouse.postgresql.schema as schema

    assert schema.SCHEMA_VERSION == 4, "run with the release with feeds on the path"
    url = f"{server}?options={quote(f'-csearch_path={SCHEMA}')}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE; CREATE SCHEMA "{SCHEMA}"'
                     .encode())
    root = Path(tempfile.mkdtemp())
    config = str(HERE / "etl.toml")
    folders = ["--config", config, "--inbox", str(root / "inbox"), "--processed",
               str(root / "processed"), "--failed", str(root / "failed"), "--db", url]
    # Run from the scratch folder: `-m` puts the working folder first on the path, and a
    # checkout's own filedrop_etl/ there would be run instead of the release's.
    etl = [sys.executable, "-m", "filedrop_etl"]

    def generate(feed: str, day: str, rows: int, seed: int = 0) -> None:
        subprocess.run([sys.executable, "-m", "filedrop_etl.generator", "--feed", feed,
                        "--config", config, "--date", day, "--rows", str(rows), "--seed",
                        str(seed), "--inbox", str(root / "inbox"), "--no-progress"],
                       check=True, cwd=root)

    def once(node: str, *extra: str, ok: int = 0) -> None:
        done = subprocess.run([*etl, "--once", "--settle-seconds", "0.1", *folders,
                               "--node", node, *extra],
                              capture_output=True, text=True, check=False, cwd=root)
        assert done.returncode == ok, done.stderr

    (root / "inbox").mkdir()
    generate("transactions", "2026-03-01", 300)
    once("release-5-a")
    generate("orders", "2026-03-01", 20)
    once("release-5-b")
    generate("transactions", "2026-03-02", 250, seed=1)
    generate("orders", "2026-03-02", 10)
    once("release-5-a")
    (root / "inbox" / "orders_2026-03-03.parquet").write_bytes(b"not parquet")
    once("release-5-b", ok=1)
    subprocess.run([*etl, "retry", "orders_2026-03-03.parquet", *folders], check=True,
                   capture_output=True, cwd=root)
    once("release-5-b", ok=1)
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None, "pg_dump is needed on the PATH"
    dump = subprocess.run([pg_dump, "--inserts", "--no-owner", "--no-privileges",
                           "--schema", SCHEMA, server], capture_output=True, text=True,
                          check=True).stdout
    (HERE / "dump.sql").write_text(dump)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{SCHEMA}" CASCADE'.encode())
    shutil.rmtree(root)


if __name__ == "__main__":
    main(sys.argv[1])
