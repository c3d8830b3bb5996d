"""A declared feed's checks, read from TOML: which rule fits which kind, and its bound.

Owns the `[[feeds.NAME.checks]]` list: the rules a declaration may name and the kinds
of column each fits, the rules every feed has without declaring them (not null, unique
over the key), and how a rule's bound is written for its column (a `matches` pattern
must run in RE2, where the checks run it). Problems go into `config.feed_parts`'
`Problems`, so that `config.feeds` reports them all at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.contract import COLUMN_KINDS, Check, CheckKind, Column, ColumnKind
from filedrop_etl.config.feed_parts import Problems, example, listed, scalar

# The rules a declaration may name, and the kinds of column each fits. `unique` is not
# among them: the key is always unique, and is the only unique rule.
RULES: dict[str, tuple[ColumnKind, ...]] = {
    "not_null": COLUMN_KINDS,
    "min": ("integer", "float", "decimal", "date", "timestamp"),
    "max": ("integer", "float", "decimal", "date", "timestamp"),
    "finite": ("float",),
    "one_of": ("string", "integer", "decimal"),
    "matches": ("string",),
    "max_length": ("string",),
    "equals_file_date": ("date",),
    "key_carries_file_date": ("string",),
}
CHECK_KEYS = ("rule", "column", "value", "values")
# The rule as the checks name it: the declaration's words for the key's date prefix.
_KIND_OF_RULE: dict[str, CheckKind] = {"key_carries_file_date": "file_date_prefix"}


def read_checks(at: str, value: object, columns: tuple[Column, ...],
                declared_names: tuple[str, ...], key: tuple[str, ...],
                date_column: str | None, problems: Problems) -> tuple[Check, ...]:
    """Every rule of a feed: the declared `[[feeds.NAME.checks]]`, after the implied ones
    (not null for each column not declared nullable, unique over the key)."""
    implied = [Check("not_null", c.name) for c in columns if not c.nullable]
    implied.append(Check("unique", key[0], over=key if len(key) > 1 else ()) if key
                   else Check("unique", ""))
    declared = []
    if value is not None and not isinstance(value, list):
        problems.add(f"{at}.checks", "is not a list of checks",
                     f"write each check as [[{at}.checks]] with rule and column")
        value = []
    by_name = {c.name: c for c in columns}
    for index, spec in enumerate(value or []):
        check = _check(f"{at}.checks[{index}]", spec, by_name, declared_names, key,
                       date_column, problems)
        if check is not None and check not in implied and check not in declared:
            declared.append(check)
    # The implied rules first, as the built-in feed declares them: a report reads alike.
    return tuple(implied + declared) if key else ()


def _check(where: str, spec: object, columns: Mapping[str, Column],
           declared_names: tuple[str, ...], key: tuple[str, ...], date_column: str | None,
           problems: Problems) -> Check | None:
    if not isinstance(spec, Mapping):
        problems.add(where, "is not a table", "write rule = \"...\" and column = \"...\"")
        return None
    for name in spec:
        if name not in CHECK_KEYS:
            problems.add(f"{where}.{name}", "is not a key of a check",
                         f"a check's keys are {listed(CHECK_KEYS)}")
    rule, name = spec.get("rule"), spec.get("column")
    if rule == "unique":
        problems.add(where, "declares unique, and the key is always unique (the only "
                     "unique rule)", "remove the check; to make a column unique, make it "
                     "the key")
        return None
    if rule not in RULES:
        problems.add(where, "has no rule" if rule is None else f"has the rule {rule!r}",
                     f"write one of {listed(tuple(RULES))}")
        return None
    if rule == "key_carries_file_date" and name is None:
        name = key[0] if key else None
    if name not in declared_names:
        problems.add(f"{where}.column", "is missing" if name is None else
                     f"{name!r} is not a column of the feed",
                     f"name one of the feed's columns: {listed(declared_names)}")
        return None
    if name not in columns:
        return None  # a column with a problem of its own, said already
    column = columns[str(name)]
    if column.kind not in RULES[rule]:
        problems.add(where, f"{rule} does not fit {column.name}, a {column.kind} column",
                     f"{rule} fits columns of kind {listed(RULES[rule])}")
        return None
    if rule == "key_carries_file_date" and (not key or column.name != key[0]):
        problems.add(where, f"key_carries_file_date is on {column.name}, which does not "
                     "lead the key", f"put it on the key's first column ({key[0]})"
                     if key else "declare the key first")
        return None
    if rule == "equals_file_date" and column.name != date_column:
        problems.add(where, f"equals_file_date is on {column.name}, which is not the "
                     "feed's date column", f"write date_column = \"{column.name}\", or put "
                     "the check on the date column")
        return None
    kind = _KIND_OF_RULE.get(str(rule), str(rule))
    return _with_bound(where, kind, spec, column, problems)  # type: ignore[arg-type]


def _with_bound(where: str, kind: CheckKind, spec: Mapping[str, object], column: Column,
                problems: Problems) -> Check | None:
    value, values = spec.get("value"), spec.get("values")
    if kind in ("min", "max"):
        if value is None:
            problems.add(f"{where}.value", "is missing",
                         f"write the bound: value = {example(column)}")
            return None
        bound = scalar(f"{where}.value", value, column, problems)
        return None if bound is None else Check(kind, column.name, bound)
    if kind == "max_length":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.add(f"{where}.value", f"is {value!r}", "write the most characters a "
                         "value may hold: value = 40")
            return None
        return Check(kind, column.name, value)
    if kind == "matches":
        why = _regex_problem(value) if isinstance(value, str) else None
        if why:
            problems.add(f"{where}.value", f"{value!r} is not a regular expression the "
                         f"checks can run: {why}", "write a regular expression in the "
                         "common syntax (no look-arounds or back-references), matched "
                         "against the whole value")
            return None
        if not isinstance(value, str):
            problems.add(f"{where}.value", f"is {value!r}", "write the regular expression a "
                         "whole value must match: value = \"[A-Z]{3}-[0-9]+\"")
            return None
        return Check(kind, column.name, value)
    if kind == "one_of":
        if not isinstance(values, list) or not values:
            problems.add(f"{where}.values", "is missing" if values is None else
                         f"is {values!r}", "list the values allowed: values = [\"a\", \"b\"]")
            return None
        allowed = [scalar(f"{where}.values", v, column, problems) for v in values]
        if any(a is None for a in allowed):
            return None
        return Check(kind, column.name, values=tuple(a for a in allowed if a is not None))
    if value is not None or values is not None:
        problems.add(where, f"{kind} takes no value", "remove value and values")
    return Check(kind, column.name)


def _regex_problem(pattern: str) -> str | None:
    """Why `pattern` can not be a `matches` rule: the checks run it in RE2 (Arrow's
    engine), and the generator reads it as Python does; None where both accept it."""
    try:
        re.compile(pattern)
        # Anchored as the checks anchor it (`daemon.load.checks.fullmatch`).
        pc.match_substring_regex(pa.array([""], pa.string()), pattern=rf"\A(?:{pattern})\z")
    except re.error as exc:
        return str(exc)
    except pa.ArrowInvalid as exc:
        return str(exc).splitlines()[0]
    return None
