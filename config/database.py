"""Which database a `db` setting names: a SQLite file by path, or a PostgreSQL server by URL.

A value beginning `postgresql://` or `postgres://` is a libpq connection URL; anything
else is a path. The URL is kept whole for connecting, but its text form never shows a
password (`str`, `repr`, logs, error messages): libpq reads one from the URL, from
`PGPASSWORD` or from `~/.pgpass`, and only the URL's own is hidden here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")


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
