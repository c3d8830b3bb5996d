"""Runtime settings: one frozen dataclass and the one function that resolves it.

Precedence, highest first: an explicit argument (a command-line flag), the environment
variable `ETL_<NAME>`, the TOML file (`--config`, `ETL_CONFIG`, else `config/etl.toml`
shipped beside this module), then the defaults (each setting's parser and default are
`config.setting_values`'). This is the only module in the project that reads the
environment. Each value's source is recorded with it (`config.sources`), so that a
message about the value can say where to change it. Relative paths are made absolute
at start-up, so a later `chdir` cannot move the inbox: a config file's against its
folder, the others' against the working folder (`config.paths`, which also names the
rule in messages). An `ETL_` variable that names no setting but most likely meant one
is refused, as an unknown key of the config file is, unless `foreign_variables` lists it.
The `db` setting stays text here: this package knows no backend. The backend that
accepts it reads it (a URL checked), checks its location, and
says what follows from it (`Place`: shared or not, the lock file, how it is shown, and
each node's work directory when shared); `daemon.warehouse.registry.place` fills that in.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from filedrop_etl.config.contract import WRITE_MODES, WriteMode
from filedrop_etl.config.errors import ConfigError
from filedrop_etl.config.feeds import read_feeds
from filedrop_etl.config.file_names import Feeds, UnmatchedPolicy
from filedrop_etl.config.paths import BESIDE_INBOX, anchored, beside_inbox, check_folders
from filedrop_etl.config.setting_values import (
    DEFAULTS,
    NETWORK_TIMEOUT_SECONDS,
    PARSERS,
    SETTING_NAMES,
    ObserverKind,
)
from filedrop_etl.config.sources import (
    ENV_PREFIX,
    Source,
    described,
    masked,
    source_named,
    unknown_variables,
)

# `masked`, `source_named`, `check_folders` and `NETWORK_TIMEOUT_SECONDS` are named here
# for the backends
# (`daemon.warehouse`), which take everything of the settings from this module.
__all__ = ["NETWORK_TIMEOUT_SECONDS", "WRITE_MODES", "ConfigError", "Feeds", "Place",
           "Settings", "WriteMode", "check_folders", "load_settings", "masked", "source_named"]
DEFAULT_CONFIG_FILE = Path(__file__).with_name("etl.toml")


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
    # `--once`: how long a start waits for its database, then gives up; None: for ever.
    once_wait_seconds: float | None
    # PostgreSQL: the schema of the daemon's own tables; None: derived from the fact
    # tables' (`daemon.warehouse.postgresql.books`).
    bookkeeping_schema: str | None
    config_file: Path | None
    # `ETL_` variables another tool sets on purpose: not refused as a setting's typo.
    foreign_variables: tuple[str, ...]
    # A declared feed's table is this prefix and its name unless it names its own.
    table_prefix: str
    # What a file whose name matches no feed does: `fail` (failed/) or `leave` (stays).
    unmatched: UnmatchedPolicy
    # The feeds this daemon loads, each its tables, key, columns and checks as a value.
    # Read once, by `load_settings`; everything that loads is handed one from here.
    feeds: Feeds = field(compare=False)
    # Where each setting came from (a folder beside the inbox counts as "default"),
    # so that a message about a value can name its source; empty if built by hand.
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False)
    # `ETL_*` variables in the environment that name no setting and resemble none (a
    # likely typo of one is refused); warned of, as other tools may use the prefix too.
    unknown_variables: Mapping[str, str | None] = field(default_factory=dict, compare=False)
    # The folder each path setting given as a relative path was taken from: the config
    # file's, or the working folder at start-up (`config.paths.origin` says which).
    bases: Mapping[str, Path] = field(default_factory=dict, compare=False)
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


# The config file's tables of declared feeds (`config.feeds`): from the file alone.
FEEDS_KEY = "feeds"


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
    unknown = sorted(set(data) - set(PARSERS) - {FEEDS_KEY})
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
    unknown = sorted(set(explicit) - set(PARSERS))
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

    # A config file's paths are relative to its folder; the shipped file's are defaults,
    # relative to the working folder as the others are.
    working = Path.cwd()
    # abspath, not resolve(): `..` is folded but a symlinked folder keeps its name.
    config_path = Path(os.path.abspath(chosen_file)) if chosen_file else None  # noqa: PTH100
    file_folder = config_path.parent if file_kind == "config file" and config_path else working
    resolved: dict[str, object] = {}
    sources: dict[str, Source] = {}
    bases: dict[str, Path] = {}
    for name, parse in PARSERS.items():
        env_name = f"{ENV_PREFIX}{name.upper()}"
        kind: Source
        for kind, source, values, folder in (
            ("flag", described("flag", name), explicit, working),
            ("environment", described("environment", name), env, working),
            # Named as the file's key even where it counts as a default (the shipped file).
            (file_kind, described("config file", name), file_values, file_folder),
            ("default", described("default", name), DEFAULTS, working),
        ):
            key = env_name if values is env else name
            if key in values:
                value, relative = anchored(name, values[key], folder)
                if relative:
                    bases[name] = folder
                try:
                    resolved[name] = parse(value)
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
    # Beside the inbox, so that a claim and an archiving are each a rename within one
    # filesystem, and the daemon's folders are where its inbox is, wherever it was
    # started; work hidden, so a human listing the parent sees the inbox and not our
    # bookkeeping (`work_root`); a shared warehouse's backend puts each node in a folder
    # of its own there (`place`).
    for name in BESIDE_INBOX:
        resolved.setdefault(name, beside_inbox(inbox, name))
        sources.setdefault(name, "default")
    resolved["config_file"] = config_path
    resolved["sources"] = sources
    resolved["bases"] = bases
    resolved["unknown_variables"] = unknown_variables(
        env, cast(tuple[str, ...], resolved["foreign_variables"]))
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
