"""`load_settings`: precedence, the config file, validation with named sources, path layout.

Every call passes `environ={...}` (and a `config_file` where the shipped default would
otherwise be read), so nothing here depends on the real process environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from filedrop_etl.config import ConfigError, Settings
from filedrop_etl.config.setting_values import SETTING_NAMES
from filedrop_etl.daemon.warehouse.postgresql import url_of
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl
from tests.backends import load_settings
from tests.conftest import DaemonProcess

Start = Callable[..., DaemonProcess]


def write_toml(path: Path, text: str) -> Path:
    """Write a TOML config file (creating its directory) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def empty_toml(tmp_path: Path) -> Path:
    """A config file that sets nothing, so every setting falls through to its default."""
    return write_toml(tmp_path / "conf" / "empty.toml", "")


@pytest.fixture
def layered_toml(tmp_path: Path) -> Path:
    """A config file setting some values, to be shadowed by the environment and flags."""
    return write_toml(
        tmp_path / "conf" / "etl.toml",
        'write_mode = "replace"\n'
        "settle_seconds = 2.5\n"
        "rescan_seconds = 7.0\n"
        f'inbox = "{tmp_path / "file-inbox"}"\n',
    )


# --- precedence -------------------------------------------------------------------------


def test_defaults_apply_when_no_source_sets_a_value(empty_toml: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With an empty file, no env and no flags, the documented defaults are used."""
    monkeypatch.chdir(tmp_path)
    s = load_settings(config_file=empty_toml, environ={})
    assert s.write_mode == "merge"
    assert s.settle_seconds == 1.0
    assert s.rescan_seconds == 5.0
    assert s.busy_timeout_seconds == 5.0
    assert (s.observer, s.poll_seconds, s.http, s.stall_seconds) == ("auto", 1.0, None, 300.0)
    assert s.inbox == tmp_path / "inbox"
    assert s.processed == tmp_path / "processed"
    assert s.failed == tmp_path / "failed"
    assert s.db_file == tmp_path / "etl.db"
    assert s.config_file == empty_toml


def test_flag_beats_env_beats_file_beats_default(layered_toml: Path) -> None:
    """Each layer shadows only the layers below it, setting by setting."""
    env = {"ETL_SETTLE_SECONDS": "3.5", "ETL_WRITE_MODE": "merge"}
    s = load_settings({"settle_seconds": 4.5}, config_file=layered_toml, environ=env)
    assert s.settle_seconds == 4.5          # flag over env and file
    assert s.write_mode == "merge"          # env over file ("replace")
    assert s.rescan_seconds == 7.0          # file over default (5.0)
    assert s.busy_timeout_seconds == 5.0    # default, nobody set it


def test_each_setting_records_the_layer_it_came_from(layered_toml: Path) -> None:
    """So that a message about a value can name its source (`status` with no database)."""
    env = {"ETL_SETTLE_SECONDS": "3.5", "ETL_WRITE_MODE": "merge"}
    s = load_settings({"rescan_seconds": 4.5}, config_file=layered_toml, environ=env)
    assert {name: s.sources[name] for name in ("rescan_seconds", "settle_seconds", "inbox",
                                               "busy_timeout_seconds", "work")} == {
        "rescan_seconds": "flag", "settle_seconds": "environment", "inbox": "config file",
        "busy_timeout_seconds": "default", "work": "default"}
    assert set(s.sources) == set(SETTING_NAMES)


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (4.5, "3.5", 4.5),    # flag wins
        (None, "3.5", 3.5),   # a None flag means "not given": env wins
        (None, None, 2.5),    # then the file
    ],
)
def test_settle_seconds_layer_by_layer(layered_toml: Path, flag: float | None,
                                       env: str | None, expected: float) -> None:
    """Removing the top layer exposes the next one down."""
    environ = {"ETL_SETTLE_SECONDS": env} if env is not None else {}
    s = load_settings({"settle_seconds": flag}, config_file=layered_toml, environ=environ)
    assert s.settle_seconds == expected


def test_env_path_beats_file_path_and_flag_beats_env(layered_toml: Path, tmp_path: Path) -> None:
    """Path settings follow the same precedence as scalars."""
    env = {"ETL_INBOX": str(tmp_path / "env-inbox")}
    assert load_settings(config_file=layered_toml, environ={}).inbox == tmp_path / "file-inbox"
    assert load_settings(config_file=layered_toml, environ=env).inbox == tmp_path / "env-inbox"
    flagged = load_settings({"inbox": tmp_path / "flag-inbox"}, config_file=layered_toml,
                            environ=env)
    assert flagged.inbox == tmp_path / "flag-inbox"


def test_unrelated_env_vars_are_ignored(empty_toml: Path) -> None:
    """Only `ETL_<NAME>` counts: a bare `SETTLE_SECONDS` or a lowercase name does not
    (`ETL_SETTLE`, like a setting's variable, is refused: `test_paths`)."""
    env = {"SETTLE_SECONDS": "9", "etl_settle_seconds": "9", "ETL_FOO": "9"}
    assert load_settings(config_file=empty_toml, environ=env).settle_seconds == 1.0


# --- choosing and reading the config file ---------------------------------------------------


def test_etl_config_env_selects_the_file(layered_toml: Path) -> None:
    """Without `config_file=`, `ETL_CONFIG` names the file that is read."""
    s = load_settings(environ={"ETL_CONFIG": str(layered_toml)})
    assert s.config_file == layered_toml
    assert s.settle_seconds == 2.5
    assert s.write_mode == "replace"


def test_explicit_config_file_beats_etl_config(layered_toml: Path, empty_toml: Path) -> None:
    """`--config` (the argument) wins over `ETL_CONFIG`."""
    s = load_settings(config_file=empty_toml, environ={"ETL_CONFIG": str(layered_toml)})
    assert s.config_file == empty_toml
    assert s.settle_seconds == 1.0


def test_relative_etl_config_is_read_from_cwd_and_reported_absolute(
        layered_toml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative `ETL_CONFIG` is found from the working directory; the record is absolute."""
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={"ETL_CONFIG": "conf/etl.toml"})
    assert s.config_file == tmp_path / "conf" / "etl.toml"
    assert s.config_file.is_absolute()
    assert s.settle_seconds == 2.5


@pytest.mark.parametrize("via", ["argument", "ETL_CONFIG"])
def test_explicitly_named_missing_file_is_an_error(tmp_path: Path, via: str) -> None:
    """A named config file must exist, whether named by argument or by `ETL_CONFIG`."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        if via == "argument":
            load_settings(config_file=missing, environ={})
        else:
            load_settings(environ={"ETL_CONFIG": str(missing)})
    assert str(missing) in info.value.message
    assert info.value.hint


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    """A syntax error in the file becomes a ConfigError naming the file."""
    bad = write_toml(tmp_path / "bad.toml", "settle_seconds = = 1\n")
    with pytest.raises(ConfigError, match="cannot be read") as info:
        load_settings(config_file=bad, environ={})
    assert str(bad) in info.value.message
    assert info.value.hint


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    """A misspelt key is rejected, and the message names it rather than ignoring it."""
    bad = write_toml(tmp_path / "typo.toml", "settle_second = 2.0\ninbox = 'in'\n")
    with pytest.raises(ConfigError, match="settle_second") as info:
        load_settings(config_file=bad, environ={})
    assert "unknown keys" in info.value.message
    assert "settle_seconds" in info.value.hint  # the hint lists the valid keys


def test_unknown_override_name_is_rejected(empty_toml: Path) -> None:
    """A flag name that is not a setting is a programming error, reported as such."""
    with pytest.raises(ConfigError, match="bogus"):
        load_settings({"bogus": 1}, config_file=empty_toml, environ={})


# --- validation: the message names the setting and the source --------------------------------

_FLAG = "flag"
_ENV = "environment variable"
_FILE = "config file key"


def toml_literal(value: object) -> str:
    """`value` as a TOML literal (TOML spells the non-finite floats `nan` and `inf`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    return str(value)


def _load_from(source: str, name: str, value: object, tmp_path: Path) -> Settings:
    """Load with `name = value` supplied only by `source`."""
    empty = write_toml(tmp_path / "source-empty.toml", "")
    if source == _FLAG:
        return load_settings({name: value}, config_file=empty, environ={})
    if source == _ENV:
        return load_settings(config_file=empty, environ={f"ETL_{name.upper()}": str(value)})
    cfg = write_toml(tmp_path / "source.toml", f"{name} = {toml_literal(value)}\n")
    return load_settings(config_file=cfg, environ={})


def _expected_source(source: str, name: str) -> str:
    if source == _FLAG:
        return "from flag"
    if source == _ENV:
        return f"environment variable ETL_{name.upper()}"
    return f"config file key '{name}'"


@pytest.mark.parametrize("source", [_FLAG, _ENV, _FILE])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("write_mode", "upsert"),
        ("settle_seconds", -1),
        ("settle_seconds", float("nan")),
        ("settle_seconds", 0),
        ("rescan_seconds", float("inf")),
        ("busy_timeout_seconds", "soon"),
    ],
    ids=["upsert", "negative", "nan", "zero", "inf", "not-a-number"],
)
def test_bad_value_names_setting_and_source(source: str, name: str, value: object,
                                            tmp_path: Path) -> None:
    """Each bad value is refused with a message naming the setting and where it came from."""
    with pytest.raises(ConfigError) as info:
        _load_from(source, name, value, tmp_path)
    message = info.value.message
    assert f"invalid {name}" in message
    assert _expected_source(source, name) in message
    assert info.value.hint
    assert _expected_source(source, name).removeprefix("from ") in info.value.hint


@pytest.mark.parametrize("source", [_FLAG, _FILE])
def test_bool_is_not_a_number_of_seconds(source: str, tmp_path: Path) -> None:
    """`True` would otherwise pass as 1.0 second; it must be refused."""
    with pytest.raises(ConfigError) as info:
        _load_from(source, "settle_seconds", True, tmp_path)
    assert "invalid settle_seconds" in info.value.message
    assert _expected_source(source, "settle_seconds") in info.value.message


@pytest.mark.parametrize("value", ["-1", "nan", "0", "true", ""])
def test_bad_seconds_from_env_string(value: str, empty_toml: Path) -> None:
    """Environment values arrive as strings and are validated like any other source."""
    with pytest.raises(ConfigError, match="environment variable ETL_SETTLE_SECONDS"):
        load_settings(config_file=empty_toml, environ={"ETL_SETTLE_SECONDS": value})


def test_numeric_strings_are_accepted_as_seconds(empty_toml: Path) -> None:
    """A well-formed env value is parsed to a float."""
    s = load_settings(config_file=empty_toml, environ={"ETL_RESCAN_SECONDS": "0.25"})
    assert s.rescan_seconds == 0.25


def test_non_string_path_in_toml_is_refused(tmp_path: Path) -> None:
    """`inbox = 5` is not a path."""
    cfg = write_toml(tmp_path / "c.toml", "inbox = 5\n")
    with pytest.raises(ConfigError, match="invalid inbox from config file key 'inbox'"):
        load_settings(config_file=cfg, environ={})


def test_bad_flag_is_reported_even_when_env_is_valid(empty_toml: Path) -> None:
    """The highest layer is the one validated and named, not a lower, valid one."""
    with pytest.raises(ConfigError, match="invalid write_mode from flag"):
        load_settings({"write_mode": "upsert"}, config_file=empty_toml,
                      environ={"ETL_WRITE_MODE": "replace"})


# --- paths and layout ---------------------------------------------------------------------


def test_relative_paths_are_made_absolute_at_load_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag's, a variable's and a default's relative path is the working folder's at
    load time (not later); a config file's is the file's folder (`test_paths`)."""
    conf = write_toml(tmp_path / "elsewhere" / "etl.toml", 'processed = "done"\n')
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    s = load_settings({"db": "data/etl.db"}, config_file=conf,
                      environ={"ETL_INBOX": "drop"})
    assert s.inbox == run / "drop"                      # env
    assert s.processed == tmp_path / "elsewhere" / "done"  # file: the file's folder
    assert s.db_file == run / "data" / "etl.db"         # flag
    assert s.failed == run / "failed"                   # default: beside the inbox
    monkeypatch.chdir(tmp_path)
    assert s.inbox == run / "drop"                      # a later chdir does not move it


def test_work_defaults_beside_the_inbox(tmp_path: Path, empty_toml: Path) -> None:
    """`work` is the hidden `.<inbox name>.work` next to the inbox, wherever the inbox is."""
    s = load_settings(config_file=empty_toml, environ={"ETL_INBOX": str(tmp_path / "a" / "drop")})
    assert s.work == tmp_path / "a" / ".drop.work"


def test_explicit_work_is_kept(tmp_path: Path, empty_toml: Path) -> None:
    """A configured `work` is used as given instead of the derived default."""
    s = load_settings({"inbox": tmp_path / "in", "work": tmp_path / "scratch"},
                      config_file=empty_toml, environ={})
    assert s.work == tmp_path / "scratch"


def test_lock_file_sits_beside_the_database(tmp_path: Path, empty_toml: Path) -> None:
    """The lock file is `<db>.lock` in the database's directory."""
    s = load_settings({"db": tmp_path / "d" / "x.sqlite"}, config_file=empty_toml, environ={})
    assert s.lock_file == tmp_path / "d" / "x.sqlite.lock"


@pytest.mark.parametrize(
    ("first", "second"),
    [("inbox", "processed"), ("processed", "failed"), ("inbox", "work"), ("failed", "work")],
)
def test_two_directories_the_same_are_refused(tmp_path: Path, empty_toml: Path,
                                              first: str, second: str) -> None:
    """Any two of inbox, work, processed and failed pointing at one directory is an error."""
    same = tmp_path / "shared"
    with pytest.raises(ConfigError, match="same directory") as info:
        load_settings({first: same, second: same}, config_file=empty_toml, environ={})
    assert first in info.value.message
    assert second in info.value.message
    assert info.value.hint


def test_same_directory_spelt_differently_is_refused(
        tmp_path: Path, empty_toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`./shared/` (relative, trailing slash) and the absolute `shared` are one directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="same directory") as info:
        load_settings({"processed": "./shared/", "failed": str(tmp_path / "shared")},
                      config_file=empty_toml, environ={})
    # Each named with where it came from (issue 24).
    assert info.value.message == "failed and processed are the same directory " \
        f"({tmp_path / 'shared'}: processed from --processed, relative to the working " \
        f"folder {tmp_path}; failed from --failed)"


def test_same_directory_via_dotdot_is_refused(
        tmp_path: Path, empty_toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`x/../inbox` is the inbox: using it as `processed` would send archives back in."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()  # so `x/..` names tmp_path on the filesystem too
    with pytest.raises(ConfigError, match="same directory"):
        load_settings({"inbox": "inbox", "processed": "x/../inbox"},
                      config_file=empty_toml, environ={})


def test_work_default_colliding_with_processed_is_refused(tmp_path: Path,
                                                          empty_toml: Path) -> None:
    """The derived `work` is checked too, not just the configured directories."""
    with pytest.raises(ConfigError, match="same directory"):
        load_settings({"inbox": tmp_path / "in", "processed": tmp_path / ".in.work"},
                      config_file=empty_toml, environ={})


# --- every ConfigError explains what to do next ------------------------------------------


def _cases(tmp_path: Path) -> list[Callable[[], object]]:
    empty = write_toml(tmp_path / "hint-empty.toml", "")
    bad = write_toml(tmp_path / "hint-bad.toml", "[[[")
    unknown = write_toml(tmp_path / "hint-unknown.toml", "colour = 'blue'\n")
    return [
        lambda: load_settings(config_file=tmp_path / "missing.toml", environ={}),
        lambda: load_settings(environ={"ETL_CONFIG": str(tmp_path / "missing.toml")}),
        lambda: load_settings(config_file=bad, environ={}),
        lambda: load_settings(config_file=tmp_path, environ={}),  # a directory, not a file
        lambda: load_settings(config_file=unknown, environ={}),
        lambda: load_settings({"nope": 1}, config_file=empty, environ={}),
        lambda: load_settings({"write_mode": "upsert"}, config_file=empty, environ={}),
        lambda: load_settings(config_file=empty, environ={"ETL_BUSY_TIMEOUT_SECONDS": "x"}),
        lambda: load_settings({"inbox": ""}, config_file=empty, environ={}),
        lambda: load_settings({"inbox": tmp_path / "d", "failed": tmp_path / "d"},
                              config_file=empty, environ={}),
    ]


def test_every_config_error_has_a_hint(tmp_path: Path) -> None:
    """No ConfigError ends at "what": each carries a non-empty hint, also shown by str()."""
    cases = _cases(tmp_path)
    for index, case in enumerate(cases):
        with pytest.raises(ConfigError) as info:
            case()
        assert info.value.hint.strip(), f"case {index} has no hint: {info.value.message}"
        assert info.value.hint in str(info.value)


@pytest.mark.parametrize("where", ["inbox", "work", "processed", "failed"])
def test_a_database_inside_one_of_the_daemons_directories_is_refused(
        tmp_path: Path, empty_toml: Path, where: str) -> None:
    dirs = {name: tmp_path / name for name in ("inbox", "work", "processed", "failed")}
    with pytest.raises(ConfigError, match=f"inside the {where} directory") as info:
        load_settings({**dirs, "db": dirs[where] / "etl.db"}, config_file=empty_toml,
                      environ={})
    assert info.value.hint


def test_two_names_of_one_database_share_one_lock(tmp_path: Path, empty_toml: Path) -> None:
    real = tmp_path / "etl.db"
    real.write_bytes(b"")
    alias = tmp_path / "alias.db"
    alias.symlink_to(real)
    locks = {load_settings({"db": db, "inbox": tmp_path / f"in-{db.name}"},
                           config_file=empty_toml, environ={}).lock_file for db in (real, alias)}
    assert locks == {tmp_path / "etl.db.lock"}


# --- the service settings ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("off", None), ("", None), ("OFF", None),
    ("9100", ("127.0.0.1", 9100)), (":9100", ("127.0.0.1", 9100)),
    ("192.0.2.7:9100", ("192.0.2.7", 9100)), ("[::1]:0", ("::1", 0)),
    ("localhost:80", ("localhost", 80)),
])
def test_http_address_forms(empty_toml: Path, text: str,
                            expected: tuple[str, int] | None) -> None:
    """Off unless set; a bare port listens on loopback only, never on every interface."""
    s = load_settings(config_file=empty_toml, environ={"ETL_HTTP": text})
    assert s.http == expected


@pytest.mark.parametrize("text", ["host:", "host:port", "9100000", "-1", "a:b:c"])
def test_bad_http_address_is_refused_naming_its_source(empty_toml: Path, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=empty_toml, environ={"ETL_HTTP": text})
    assert "environment variable ETL_HTTP" in caught.value.message


def test_observer_and_poll_interval_from_the_config_file(tmp_path: Path) -> None:
    toml = write_toml(tmp_path / "etl.toml", 'observer = "polling"\npoll_seconds = 0.5\n')
    s = load_settings(config_file=toml, environ={})
    assert (s.observer, s.poll_seconds) == ("polling", 0.5)
    with pytest.raises(ConfigError, match="expected one of auto, polling"):
        load_settings({"observer": "fanotify"}, config_file=toml, environ={})


def test_a_servers_timeouts_from_each_source_go_with_its_url(tmp_path: Path) -> None:
    """`network_timeout_seconds` and `statement_timeout_seconds` (off by default) reach
    every session on the server through the URL, which they leave as it was."""
    toml = write_toml(tmp_path / "etl.toml", 'db = "postgresql://etl@db/warehouse"\n'
                      "network_timeout_seconds = 12\n")
    s = load_settings(config_file=toml, environ={"ETL_STATEMENT_TIMEOUT_SECONDS": "600"})
    assert (s.network_timeout_seconds, s.statement_timeout_seconds) == (12.0, 600.0)
    url = url_of(s)
    assert (url.network_timeout_seconds, url.statement_timeout_seconds) == (12.0, 600.0)
    assert url == PostgresUrl("postgresql://etl@db/warehouse")
    for off in ("off", "0", ""):
        flagged = load_settings({"statement_timeout_seconds": off}, config_file=toml,
                                environ={})
        assert flagged.statement_timeout_seconds is None
    defaults = load_settings({"db": "postgresql://etl@db/warehouse"}, environ={})
    assert (defaults.network_timeout_seconds, defaults.statement_timeout_seconds) == (30, None)
    with pytest.raises(ConfigError, match="invalid network_timeout_seconds from flag"):
        load_settings({"network_timeout_seconds": "0"}, config_file=toml, environ={})


def test_unknown_etl_variables_like_no_setting_are_reported(empty_toml: Path) -> None:
    """Guards a found gap: a typo like ETL_DATABASE was ignored without a word, while an
    unknown TOML key is refused. One like no setting's is only warned of: other tools may
    share the prefix (one like a setting's is refused: `test_paths`)."""
    s = load_settings(config_file=empty_toml, environ={
        "ETL_FOO": "1", "ETL_ZZ_TOP": "c", "ETL_DB": "etl.db", "ETL_CRASH_AT": "",
        "HOME": "/root"})
    assert dict(s.unknown_variables) == {"ETL_FOO": None, "ETL_ZZ_TOP": None}


def test_the_daemon_warns_of_an_unknown_etl_variable_at_start(start_daemon: Start) -> None:
    daemon = start_daemon(env={"ETL_FOO": "elsewhere.db"})
    [line] = daemon.matching("environment_variable_unknown")
    assert (line["level"], line["variable"]) == ("warning", "ETL_FOO")
    assert "foreign_variables" in line["hint"]
    assert daemon.proc.poll() is None


@pytest.mark.parametrize("value", [
    "postgresql://etl:hunter2@db:99999/warehouse",  # a bad port
    "postgresql://etl:hunter2@db:5432/",  # no database
    "postgres://etl@db/warehouse?password=hunter2&sslmode=bogus&port=x",
])
def test_a_postgresql_url_is_never_shown_with_its_password(value: str) -> None:
    try:
        settings = load_settings({"db": value}, environ={})
    except ConfigError as exc:
        shown = str(exc)
    else:
        url = url_of(settings)
        shown = f"{settings.where} {settings!r} {url} {url!r} {url.redacted}"
    assert "hunter2" not in shown and "***" in shown
