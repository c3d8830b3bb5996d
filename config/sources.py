"""Where a setting's value came from, and how a message names that source.

A value comes from a flag, an environment variable `ETL_<NAME>`, the config file or the
defaults (`Source`); a message about a bad value names the one to fix (`source_named`),
shows a refused value without a password (`masked`), and `ETL_*` variables that name no
setting are found with the one each most likely meant (`unknown_variables`), which
refuses those that most likely meant one. This module reads no environment itself:
`config.settings` hands it what it read.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from filedrop_etl.config.errors import ConfigError
from filedrop_etl.config.setting_values import SETTING_NAMES

if TYPE_CHECKING:
    from filedrop_etl.config.settings import Settings

# Where a setting's value came from, highest precedence first; `daemon`: a folder an
# operator's command found recorded by the daemon (`History.daemons`), no source naming one.
Source = Literal["flag", "environment", "config file", "default", "daemon"]
ENV_PREFIX = "ETL_"
# The prefix's variables that are not settings: the config file's, and the crash tests'
# (`daemon.crashpoints`).
OTHER_VARIABLES = (f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}CRASH_AT")


def unknown_variables(env: Mapping[str, str],
                      foreign: tuple[str, ...] = ()) -> dict[str, str | None]:
    """`ETL_*` names in `env` that mean nothing here and are not `foreign`, each resembling
    no setting's variable; `ConfigError` for those that most likely meant one.

    A typo such as ETL_INBX would leave the daemon on the default inbox, made anew, while
    files wait in the real one: refused, as an unknown key of the config file is.
    """
    known = [f"{ENV_PREFIX}{name.upper()}" for name in SETTING_NAMES] + list(OTHER_VARIABLES)
    unknown = sorted(n for n in env if n.startswith(ENV_PREFIX) and n not in known
                     and n not in foreign)
    meanings = {name: _meant(name, known) for name in unknown}
    typos = {name: meant for name, meant in meanings.items() if meant is not None}
    if typos:
        listed = ", ".join(f"{name} (did you mean {meant}?)" for name, meant in typos.items())
        several = len(typos) > 1
        raise ConfigError(
            f"environment variable{'s' if several else ''} {listed} "
            f"{'name' if several else 'names'} no setting",
            hint="rename it to the variable it meant, or unset it; if another tool sets it "
            "on purpose, list it in foreign_variables (in the config file, or "
            f"{ENV_PREFIX}FOREIGN_VARIABLES=\"{' '.join(typos)}\")",
            problems=tuple({"where": f"environment variable {name}",
                            "problem": "names no setting", "instead": meant}
                           for name, meant in typos.items()))
    return meanings


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
    return described(settings.sources.get(name, "default"), name)


def described(origin: Source, name: str) -> str:
    """A source of setting `name` as messages name it: the variable or the key to fix."""
    if origin == "environment":
        return f"environment variable {ENV_PREFIX}{name.upper()}"
    return f"config file key {name!r}" if origin == "config file" else origin

