"""Write `dump.sql`: a PostgreSQL warehouse as the last release before feeds left it.

Run with that release's code first on the path (a checkout of commit 0344173, schema
version 3 on PostgreSQL), against a server whose user may create schemas:

    git archive 0344173 | tar -x -C /tmp/release
    PYTHONPATH=/tmp/release .venv/bin/python tests/data/release-4-postgresql/make.py \
        postgresql://postgres@127.0.0.1:5432/postgres

It runs that release's own daemon (`--once`) and `retry` in a schema of its own on the
generator's files, then dumps the schema (`pg_dump --inserts`, no owner, no privileges)
beside this script, and drops the schema.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import psycopg

SCHEMA = "filedrop_release_4"
HERE = Path(__file__).resolve().parent


def main(server: str) -> None:
    import filedrop_etl.daemon.warehouse.postgresql.schema as schema

    assert schema.SCHEMA_VERSION == 3, "run with the release before feeds on the path"
    url = f"{server}?options={quote(f'-csearch_path={SCHEMA}')}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE; CREATE SCHEMA "{SCHEMA}"'
                     .encode())
    root = Path(tempfile.mkdtemp())
    folders = ["--inbox", str(root / "inbox"), "--processed", str(root / "processed"),
               "--failed", str(root / "failed"), "--db", url, "--node", "release-4"]
    etl = [sys.executable, "-m", "filedrop_etl"]

    def generate(day: str, rows: int, seed: int = 0) -> None:
        subprocess.run([sys.executable, "-m", "filedrop_etl.generator", "--date", day,
                        "--rows", str(rows), "--seed", str(seed), "--inbox",
                        str(root / "inbox")], check=True)

    def once(*extra: str, ok: int = 0) -> None:
        done = subprocess.run([*etl, "--once", "--settle-seconds", "0.1", *folders, *extra],
                              capture_output=True, text=True, check=False)
        assert done.returncode == ok, done.stderr

    (root / "inbox").mkdir()
    generate("2026-03-01", 300)
    once()
    generate("2026-03-01", 300)
    once()
    generate("2026-03-02", 300)
    once()
    generate("2026-03-02", 250, seed=1)
    once("--write-mode", "replace")
    generate("2026-03-03", 40)
    once()
    (root / "inbox" / "transactions_2026-03-04.parquet").write_bytes(b"not parquet")
    once(ok=1)
    subprocess.run([*etl, "retry", "transactions_2026-03-04.parquet", *folders], check=True,
                   capture_output=True)
    once(ok=1)
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
