"""Secrets in a PostgreSQL URL: never shown, and warned of where others can read them.

A corpus of hostile URLs (passwords holding `@ / ? # & = % : [ ] ,`, spaces and bad
escapes, in the user part and in the query's `password` and `sslpassword`, the scheme in
capitals) is held against libpq's own reading (psycopg's `conninfo_to_dict`, no server
needed): a URL the settings accept is one libpq reads without refusing it (a refusal
quotes the URL), with no piece of a secret anywhere but in the secret parameters, which
every text form masks; a URL the settings refuse shows no piece of one in the refusal.
Then the real program: the warning for a password on the command line or in a file
everyone may read, none for `ETL_DB`, and the daemon's `daemon_started`, `status` and
status page against the real server, with a password in the URL that trust
authentication ignores.
"""

from __future__ import annotations

import getpass
import json
import os
import random
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import pq

from filedrop_etl.config import ConfigError
from filedrop_etl.daemon.warehouse.postgresql.url import (
    LIBPQ_PARAMETERS,
    SECRET_PARAMETERS,
    PostgresUrl,
)
from tests import backends
from tests.backends import load_settings
from tests.conftest import ROOT, Daemons, settings_under
from tests.http_client import request, url_of

SCRIPT = Path(sys.executable).with_name("filedrop-etl")
# Pieces of a secret are runs of these letters, which nothing else in a URL here holds.
_PIECE = "BCDFGHJKLMNPQRSTVWXZ"
_HOSTILE = ["@", "/", "?", "#", "&", "=", ":", "%", "%zz", "%00", "%ff", "%40", "%2f", "[", "]",
            ",", " ", "\t", "'", "\\", "+", ";"]


def pieces(secret: str) -> list[str]:
    return re.findall(f"[{_PIECE}]+", secret)


def shows_none(text: str, secret: str) -> bool:
    return not any(piece in text for piece in pieces(secret))


def hostile_secret(rng: random.Random) -> str:
    """Three or four pieces of capitals, each followed by a character a URL reads."""
    return "".join("".join(rng.choices(_PIECE, k=4)) + rng.choice(_HOSTILE)
                   for _ in range(rng.randint(3, 4)))


def hostile_url(rng: random.Random) -> tuple[str, str]:
    secret = hostile_secret(rng)
    scheme = rng.choice(["postgresql", "postgres", "POSTGRESQL", "Postgres"])
    template = rng.choice([
        "{s}://etl:{x}@db.example:5432/warehouse",
        "{s}://etl:{x}@db.example/warehouse?sslmode=prefer",
        "{s}://etl@db.example:5432/warehouse?password={x}",
        "{s}://etl@[::1]:5432/warehouse?sslmode=prefer&sslpassword={x}",
        "{s}://etl:{x}@h1:5432,h2/warehouse?application_name=etl&sslpassword={x}",
    ])
    return template.format(s=scheme, x=secret), secret


CORPUS = [hostile_url(random.Random(seed)) for seed in range(400)]
NAMED = [  # the cases the probes found, and their kin
    ("postgresql://etl:S3cr@t/PW@db.example:5432/warehouse", "S3cr@t/PW"),
    ("postgresql://etl:SCRT/PWRD@db.example:5432/warehouse", "SCRT/PWRD"),
    ("postgresql://etl:SC?RT#PW@db.example/warehouse", "SC?RT#PW"),
    ("postgresql://etl@db.example/warehouse?sslpassword=SCRTPW", "SCRTPW"),
    ("postgresql://etl@db.example/warehouse?pass%77ord=SCRTPW", "SCRTPW"),
    ("postgresql://etl@db.example/warehouse?password=SCRT&PWRD=x", "SCRT&PWRD=x"),
    ("postgresql://etl:SCRT%zzPW@db.example/warehouse", "SCRT%zzPW"),
    ("postgresql://etl:SCRT PWRD@db.example/warehouse", "SCRT PWRD"),
    ("POSTGRESQL://etl:SCRTPW@db.example/warehouse", "SCRTPW"),
    ("postgresql://etl:SCRTPW@[::1/warehouse", "SCRTPW"),
    ("postgresql://etl:SCRT/PWRD", "SCRT/PWRD"),
]


@pytest.mark.parametrize(("url", "secret"), NAMED + CORPUS,
                         ids=[u for u, _ in NAMED] + [f"corpus-{n}" for n in range(len(CORPUS))])
def test_no_text_form_shows_a_secret_and_libpq_reads_what_the_settings_accept(
        url: str, secret: str) -> None:
    try:
        settings = load_settings({"db": url}, config_file=None, environ={})
    except ConfigError as exc:
        assert shows_none(f"{exc} {exc.message} {exc.hint}", secret), exc
        return
    db = PostgresUrl(settings.db)
    assert shows_none(f"{settings.where} {settings!r} {db} {db!r} {db.redacted}",
                      secret), db.redacted
    assert "***" in db.redacted
    # libpq reads it as the settings did: no refusal (whose message would quote the URL),
    # and the secret only in its secret parameters, never in a host, a port or a database
    # name that a message, a log line or a DNS query would carry.
    read = psycopg.conninfo.conninfo_to_dict(db.url)
    assert any(read.get(name) for name in SECRET_PARAMETERS)
    assert shows_none(" ".join(str(v) for k, v in read.items() if k not in SECRET_PARAMETERS),
                      secret), read


def test_the_corpus_has_urls_both_accepted_and_refused() -> None:
    """Guards the test above against passing by refusing (or accepting) everything."""
    outcomes = {"accepted": 0, "refused": 0}
    for url, _ in CORPUS:
        try:
            PostgresUrl(url)
            outcomes["accepted"] += 1
        except ValueError:
            outcomes["refused"] += 1
    assert min(outcomes.values()) >= 40, outcomes


def test_the_parameters_held_secret_or_known_are_libpqs_own() -> None:
    """libpq marks its password-like parameters "*"; one it adds must be masked too, and
    a key it knows must not be refused."""
    options = pq.Conninfo.get_defaults()
    assert {o.keyword.decode() for o in options if o.dispchar == b"*"} <= SECRET_PARAMETERS
    assert {o.keyword.decode() for o in options} <= LIBPQ_PARAMETERS


def test_a_scheme_in_capitals_is_given_to_libpq_in_small_letters() -> None:
    """libpq takes `POSTGRESQL://...` for `key=value` pairs, and quotes all of it."""
    url = PostgresUrl("POSTGRESQL://etl:SCRTPW@db.example/warehouse")
    assert url.url == "postgresql://etl:SCRTPW@db.example/warehouse"
    read = psycopg.conninfo.conninfo_to_dict(url.url)
    assert (read["user"], read["host"], read["dbname"]) == ("etl", "db.example", "warehouse")


def events(stream: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.splitlines() if line.strip()]


def status(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "PG"))}
    return subprocess.run([str(SCRIPT), "status", "--json", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**clean, **(env or {})})


@pytest.mark.slow  # a process
@pytest.mark.parametrize(("url", "secret", "names"), [
    ("postgresql://etl:SCRTPW@127.0.0.1:1/warehouse", "SCRTPW", ["password"]),
    ("postgresql://etl@127.0.0.1:1/warehouse?sslmode=disable&sslpassword=SCRTPW",
     "SCRTPW", ["sslpassword"]),
    # Refused (an unencoded @ and / in the password), and warned of all the same.
    ("postgresql://etl:SC@RT/PW@127.0.0.1:1/warehouse", "SC@RT/PW", ["password"]),
])
def test_a_secret_on_the_command_line_is_warned_of_and_never_shown(
        url: str, secret: str, names: list[str], tmp_path: Path) -> None:
    done = status("--db", url, "--inbox", str(tmp_path / "inbox"))
    assert done.returncode == 2  # the server is out of reach, or the URL refused
    assert shows_none(done.stdout + done.stderr, secret), done.stderr
    [warning] = [e for e in events(done.stderr) if e["event"] == "password_on_command_line"]
    assert warning["level"] == "warning"
    assert (warning["setting"], warning["secrets"]) == ("db", names)
    assert "ps" in warning["reason"] and "~/.pgpass" in warning["hint"]


@pytest.mark.slow  # a process
def test_a_secret_from_the_environment_is_not_warned_of(tmp_path: Path) -> None:
    url = "postgresql://etl:SCRTPW@127.0.0.1:1/warehouse"
    done = status("--inbox", str(tmp_path / "inbox"), env={"ETL_DB": url})
    assert done.returncode == 2
    lines = events(done.stderr)
    assert [e["event"] for e in lines] == ["database_unavailable"]
    assert lines[0]["db"] == "postgresql://etl:***@127.0.0.1:1/warehouse"
    assert shows_none(done.stdout + done.stderr, "SCRTPW")


@pytest.mark.slow  # a process
def test_a_secret_in_a_config_file_everyone_may_read_is_warned_of(tmp_path: Path) -> None:
    toml = tmp_path / "etl.toml"
    toml.write_text('db = "postgresql://etl:SCRTPW@127.0.0.1:1/warehouse"\n', encoding="utf-8")
    toml.chmod(0o644)
    done = status("--config", str(toml), "--inbox", str(tmp_path / "inbox"))
    [warning] = [e for e in events(done.stderr) if e["event"] == "password_in_readable_file"]
    assert (warning["setting"], warning["path"], warning["secrets"]) == (
        "db", str(toml), ["password"])
    assert not [e for e in events(done.stderr) if e["event"] == "password_on_command_line"]
    toml.chmod(0o640)  # the service's group may read it; other users may not
    done = status("--config", str(toml), "--inbox", str(tmp_path / "inbox"))
    assert [e["event"] for e in events(done.stderr)] == ["database_unavailable"]
    assert shows_none(done.stdout + done.stderr, "SCRTPW")


def with_secrets(url: str, password: str, sslpassword: str) -> tuple[str, str]:
    """`url` with a password in its user part (kept if it has one: then that one is the
    secret) and an `sslpassword`; the password. Trust authentication ignores both, and
    libpq reads `sslpassword` only to decrypt a client key, which there is none of."""
    scheme, _, rest = url.partition("://")
    userinfo, at, place = rest.partition("@")
    if not at or "/" in userinfo:
        userinfo, place = quote(getpass.getuser(), safe=""), rest
    user, colon, kept = userinfo.partition(":")
    secret = kept if colon else password
    joiner = "&" if "?" in place else "?"
    return f"{scheme}://{user}:{secret}@{place}{joiner}sslpassword={sslpassword}", secret


@pytest.mark.slow  # a process
def test_the_daemon_shows_its_database_without_secrets(tmp_path: Path) -> None:
    """`daemon_started` logged the database as `PostgresUrl()`, its repr; now its text."""
    server, password = with_secrets(backends.server_url(), "pw-" + secrets.token_hex(6),
                                    sslpassword := "ssl-" + secrets.token_hex(6))
    with backends.scratch_schema(server) as url:
        settings = settings_under(tmp_path, url)
        daemons = Daemons(settings, tmp_path)
        try:
            daemon = daemons.start("--http", "127.0.0.1:0")
            page = request(url_of(daemon) + "/")
            assert page.status == 200
            [started] = daemon.matching("daemon_started")
            assert started["db"] == url.replace(f":{password}@", ":***@", 1).replace(
                f"sslpassword={sslpassword}", "sslpassword=***")
            [warning] = daemon.matching("password_on_command_line")
            assert warning["secrets"] == ["password", "sslpassword"]
            done = status("--inbox", str(settings.inbox), env={"ETL_DB": url})
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["database"]["path"] == started["db"]
            assert daemon.stop() == 0
        finally:
            daemons.close()
    shown = daemon.log_path.read_text() + page.text + done.stdout + done.stderr
    assert password not in shown and sslpassword not in shown
