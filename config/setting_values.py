"""How each setting's value is read, and its default: the parsers and the defaults.

Every setting has a parser here, which takes what a flag, an environment variable or the
TOML file gave and returns the value (or `ValueError` saying what was expected), and,
but for `work`, `processed` and `failed` (beside the inbox), a default. The order of
`PARSERS` is the order settings are named in messages (`SETTING_NAMES`). Resolving
them by precedence is `config.settings`'; this module reads no environment and no file.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

from filedrop_etl.config.contract import DEFAULT_TABLE_PREFIX, WRITE_MODES, WriteMode
from filedrop_etl.config.file_names import UNMATCHED_POLICIES, UnmatchedPolicy

ObserverKind = Literal["auto", "polling"]
OBSERVERS: tuple[ObserverKind, ...] = ("auto", "polling")
DEFAULT_HTTP_HOST = "127.0.0.1"
# How long a silent database server is waited on before its session is checked (and
# given up if it does not answer a second connection either).
NETWORK_TIMEOUT_SECONDS = 30.0


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


# PostgreSQL's longest identifier, in bytes; longer ones it cuts short, silently.
IDENTIFIER_BYTES = 63


def _schema(value: object) -> str | None:
    """A schema's name (letters, digits and _), or "" for the one derived from the fact
    tables' schema (`daemon.warehouse.postgresql.books`)."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*|", value):
        raise ValueError("expected a schema name of letters, digits and _, or \"\" for "
                         "the default")
    if len(value) > IDENTIFIER_BYTES:
        raise ValueError(f"expected at most {IDENTIFIER_BYTES} characters")
    if value.lower().startswith("pg_"):
        raise ValueError("names beginning pg_ are PostgreSQL's own")
    return value or None


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


def _variable_names(value: object) -> tuple[str, ...]:
    """A TOML list of `ETL_` variable names, or text of them separated by commas or
    spaces (an environment variable's)."""
    names = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ValueError("expected a list of ETL_ variable names")
    bad = [n for n in names if not re.fullmatch(r"ETL_[A-Za-z0-9_]+", n)]
    if bad:
        raise ValueError(f"expected ETL_ variable names, not {', '.join(bad)}")
    return tuple(names)


def _file_bytes(value: object) -> int | None:
    return _limit(value, _SIZE_UNITS)


def _file_rows(value: object) -> int | None:
    return _limit(value, {})


# `work`, `processed` and `failed` have no default of their own: each is beside the
# inbox unless set (`config.paths`).
PARSERS: dict[str, Callable[[object], object]] = {
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
    "once_wait_seconds": _seconds_or_off,
    "foreign_variables": _variable_names,
    "bookkeeping_schema": _schema,
}
DEFAULTS: dict[str, object] = {
    "inbox": "inbox",
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
    # A `--once` run (a cron job) waits this long at start for a database out of reach,
    # busy or full, then gives up (exit 75) so that the next run is not stacked behind it:
    # longer than a server's restart, shorter than a cron interval. Off: wait as a daemon.
    "once_wait_seconds": 60.0,
    # `ETL_` variables another tool sets on purpose: neither refused as a likely typo of
    # a setting's variable nor warned of.
    "foreign_variables": (),
    # Derived from the fact tables' schema: `filedrop` beside `public`, `<schema>_filedrop`
    # beside any other, so that two warehouses of one database never share bookkeeping.
    "bookkeeping_schema": "",
}
SETTING_NAMES: tuple[str, ...] = tuple(PARSERS)
