"""Secrets in a PostgreSQL URL: never shown.

A corpus of hostile URLs (passwords holding `@ / ? # & = % : [ ] ,`, spaces and bad
escapes, in the user part and in the query's `password` and `sslpassword`, the scheme in
capitals) is held against libpq's own reading (psycopg's `conninfo_to_dict`, no server
needed): a URL the settings accept is one libpq reads without refusing it (a refusal
quotes the URL), with no piece of a secret anywhere but in the secret parameters, which
every text form masks; a URL the settings refuse shows no piece of one in the refusal.
"""

from __future__ import annotations

import random
import re

import psycopg
import pytest
from psycopg import pq

from config import ConfigError, load_settings
from config.database import LIBPQ_PARAMETERS, SECRET_PARAMETERS, PostgresUrl

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
        db = load_settings({"db": url}, config_file=None, environ={}).db
    except ConfigError as exc:
        assert shows_none(f"{exc} {exc.message} {exc.hint}", secret), exc
        return
    assert isinstance(db, PostgresUrl)
    assert shows_none(f"{db} {db!r} {db.redacted}", secret), db.redacted
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
