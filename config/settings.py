"""Runtime settings: one frozen dataclass and the one function that resolves it.

Precedence, highest first: an explicit argument (a command-line flag), the environment
variable `ETL_<NAME>`, the TOML file (`--config`, `ETL_CONFIG`, else `config/etl.toml`
shipped beside this module), then the defaults below. This is the only module in the
project that reads the environment. Each value's source is recorded with it, so that
a message about the value can say where to change it. Relative paths are resolved
against the working directory at start-up, so a later `chdir` cannot move the inbox.
The `db` setting stays text here: this package knows no backend. The backend that
accepts it reads it (a path made absolute, a URL checked), checks its location, and
says what follows from it (`Place`: shared or not, the lock file, how it is shown, and
each node's work directory when shared); `daemon.warehouse.registry.place` fills that in.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from filedrop_etl.config.contract import (
    DEFAULT_TABLE_PREFIX,
    UNMATCHED_POLICIES,
    WRITE_MODES,
    Feeds,
    UnmatchedPolicy,
    WriteMode,
)
from filedrop_etl.config.errors import ConfigError
from filedrop_etl.config.feeds import read_feeds

__all__ = ["WRITE_MODES", "ConfigError", "Feeds", "Place", "Settings", "WriteMode",
           "load_settings"]
ObserverKind = Literal["auto", "polling"]
OBSERVERS: tuple[ObserverKind, ...] = ("auto", "polling")
# Where a setting's value came from, highest precedence first; `daemon`: a folder an
# operator's command found recorded by the daemon (`History.daemons`), no source naming one.
Source = Literal["flag", "environment", "config file", "default", "daemon"]
DEFAULT_HTTP_HOST = "127.0.0.1"
ENV_PREFIX = "ETL_"
DEFAULT_CONFIG_FILE = Path(__file__).with_name("etl.toml")
# How long a silent database server is waited on before its session is checked (and
# given up if it does not answer a second connection either).
NETWORK_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Place:
    """What the backend that accepts the `db` setting says of it: filled in by
    `daemon.warehouse.registry.place`, as this package knows no backend."""

    # The setting as a log line or a message may show it: never a secret.
    shown: str
    # Whether several daemons may share the warehouse (a server), each on a node.
    shared: bool
    # The database file, for a backend that keeps its database in one; None: a server.
    file: Path | None
    # Where the backend keeps the single-instance lock (`daemon.lock`) of a daemon with
    # given settings: asked each time, as a command may take the daemon's own folders.
    lock: Callable[[Settings], Path] = field(repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything the daemon needs to know before it starts; immutable once resolved."""

    inbox: Path
    processed: Path
    failed: Path
    # Where the warehouse is, as given: a database file's path or a server's URL. Which
    # backend it names is `daemon.warehouse.registry`'s to say; the text may hold a
    # password, so it is shown only as `where`, never in the repr.
    db: str = field(repr=False)
    work: Path
    write_mode: WriteMode
    settle_seconds: float
    rescan_seconds: float
    busy_timeout_seconds: float
    observer: ObserverKind
    poll_seconds: float
    # (host, port) of the metrics and health server, None when off; port 0 picks one.
    http: tuple[str, int] | None
    stall_seconds: float
    # Larger inputs are refused as bad input before they are read; None: no limit.
    max_file_bytes: int | None
    max_file_rows: int | None
    # Starts that may resume one claimed file without an outcome before it is set aside.
    max_resumes: int
    # This daemon's name among those sharing a PostgreSQL warehouse; the host's by default.
    node: str
    # How long a claim held in PostgreSQL stays this daemon's without a heartbeat.
    lease_seconds: float
    # PostgreSQL: how long a silent server is waited on before its session is checked
    # and, unanswered, given up; also bounds the connect and TCP's keepalives.
    network_timeout_seconds: float
    # PostgreSQL: the longest one statement may run on the server; None: no limit.
    statement_timeout_seconds: float | None
    config_file: Path | None
    # A declared feed's table is this prefix and its name unless it names its own.
    table_prefix: str
    # What a file whose name matches no feed does: `fail` (failed/) or `leave` (stays).
    unmatched: UnmatchedPolicy
    # The feeds this daemon loads, each its tables, key, columns and checks as a value.
    # Read once, by `load_settings`; everything that loads is handed one from here.
    feeds: Feeds = field(compare=False)
    # Where each setting came from (`work` derived from the inbox counts as "default"),
    # so that a message about a value can name its source; empty if built by hand.
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False)
    # `ETL_*` variables in the environment that name no setting (a typo, most likely),
    # each with the variable it most likely meant (or None); warned of, never refused.
    unknown_variables: Mapping[str, str | None] = field(default_factory=dict, compare=False)
    # What the backend says of `db`; None until placed (`daemon.warehouse.registry`).
    place: Place | None = field(default=None, compare=False)

    @property
    def placed(self) -> Place:
        """What the backend says of `db`; a bug to ask before it was placed."""
        if self.place is None:
            raise RuntimeError("the settings were not placed: "
                               "daemon.warehouse.registry.place(settings) says where db is")
        return self.place

    @property
    def where(self) -> str:
        """The `db` setting as log lines and messages show it: never a secret."""
        return self.placed.shown

    @property
    def shared(self) -> bool:
        """Whether the warehouse is a server several daemons may share (PostgreSQL)."""
        return self.placed.shared

    @property
    def work_root(self) -> Path:
        """Where this inbox's daemons keep their work, hidden beside it: a SQLite daemon's
        work directory, the folder of each PostgreSQL node's (by default), and the marks
        of the warehouse the inbox's daemons share (`warehouse.postgresql.mark`)."""
        return self.inbox.with_name(f".{self.inbox.name}.work")

    @property
    def lock_file(self) -> Path:
        """The single-instance lock, where the backend keeps it (`Backend.lock_file`)."""
        return self.placed.lock(self)

    @property
    def db_file(self) -> Path:
        """The database file; `ConfigError` for a warehouse on a server."""
        file = self.placed.file
        if file is None:
            raise ConfigError(f"{self.where} is a server, not a database file",
                              hint="this needs a backend that keeps its database in a file")
        return file


def _path(value: object) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ValueError("expected a non-empty path")
    # abspath, not resolve(): `..` is folded but a symlinked directory keeps its name.
    return Path(os.path.abspath(Path(value).expanduser()))  # noqa: PTH100 (see above)


def _database(value: object) -> str:
    # Read by the backend that accepts it (`daemon.warehouse.registry.place`).
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ValueError("expected a non-empty path")
    return os.fspath(value) if isinstance(value, os.PathLike) else value


# A node's name is a file name twice over: its work directory and `<node>.lock` beside it
# (at most 255 bytes each on ext4, xfs, btrfs and tmpfs), with room to spare.
NODE_NAME_BYTES = 200


def _node(value: object) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    if not text or any(c in text for c in "/\\\0") or text in (".", ".."):
        raise ValueError("expected a name without / or \\")
    if len(text.encode("utf-8", "surrogateescape")) > NODE_NAME_BYTES:
        raise ValueError(f"expected a name of up to {NODE_NAME_BYTES} bytes (UTF-8): "
                         f"{len(text.encode('utf-8', 'surrogateescape'))} given")
    if text.startswith(".") or text.endswith(".lock"):
        # `.`: hidden, as the daemons' own bookkeeping is; `.lock`: node X's lock file
        # is `X.lock`, beside X's work directory.
        raise ValueError("a node name may not begin with '.' nor end with '.lock'")
    return text


def _seconds(value: object) -> float:
    number = float(cast(Any, value)) if not isinstance(value, bool) else math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError("expected a positive number of seconds")
    return number


def _seconds_or_off(value: object) -> float | None:
    """`off` (or empty, or 0) for none, else a positive number of seconds."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text in ("", "off") or (not isinstance(text, bool) and text in (0, "0")):
        return None
    return _seconds(text)


def _table_prefix(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,20}|", value):
        raise ValueError("expected letters, digits and _ (at most 21), or \"\" for none")
    return value


def _unmatched(value: object) -> UnmatchedPolicy:
    for policy in UNMATCHED_POLICIES:
        if value == policy:
            return policy
    raise ValueError(f"expected one of {', '.join(UNMATCHED_POLICIES)}")


def _write_mode(value: object) -> WriteMode:
    if value not in WRITE_MODES:
        raise ValueError(f"expected one of {', '.join(WRITE_MODES)}")
    return value


def _observer(value: object) -> ObserverKind:
    if value not in OBSERVERS:
        raise ValueError(f"expected one of {', '.join(OBSERVERS)}")
    return value


def _http(value: object) -> tuple[str, int] | None:
    """`off` (or empty), `PORT`, `:PORT`, `HOST:PORT` or `[IPv6]:PORT`."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError("expected HOST:PORT, PORT or off")
    text = str(value).strip()
    if text.lower() in ("", "off"):
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.removeprefix("[").removesuffix("]") or DEFAULT_HTTP_HOST
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError("expected HOST:PORT, PORT or off") from None
    if not 0 <= port <= 65535:
        raise ValueError("the port must be between 0 and 65535")
    return host, port


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected a whole number")
    try:
        number = int(value)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if number < 1:
        raise ValueError("expected a whole number of at least 1")
    return number


def _limit(value: object, units: Mapping[str, int]) -> int | None:
    """`off` (or empty, or 0) for no limit, else a whole number of at least 1, optionally
    with one of `units`' suffixes."""
    text = str(value).strip().upper() if isinstance(value, str) else value
    if text in ("", "OFF", 0):
        return None
    if isinstance(text, str) and text[-1:] in units and text[-1:]:
        number, unit = text[:-1].strip(), units[text[-1]]
        try:
            scaled = float(number) * unit
        except ValueError:
            raise ValueError("expected a number, optionally with K, M, G or T") from None
        if not math.isfinite(scaled) or scaled < 1:
            raise ValueError("expected a positive size")
        return int(scaled)
    return _count(text)


def _file_bytes(value: object) -> int | None:
    return _limit(value, _SIZE_UNITS)


def _file_rows(value: object) -> int | None:
    return _limit(value, {})


# `work` has no default of its own: it is derived from the inbox (see `_default_work`).
_PARSERS: dict[str, Callable[[object], object]] = {
    "inbox": _path,
    "processed": _path,
    "failed": _path,
    "db": _database,
    "work": _path,
    "write_mode": _write_mode,
    "table_prefix": _table_prefix,
    "unmatched": _unmatched,
    "settle_seconds": _seconds,
    "rescan_seconds": _seconds,
    "busy_timeout_seconds": _seconds,
    "observer": _observer,
    "poll_seconds": _seconds,
    "http": _http,
    "stall_seconds": _seconds,
    "max_file_bytes": _file_bytes,
    "max_file_rows": _file_rows,
    "max_resumes": _count,
    "node": _node,
    "lease_seconds": _seconds,
    "network_timeout_seconds": _seconds,
    "statement_timeout_seconds": _seconds_or_off,
}
_DEFAULTS: dict[str, object] = {
    "inbox": "inbox",
    "processed": "processed",
    "failed": "failed",
    "db": "etl.db",
    "write_mode": "merge",
    "table_prefix": DEFAULT_TABLE_PREFIX,
    "unmatched": "fail",
    "settle_seconds": 1.0,
    "rescan_seconds": 5.0,
    "busy_timeout_seconds": 5.0,
    "observer": "auto",
    "poll_seconds": 1.0,
    "http": "off",
    # Longer than the slowest file's longest single step (the merge of 5M rows takes
    # about 10 s here), so that only a stuck worker is called stalled.
    "stall_seconds": 300.0,
    "max_file_bytes": "off",
    "max_file_rows": "off",
    # A file the daemon stopped on three times running (a crash, the OOM killer, the
    # watchdog) would most likely stop it again: set it aside so later files load.
    "max_resumes": 3,
    "node": socket.gethostname() or "localhost",
    # A dead node's claims are taken over this long after its last heartbeat; it renews
    # them every third of it, so one slow beat does not lose them.
    "lease_seconds": 30.0,
    # A lost network or a frozen server is noticed within about this; a server that
    # answers, however slowly, is never given up on for it (see `postgresql.liveness`).
    "network_timeout_seconds": NETWORK_TIMEOUT_SECONDS,
    # Off: a load's COPY or merge may rightly take minutes.
    "statement_timeout_seconds": "off",
}
SETTING_NAMES: tuple[str, ...] = tuple(_PARSERS)
# The config file's tables of declared feeds (`config.feeds`): from the file alone.
FEEDS_KEY = "feeds"
# The prefix's variables that are not settings: the config file's, and the crash tests'
# (`daemon.crashpoints`).
OTHER_VARIABLES = (f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}CRASH_AT")


def _unknown_variables(env: Mapping[str, str]) -> dict[str, str | None]:
    """`ETL_*` names in `env` that mean nothing here, each with its likeliest meaning."""
    known = [f"{ENV_PREFIX}{name.upper()}" for name in SETTING_NAMES] + list(OTHER_VARIABLES)
    unknown = sorted(n for n in env if n.startswith(ENV_PREFIX) and n not in known)
    return {name: _meant(name, known) for name in unknown}


def _meant(name: str, known: list[str]) -> str | None:
    """The known name closest to `name` that begins with the same letter after the prefix
    (ETL_DATABASE: ETL_DB; ETL_FOO: none, though ETL_WORK shares as many letters)."""
    first = name[len(ENV_PREFIX):len(ENV_PREFIX) + 1]
    alike = [k for k in known if k[len(ENV_PREFIX):len(ENV_PREFIX) + 1] == first]
    return next(iter(difflib.get_close_matches(name, alike, n=1, cutoff=0.6)), None)


def masked(text: str) -> str:
    """A refused value as its message shows it: a URL's scheme only, as a URL may hold a
    password (a `db` setting's URL is the backend's to show, in `place`)."""
    scheme, sep, _ = text.partition("://")
    return f"{scheme}://***" if sep else text


def source_named(settings: Settings, name: str) -> str:
    """Where setting `name` came from, as a message about its value says it."""
    return _described(settings.sources.get(name, "default"), name)


def _described(origin: Source, name: str) -> str:
    """A source of setting `name` as messages name it: the variable or the key to fix."""
    if origin == "environment":
        return f"environment variable {ENV_PREFIX}{name.upper()}"
    return f"config file key {name!r}" if origin == "config file" else origin


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist", hint="pass an existing file to --config"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"config file {path} cannot be read: {exc}", hint="fix the TOML syntax"
        ) from exc
    unknown = sorted(set(data) - set(_PARSERS) - {FEEDS_KEY})
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown keys: {', '.join(unknown)}",
            hint=f"valid keys are {', '.join(SETTING_NAMES)}, and [feeds.NAME] tables",
        )
    return data


def load_settings(
    overrides: Mapping[str, object | None] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting by precedence; raise `ConfigError` naming the bad source."""
    env = os.environ if environ is None else environ
    explicit = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(explicit) - set(_PARSERS))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}", hint="this is a bug")

    env_file = env.get(f"{ENV_PREFIX}CONFIG")
    chosen_file = config_file or (Path(env_file) if env_file else None)
    # An explicitly named file must exist; the shipped default is optional.
    if chosen_file is None and DEFAULT_CONFIG_FILE.exists():
        chosen_file = DEFAULT_CONFIG_FILE
    file_values = _read_toml(chosen_file) if chosen_file else {}
    # The file shipped beside this module holds the defaults, written out: a value from it
    # is a default (a command may then take the daemon's recorded folders instead).
    file_kind: Source = "default" if chosen_file == DEFAULT_CONFIG_FILE else "config file"

    resolved: dict[str, object] = {}
    sources: dict[str, Source] = {}
    for name, parse in _PARSERS.items():
        env_name = f"{ENV_PREFIX}{name.upper()}"
        kind: Source
        for kind, source, values in (
            ("flag", _described("flag", name), explicit),
            ("environment", _described("environment", name), env),
            # Named as the file's key even where it counts as a default (the shipped file).
            (file_kind, _described("config file", name), file_values),
            ("default", _described("default", name), _DEFAULTS),
        ):
            key = env_name if values is env else name
            if key in values:
                try:
                    resolved[name] = parse(values[key])
                except (TypeError, ValueError) as exc:
                    shown = values[key]
                    raise ConfigError(
                        f"invalid {name} from {source}: "
                        f"{masked(shown) if isinstance(shown, str) else shown!r}: {exc}",
                        hint=f"correct the {source}",
                    ) from None
                sources[name] = kind
                break
    inbox = cast(Path, resolved["inbox"])
    if inbox == inbox.parent:
        raise ConfigError("the inbox cannot be the filesystem root",
                          hint="give the inbox a directory of its own")
    # Beside the inbox, so the claim is a rename within one filesystem, and hidden, so a
    # human listing the parent sees the inbox and not our bookkeeping (`work_root`); a
    # shared warehouse's backend puts each node in a folder of its own there (`place`).
    resolved.setdefault("work", inbox.with_name(f".{inbox.name}.work"))
    sources.setdefault("work", "default")
    resolved["config_file"] = chosen_file.absolute() if chosen_file else None
    resolved["sources"] = sources
    resolved["unknown_variables"] = _unknown_variables(env)
    declared = file_values.get(FEEDS_KEY)
    if declared is not None and not isinstance(declared, dict):
        raise ConfigError(f"config file {chosen_file} has feeds = {declared!r}",
                          hint="declare each feed as a table: [feeds.orders]")
    resolved["feeds"] = read_feeds(
        declared, table_prefix=cast(str, resolved["table_prefix"]),
        unmatched=cast(UnmatchedPolicy, resolved["unmatched"]),
        where=f"config file {chosen_file}")
    settings = Settings(**cast(dict[str, Any], resolved))
    check_folders(settings)
    return settings


def check_folders(settings: Settings) -> None:
    """`ConfigError` if two of inbox, work, processed and failed are one directory."""
    dirs = {"inbox": settings.inbox, "work": settings.work,
            "processed": settings.processed, "failed": settings.failed}
    seen: dict[Path, str] = {}
    for name, path in dirs.items():
        # resolve() here only: two spellings of one directory, symlinks included, clash.
        real = path.resolve()
        if real in seen:
            raise ConfigError(
                f"{name} and {seen[real]} are the same directory ({real})",
                hint="give each of inbox, work, processed and failed its own directory",
            )
        seen[real] = name
