"""Which database a `db` setting names: a SQLite file by path, or a PostgreSQL server by URL.

A value beginning `postgresql://` or `postgres://` is a libpq connection URL; anything
else is a path. The URL is kept whole for connecting, but its text form never shows a
password (`str`, `repr`, logs, error messages): libpq reads one from the URL, from
`PGPASSWORD` or from `~/.pgpass`, and only the URL's own is hidden here. A server's URL
carries with it how long the daemon waits on that server (the settings
`network_timeout_seconds` and `statement_timeout_seconds`), so that every session opened
on it is bounded alike; they are not part of the URL's text, nor of its equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")
# How long a silent server is waited on before the session is checked (and given up if
# the server does not answer a second connection either): `network_timeout_seconds`.
NETWORK_TIMEOUT_SECONDS = 30.0


def is_postgres_url(value: str) -> bool:
    return value.split("://", 1)[0].lower() in SCHEMES and "://" in value


def redact(url: str) -> str:
    """`url` with any password (in the user part or the query) replaced by `***`; other
    text as it is. Tolerant: a URL too malformed to use is still shown without one."""
    if not is_postgres_url(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = urlencode([(k, "***" if k == "password" else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL server and database, as libpq's URL; printed without its password."""

    url: str = field(repr=False)
    # How long the daemon waits on this server (see the module's docstring); None: no
    # statement timeout, as a load may rightly take minutes.
    network_timeout_seconds: float = field(default=NETWORK_TIMEOUT_SECONDS, compare=False)
    statement_timeout_seconds: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme.lower() not in SCHEMES:
            raise ValueError(f"expected a URL beginning {SCHEMES[0]}://")
        try:
            parts.port  # noqa: B018 (a bad port raises here, not at the first connect)
        except ValueError as exc:
            raise ValueError(f"bad port in {self.redacted}: {exc}") from None
        if not parts.path.strip("/") and "dbname" not in dict(parse_qsl(parts.query)):
            raise ValueError(f"{self.redacted} names no database: add /DBNAME")

    @property
    def redacted(self) -> str:
        """The URL with any password replaced by `***` (in the netloc or the query)."""
        return redact(self.url)

    @property
    def database(self) -> str:
        parts = urlsplit(self.url)
        return parts.path.strip("/") or dict(parse_qsl(parts.query)).get("dbname", "")

    def __str__(self) -> str:
        return self.redacted
