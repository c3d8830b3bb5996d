"""A PostgreSQL server's `db` setting: a libpq connection URL, read, checked and shown.

A value beginning `postgresql://` or `postgres://` is a libpq connection URL (this
backend accepts it; anything else is another backend's). The URL is read here as libpq
reads it, not as `urllib` does: libpq ends the user part at the first `@` before any
`/`, and `?` and `#` mean nothing in it. It is kept whole for connecting, but its text
form never shows a secret (`str`, `repr`, logs, error messages): neither the password of
the user part nor the value of a query parameter libpq holds secret (`password`,
`sslpassword`, ...). A URL that libpq would misread (an unencoded `@` or `/` in a
password puts part of it in the host or the database name) or would refuse with part of
the URL quoted in its message (a bad `%` escape, a parameter it does not know) is
refused here instead, and shown with everything before its last `@` masked. A password
from `PGPASSWORD`, `PGPASSFILE` or `~/.pgpass` never passes through here. A server's URL
carries with it how long the daemon waits on that server (the settings
`network_timeout_seconds` and `statement_timeout_seconds`), so that every session opened
on it is bounded alike; they are not part of the URL's text, nor of its equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_to_bytes

from filedrop_etl.config.settings import NETWORK_TIMEOUT_SECONDS

SCHEMES = ("postgresql", "postgres")
MASK = "***"
# The parameters whose value is a secret: those libpq's PQconndefaults marks "*"
# (password-like), and the SCRAM keys, which log in as a password would.
SECRET_PARAMETERS = frozenset({"password", "sslpassword", "oauth_client_secret",
                               "scram_client_key", "scram_server_key"})
# libpq's (18) parameter key words, and its `ssl=true` alias. A query key not among them
# is refused, without its text: libpq would quote it, and it may be the tail of a
# password written with an unencoded `&`. tests/test_settings.py holds this list against
# the libpq installed.
LIBPQ_PARAMETERS = SECRET_PARAMETERS | frozenset((
    "service", "user", "passfile", "channel_binding", "connect_timeout", "dbname",
    "host", "hostaddr", "port", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "sslmode", "sslnegotiation",
    "sslcompression", "sslcert", "sslkey", "sslcertmode", "sslrootcert", "sslcrl",
    "sslcrldir", "sslsni", "requirepeer", "require_auth", "min_protocol_version",
    "max_protocol_version", "ssl_min_protocol_version", "ssl_max_protocol_version",
    "gssencmode", "krbsrvname", "gsslib", "gssdelegation", "replication",
    "target_session_attrs", "load_balance_hosts", "oauth_issuer", "oauth_client_id",
    "oauth_scope", "sslkeylogfile", "ssl",
))
_HEX = frozenset("0123456789abcdefABCDEF")


def is_postgres_url(value: str) -> bool:
    return value.split("://", 1)[0].lower() in SCHEMES and "://" in value


@dataclass(frozen=True)
class _Reading:
    """A URL cut into its parts as libpq cuts it, each as written (escapes kept)."""

    scheme: str
    user: str | None  # None: no user part (no `@` before the first `/`)
    password: str | None  # None: no `:` in the user part
    hosts: str  # host[:port], comma-separated; an IPv6 host in [...]
    path: str | None  # the database name, without its `/`; None: no `/`
    query: str | None  # after the `?`; None: no `?`

    def pieces(self) -> list[tuple[str, str | None]]:
        """The query's parameters as (key as written, value; None without an `=`)."""
        if not self.query:
            return []
        # A trailing `&` ends the query for libpq; any other empty piece is an error.
        pieces = self.query.removesuffix("&").split("&")
        return [(key, value if sep else None)
                for key, sep, value in (piece.partition("=") for piece in pieces)]


def _read(url: str) -> _Reading:
    """`url` as libpq's URI parser reads it (conninfo_uri_parse_options); never raises."""
    scheme, _, rest = url.partition("://")
    user = password = None
    stop = next((at for at, char in enumerate(rest) if char in "@/"), len(rest))
    if rest[stop:stop + 1] == "@":
        user, colon, secret = rest[:stop].partition(":")
        password, rest = (secret if colon else None), rest[stop + 1:]
    at = 0
    while True:  # host[:port] entries up to the first `/` or `?` outside a [...]
        if rest.startswith("[", at):
            close = rest.find("]", at)
            at = len(rest) if close < 0 else close + 1
        while at < len(rest) and rest[at] not in "/?,":
            at += 1
        if not rest.startswith(",", at):
            break
        at += 1
    hosts, rest = rest[:at], rest[at:]
    path, query = None, None
    if rest.startswith("/"):
        path, mark, after = rest[1:].partition("?")
        query = after if mark else None
    elif rest.startswith("?"):
        query = rest[1:]
    return _Reading(scheme, user, password, hosts, path, query)


def _bad_escape(text: str) -> bool:
    """Whether `text` holds a `%` libpq refuses (quoting the text): not `%XX`, or `%00`;
    or escapes of bytes that are not UTF-8, which psycopg can not read back."""
    if any(text[at + 1:at + 3] == "00" or not set(text[at + 1:at + 3]) <= _HEX
           or len(text) < at + 3 for at in range(len(text)) if text[at] == "%"):
        return True
    try:
        unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _bad_host(entry: str) -> bool:
    """Whether a host[:port] entry is one libpq refuses (quoting the whole URL, for an
    IPv6 address without its `]`), or reads a port from that is no port."""
    port = entry.partition(":")[2]
    if entry.startswith("["):
        close = entry.find("]")
        if close < 2 or entry[close + 1:close + 2] not in ("", ":"):
            return True
        port = entry[close + 2:]
    return bool(port) and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536)


def _problem(reading: _Reading) -> str | None:
    """What makes libpq misread or quote `reading`, in words that quote none of it."""
    if "@" in reading.hosts + (reading.path or "") + (reading.query or ""):
        return ("an @ stands after the user part: write @ as %40 (and / as %2F) in a "
                "password, a name or a parameter")
    parts = {"user name": reading.user, "password": reading.password,
             "host": reading.hosts, "database name": reading.path, "query": reading.query}
    for part, text in parts.items():
        if text and _bad_escape(text):
            return (f"the {part} holds a % that is not %XX (or is %00, or escapes what is "
                    "not UTF-8): write % as %25")
        if text and " " in text:  # libpq (18, bundled) refuses one inside a part, quoting it
            return f"the {part} holds a space: write it as %20"
    if any(_bad_host(entry) for entry in reading.hosts.split(",")):
        return ("a host is not HOST[:PORT] or [IPV6][:PORT] with a port from 1 to 65535")
    for number, (key, value) in enumerate(reading.pieces(), 1):
        if value is None or "=" in value:
            return (f"query parameter {number} is not KEY=VALUE: write & and = in a value "
                    "as %26 and %3D")
        if unquote(key) not in LIBPQ_PARAMETERS:
            return (f"query parameter {number} is not one libpq knows (see its list of "
                    "parameter key words); write & and = in a value as %26 and %3D")
    database = (reading.path or "").strip("/")
    if not database and "dbname" not in {unquote(key) for key, _ in reading.pieces()}:
        return "the URL names no database: add /DBNAME"
    return None


def _masked_query(query: str) -> str:
    """`query` with the value of each secret parameter masked, and each piece that is
    not a libpq KEY=VALUE (a secret's tail after an unencoded `&`?) masked whole."""
    shown = []
    for key, sep, value in (piece.partition("=") for piece in query.split("&")):
        name = unquote(key)
        if name.lower() in SECRET_PARAMETERS:
            shown.append(f"{key}={MASK}")
        elif piece := key + sep + value:
            shown.append(piece if sep and name in LIBPQ_PARAMETERS else MASK)
        else:
            shown.append("")  # libpq's trailing `&`
    return "&".join(shown)


def redact(url: str) -> str:
    """`url` with every secret replaced by `***`, other text as it is. A URL libpq would
    misread shows only what follows its last `@` (the host, most likely), its query's
    secrets masked, or nothing past the scheme when that `@` may stand in the query."""
    if not is_postgres_url(url):
        return url
    reading = _read(url)
    if _problem(reading) is None:
        user = "" if reading.user is None else (
            reading.user + ("" if reading.password is None else f":{MASK}") + "@")
        path = "" if reading.path is None else f"/{reading.path}"
        query = "" if reading.query is None else f"?{_masked_query(reading.query)}"
        return f"{reading.scheme}://{user}{reading.hosts}{path}{query}"
    before, at, after = url.partition("://")[2].rpartition("@")
    if not at or "?" in before:
        return f"{reading.scheme}://{MASK}"
    place, mark, query = after.partition("?")
    return f"{reading.scheme}://{MASK}@{place}{mark}{_masked_query(query) if mark else ''}"


def secrets(url: str) -> list[str]:
    """The names of the secrets `url` holds (`password` for the user part's too), each
    once, as libpq reads them; and `password` for a URL it would misread with a `:`
    before its last `@` (its user part as meant). Empty for a path."""
    if not is_postgres_url(url):
        return []
    reading = _read(url)
    found = ["password"] if reading.password else []
    found += [name for key, value in reading.pieces()
              if (name := unquote(key).lower()) in SECRET_PARAMETERS and value]
    before = url.partition("://")[2].rpartition("@")[0]
    if _problem(reading) is not None and ":" in before:
        found.append("password")
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL server and database, as libpq's URL; printed without its secrets."""

    url: str = field(repr=False)
    # How long the daemon waits on this server (see the module's docstring); None: no
    # statement timeout, as a load may rightly take minutes.
    network_timeout_seconds: float = field(default=NETWORK_TIMEOUT_SECONDS, compare=False)
    statement_timeout_seconds: float | None = field(default=None, compare=False)
    # The schema of the daemon's own tables; None: derived from the fact tables' schema
    # when a session connects (`books`).
    bookkeeping_schema: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        scheme, sep, rest = self.url.partition("://")
        if not sep or scheme.lower() not in SCHEMES:
            raise ValueError(f"expected a URL beginning {SCHEMES[0]}://")
        # libpq knows the scheme in lower case only: in any other, it reads the URL as
        # `key=value` pairs and quotes all of it, password and all, in its refusal.
        object.__setattr__(self, "url", f"{scheme.lower()}://{rest}")
        problem = _problem(_read(self.url))
        if problem is not None:
            raise ValueError(problem)

    @property
    def redacted(self) -> str:
        """The URL with every secret replaced by `***`."""
        return redact(self.url)

    @property
    def database(self) -> str:
        reading = _read(self.url)
        named = {unquote(key): unquote(value or "") for key, value in reading.pieces()}
        return unquote(reading.path or "").strip("/") or named.get("dbname", "")

    def __str__(self) -> str:
        return self.redacted
