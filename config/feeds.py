"""Declared feeds: the `[feeds.NAME]` tables of the config file, read into `Contract`s.

Owns the declaration's syntax and its validation: every problem is found before the
first is reported, each saying where it is (`feeds.orders.key`) and what to write
instead, so that an operator fixes a config in one pass. The columns and totals are read
by `config.feed_parts`, the checks by `config.feed_checks`; this module reads a feed's
own keys and the built-in feed, and `config.feed_clashes` sees the feeds side by side
(two feeds whose patterns match one name, two feeds writing one table).
A config without `[feeds]` gets the built-in transactions feed (`contract.TRANSACTIONS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from difflib import get_close_matches
from typing import TypeVar

from filedrop_etl.config import feed_checks, feed_parts
from filedrop_etl.config.contract import (
    DEFAULT_TABLE_PREFIX,
    LEDGER_TABLE_NAME,
    TRANSACTIONS,
    UNDECLARED_POLICIES,
    WRITE_MODES,
    Column,
    Contract,
)
from filedrop_etl.config.errors import ConfigError
from filedrop_etl.config.feed_clashes import Declared, side_by_side
from filedrop_etl.config.feed_parts import Problems, listed
from filedrop_etl.config.file_names import (
    DATE_DIRECTIVES,
    Feeds,
    UnmatchedPolicy,
    name_pattern,
)

FEED_KEYS = ("pattern", "date_format", "table", "key", "date_column", "write_mode",
             "undeclared_columns", "columns", "checks", "totals", "format", "expect",
             "retention")
# What the built-in feed's table may change: how it loads, never its shape.
BUILTIN_KEYS = ("write_mode", "undeclared_columns")
# Reserved for per-feed capabilities of later releases: named now, refused until built.
LATER_KEYS = ("expect", "retention")
FORMATS = ("parquet",)
_FEED_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
# The daemon's own tables, which no feed may write.
OWN_TABLES = frozenset({LEDGER_TABLE_NAME, "retries", "daemons", "claims", "drops",
                        "filedrop_schema"})
# Bytes PostgreSQL keeps of an identifier; a longer one would be cut silently.
MAX_IDENTIFIER = 63


def read_feeds(declared: Mapping[str, object] | None, *,
               table_prefix: str = DEFAULT_TABLE_PREFIX,
               unmatched: UnmatchedPolicy = "fail", where: str = "the config file") -> Feeds:
    """The feeds a config declares (None or empty: no `[feeds]`, the built-in one);
    `ConfigError` listing every problem of the declaration, `where` naming the file."""
    if not declared:
        return Feeds((TRANSACTIONS,), unmatched)
    problems = Problems()
    feeds: list[Contract] = []
    # What each feed says of its names and table, even one with problems elsewhere.
    seen: list[Declared] = []
    for name, table in declared.items():
        at = f"feeds.{name}"
        if not _FEED_NAME.fullmatch(name):
            problems.add(at, f"{name!r} is not a feed name",
                         "name a feed in small letters, digits and _, starting with a "
                         "letter, at most 40 characters ([feeds.orders])")
            continue
        if not isinstance(table, Mapping):
            problems.add(at, "is not a table", f"write [feeds.{name}] and its keys below it")
            continue
        feed = _read_feed(name, table, table_prefix, seen, problems)
        if feed is not None:
            feeds.append(feed)
    side_by_side(seen, problems)
    if problems:
        raise ConfigError(f"{where} declares feeds that can not be loaded "
                          f"({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n"
                          + problems.text(),
                          hint="fix each line above, then start again; config/"
                          "feeds.example.toml is a complete declaration to copy",
                          problems=problems.as_data())
    return Feeds(tuple(feeds), unmatched)


def _unknown_keys(at: str, table: Mapping[str, object], known: tuple[str, ...],
                  problems: Problems) -> None:
    for key in table:
        if key not in known:
            meant = get_close_matches(key, known, n=1)
            problems.add(f"{at}.{key}", "is not a key of a feed",
                         f"did you mean {meant[0]!r}?" if meant else
                         f"a feed's keys are {listed(known)}")


def _read_feed(name: str, table: Mapping[str, object], prefix: str,
               seen: list[Declared], problems: Problems) -> Contract | None:
    at = f"feeds.{name}"
    if name == TRANSACTIONS.name and "columns" not in table:
        seen.append(Declared(name, TRANSACTIONS.file_name_template,
                              TRANSACTIONS.date_format, TRANSACTIONS.fact_table, True))
        return _builtin(table, problems)
    _unknown_keys(at, table, FEED_KEYS, problems)
    for later in LATER_KEYS:
        if later in table:
            problems.add(f"{at}.{later}", "is reserved for a later release and does "
                         "nothing yet", f"remove {later} from [feeds.{name}]")
    if table.get("format", "parquet") not in FORMATS:
        problems.add(f"{at}.format", f"{table['format']!r} is not a format this release "
                     "reads", "write format = \"parquet\", or leave it out")
    before = len(problems)
    columns = feed_parts.read_columns(at, table.get("columns"), problems)
    spec = table.get("columns")
    names = tuple(str(n) for n in spec) if isinstance(spec, Mapping) else ()
    key = _key(at, table.get("key"), columns, names, problems)
    date_column = _date_column(at, table.get("date_column"), columns, names, problems)
    template, date_format = _pattern(at, table, problems)
    write_mode = _choice(at, table, "write_mode", WRITE_MODES, problems)
    undeclared = _choice(at, table, "undeclared_columns", UNDECLARED_POLICIES, problems)
    if write_mode == "replace" and date_column is None and "date_column" not in table:
        problems.add(f"{at}.write_mode", "is replace, which needs the feed's date column "
                     "(a file replaces the rows of its date)",
                     "name the date column (date_column = \"...\") or write "
                     "write_mode = \"merge\"")
    fact_table = _table(at, table.get("table", prefix + name), problems)
    seen.append(Declared(name, template, date_format, fact_table, "date_column" in table))
    checks = feed_checks.read_checks(at, table.get("checks"), columns or (), names, key or (),
                                    date_column, problems)
    if len(problems) > before or columns is None or key is None or template is None \
            or fact_table is None:
        return None
    totals = feed_parts.read_totals(at, table.get("totals"), columns, problems)
    return Contract(
        name=name, columns=columns, key=key, date_column=date_column, checks=checks,
        fact_table=fact_table, staging_table=f"staging_{name}",
        file_name_pattern=name_pattern(template, date_format),
        file_name_template=template, date_format=date_format,
        write_mode=write_mode, undeclared_columns=undeclared or "ignore", totals=totals,
        reserved=tuple((k, str(table[k])) for k in ("format",) if k in table))


def _builtin(table: Mapping[str, object], problems: Problems) -> Contract:
    at = f"feeds.{TRANSACTIONS.name}"
    for key in table:
        if key not in BUILTIN_KEYS:
            problems.add(f"{at}.{key}", "can not be changed on the built-in transactions "
                         "feed, whose tables predate declared feeds",
                         f"keep to {listed(BUILTIN_KEYS)} here, or declare a feed of "
                         "another name with its own columns")
    write_mode = _choice(at, table, "write_mode", WRITE_MODES, problems)
    undeclared = _choice(at, table, "undeclared_columns", UNDECLARED_POLICIES, problems)
    return replace(TRANSACTIONS, write_mode=write_mode,
                   undeclared_columns=undeclared or TRANSACTIONS.undeclared_columns)


_T = TypeVar("_T", bound=str)


def _choice(at: str, table: Mapping[str, object], key: str,
            choices: tuple[_T, ...], problems: Problems) -> _T | None:
    value = table.get(key)
    if value is None:
        return None
    for choice in choices:
        if value == choice:
            return choice
    problems.add(f"{at}.{key}", f"is {value!r}", f"write one of {listed(choices)}")
    return None


def _key(at: str, value: object, columns: tuple[Column, ...] | None,
         names: tuple[str, ...], problems: Problems) -> tuple[str, ...] | None:
    given = [value] if isinstance(value, str) else value
    if not isinstance(given, list) or not given or not all(isinstance(n, str) for n in given):
        problems.add(f"{at}.key", "is missing" if value is None else f"is {value!r}",
                     "name the column (or columns) that identify a row: key = \"order_id\" "
                     "or key = [\"order_date\", \"order_id\"]")
        return None
    key = tuple(str(n) for n in given)
    if len(set(key)) < len(key):
        problems.add(f"{at}.key", f"names a column twice: {list(key)}",
                     "name each of the key's columns once")
        return None
    declared = {c.name: c for c in columns or ()}
    for name in key:
        if name not in names:
            if names:
                problems.add(f"{at}.key", f"{name!r} is not a column of the feed",
                             _one_of_columns(name, names))
        elif name in declared and declared[name].nullable:
            problems.add(f"{at}.columns.{name}", "is in the key, and a key column may not "
                         "be null", f"drop nullable from {name}, or leave it out of the key")
    return key if all(n in declared for n in key) else None


def _one_of_columns(name: str, names: tuple[str, ...]) -> str:
    meant = get_close_matches(name, names, n=1)
    return (f"did you mean {meant[0]!r}?" if meant else
            f"the feed's columns are {listed(names)}")


def _date_column(at: str, value: object, columns: tuple[Column, ...] | None,
                 names: tuple[str, ...], problems: Problems) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(f"{at}.date_column", f"is {value!r}", "name one column of kind date")
        return None
    kinds = {c.name: c.kind for c in columns or ()}
    if value not in names:
        if names:
            problems.add(f"{at}.date_column", f"{value!r} is not a column of the feed",
                         _one_of_columns(value, names))
        return None
    if value not in kinds:
        return None  # a column with a problem of its own, said already
    if kinds[value] != "date":
        problems.add(f"{at}.date_column", f"{value!r} is a {kinds[value]} column",
                     f"declare {value} = \"date\", or name a column of kind date")
        return None
    return value


def _pattern(at: str, table: Mapping[str, object],
             problems: Problems) -> tuple[str | None, str]:
    template, date_format = table.get("pattern"), table.get("date_format", "%Y-%m-%d")
    if not isinstance(date_format, str):
        problems.add(f"{at}.date_format", f"is {date_format!r}",
                     "write the date's format as text, such as \"%Y%m%d\"")
        date_format = "%Y-%m-%d"
    else:
        directives = re.findall(r"%.", date_format)
        strange = [d for d in directives if d not in DATE_DIRECTIVES]
        if strange or not (({"%Y", "%y"} & set(directives))
                           and ({"%m", "%d"} <= set(directives) or "%j" in directives)):
            problems.add(f"{at}.date_format", f"{date_format!r} "
                         + (f"uses {listed(strange)}, which a file name's date may not"
                            if strange else "does not name a whole date"),
                         "use %Y (or %y), %m and %d (or %j) with literal text between, "
                         "such as \"%Y%m%d\"")
            date_format = "%Y-%m-%d"
    if not isinstance(template, str):
        problems.add(f"{at}.pattern", "is missing" if template is None else
                     f"is {template!r}", "write the file name with {date} where its "
                     "date is: pattern = \"orders_{date}.parquet\"")
        return None, date_format
    why = None
    if template.count("{date}") != 1:
        why = "holds {date} " + ("nowhere" if "{date}" not in template else "more than once")
    elif "/" in template or "\0" in template:
        why = "names a folder; a pattern is a file name in the inbox"
    elif template.startswith(".") or template.endswith((".tmp", ".part")):
        why = "names files the daemon ignores (hidden, or still being written)"
    elif "~" in template:
        why = "holds ~, which the daemon keeps for re-drops (name~1.parquet)"
    if why:
        problems.add(f"{at}.pattern", f"{template!r} {why}",
                     "write the file name with {date} once where its date is: "
                     "pattern = \"orders_{date}.parquet\"")
        return None, date_format
    return template, date_format


def _table(at: str, value: object, problems: Problems) -> str | None:
    if not isinstance(value, str) or not value:
        problems.add(f"{at}.table", f"is {value!r}", "name the table: table = \"fact_orders\"")
        return None
    why = None
    if value.lower() in OWN_TABLES or value.lower().startswith("staging_"):
        why = "is the daemon's own table's name"
    elif len(value.encode()) > MAX_IDENTIFIER:
        why = f"is longer than {MAX_IDENTIFIER} bytes, which PostgreSQL would cut"
    elif value.startswith(("sqlite_", "pg_")):
        why = "is reserved by the database"
    if why:
        problems.add(f"{at}.table", f"{value!r} {why}", "name another table")
        return None
    return value
