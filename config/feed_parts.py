"""A declared feed's parts: its columns, its checks and its totals, read from TOML.

Owns what each column may say (its kind, null, a decimal's precision and scale, a
default), which rule fits which kind, and how a rule's bound is written for its column;
every problem goes into one `Problems` list, so that `config.feeds` reports them all at
once, each where it is and with what to write instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.contract import (
    COLUMN_KINDS,
    Check,
    CheckKind,
    Column,
    ColumnKind,
    Scalar,
    Totals,
)

COLUMN_KEYS = ("kind", "nullable", "precision", "scale", "default")
# The fact table's own columns, which the daemon writes beside a feed's.
OWN_COLUMNS = frozenset({"loaded_at", "load_id"})
MAX_PRECISION = 38  # Arrow's decimal128, and far beyond what money needs
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


class Problems:
    """Every problem of a declaration: where (`feeds.orders.key`), what, what to write."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str, str]] = []

    def add(self, where: str, what: str, instead: str) -> None:
        self.found.append((where, what, instead))

    def __len__(self) -> int:
        return len(self.found)

    def text(self) -> str:
        return "\n".join(f"  {where}: {what}; {instead}" for where, what, instead in self.found)


def listed(items: tuple[str, ...] | list[str]) -> str:
    return ", ".join(items)


def read_columns(at: str, value: object, problems: Problems) -> tuple[Column, ...] | None:
    """The `[feeds.NAME.columns]` table: each column's name and kind (`qty = "integer"`)
    or table (`price = { kind = "decimal", precision = 12, scale = 2 }`). A column with a
    problem is left out (after saying why), so the rest can still be checked; None
    without any column."""
    if not isinstance(value, Mapping) or not value:
        problems.add(f"{at}.columns", "is missing" if value is None else "is not a table "
                     "of columns", f"declare each column and its kind under [{at}.columns]: "
                     "order_id = \"integer\"")
        return None
    columns, seen = [], set()
    for name, spec in value.items():
        where = f"{at}.columns.{name}"
        if name.lower() in seen:
            problems.add(where, "is declared twice (column names are compared in any "
                         "case, as SQLite does)", "declare each column once")
            continue
        seen.add(name.lower())
        if not name or name.lower() in OWN_COLUMNS or len(name.encode()) > 63:
            problems.add(where, f"{name!r} can not name a column (empty, longer than 63 "
                         "bytes, or one the daemon writes itself: loaded_at, load_id)",
                         "rename the column")
            continue
        column = _column(where, name, spec, problems)
        if column is not None:
            columns.append(column)
    return tuple(columns)


def _column(where: str, name: str, spec: object, problems: Problems) -> Column | None:
    table = {"kind": spec} if isinstance(spec, str) else spec
    if not isinstance(table, Mapping):
        problems.add(where, f"is {spec!r}", f"write {name} = \"integer\" (a kind), or a "
                     f"table: {name} = {{ kind = \"string\", nullable = true }}")
        return None
    for key in table:
        if key not in COLUMN_KEYS:
            problems.add(f"{where}.{key}", "is not a key of a column",
                         f"a column's keys are {listed(COLUMN_KEYS)}")
    kind = table.get("kind")
    if kind not in COLUMN_KINDS:
        problems.add(where, "has no kind" if kind is None else f"has the kind {kind!r}",
                     f"write one of {listed(COLUMN_KINDS)}")
        return None
    nullable = table.get("nullable", False)
    if not isinstance(nullable, bool):
        problems.add(f"{where}.nullable", f"is {nullable!r}", "write true or false")
        nullable = False
    precision, scale = table.get("precision"), table.get("scale")
    if kind == "decimal":
        if not isinstance(precision, int) or isinstance(precision, bool) \
                or not 1 <= precision <= MAX_PRECISION:
            problems.add(f"{where}.precision", "is missing" if precision is None else
                         f"is {precision!r}", f"a decimal needs its precision, the digits "
                         f"it holds in all (1 to {MAX_PRECISION}): "
                         f"{name} = {{ kind = \"decimal\", precision = 12, scale = 2 }}")
            return None
        scale = 0 if scale is None else scale
        if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= precision:
            problems.add(f"{where}.scale", f"is {scale!r}", f"write the digits after the "
                         f"point, from 0 to the precision ({precision})")
            return None
    elif precision is not None or scale is not None:
        problems.add(where, f"is a {kind} column with a precision or scale",
                     "only a decimal column has them: drop them, or write kind = \"decimal\"")
    column = Column(name, kind, nullable, precision if kind == "decimal" else None,
                    scale if kind == "decimal" else None)
    if "default" in table:
        default = _scalar(f"{where}.default", table["default"], column, problems)
        if default is None:
            return None
        column = Column(name, kind, nullable, column.precision, column.scale, default)
    return column


def _scalar(where: str, value: object, column: Column, problems: Problems) -> Scalar | None:
    """`value` as a value of `column`'s kind (a date or a timestamp as ISO text, a decimal
    as its exact text), or None after saying why it is not one."""
    kind = column.kind
    try:
        if isinstance(value, bool) != (kind == "boolean"):
            raise ValueError
        if kind == "boolean" or (kind == "string" and isinstance(value, str)):
            return value  # type: ignore[return-value]
        if kind == "integer" and isinstance(value, int):
            return value
        if kind == "float" and isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        if kind == "decimal" and isinstance(value, int | float | str):
            exact = Decimal(str(value))
            digits = exact.as_tuple()
            scale = column.scale or 0
            if not exact.is_finite() or (isinstance(digits.exponent, int) \
                    and -digits.exponent > scale) \
                    or exact.adjusted() + 1 > (column.precision or 0) - scale:
                raise ValueError
            return str(exact.quantize(Decimal(1).scaleb(-scale)))
        if kind == "date" and isinstance(value, date | str) and not isinstance(value, datetime):
            return date.fromisoformat(str(value)).isoformat()
        if kind == "timestamp" and isinstance(value, datetime | str):
            return datetime.fromisoformat(str(value)).isoformat()
    except (ValueError, InvalidOperation):
        pass
    shown = _described(column)
    article = "an" if shown[0] in "aeiou" else "a"
    problems.add(where, f"{value!r} is not {article} {shown} value",
                 f"write {_example(column)}")
    return None


def _described(column: Column) -> str:
    return (f"decimal({column.precision}, {column.scale})" if column.kind == "decimal"
            else column.kind)


def _example(column: Column) -> str:
    return {"string": '"text"', "integer": "0", "float": "0.0", "boolean": "true or false",
            "date": '"2026-01-31" (ISO)', "timestamp": '"2026-01-31T12:00:00+00:00" (ISO)',
            "decimal": "a number with at most the declared digits, such as \"12.50\""
            }[column.kind]


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
                         f"write the bound: value = {_example(column)}")
            return None
        bound = _scalar(f"{where}.value", value, column, problems)
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
        allowed = [_scalar(f"{where}.values", v, column, problems) for v in values]
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


def read_totals(at: str, value: object, columns: tuple[Column, ...],
                problems: Problems) -> Totals:
    """`[feeds.NAME.totals]`: what `report` and `show` total; by default the sum of each
    float and decimal column."""
    if value is None:
        return Totals(sums=tuple((c.name, c.name) for c in columns
                                 if c.kind in ("float", "decimal")))
    if not isinstance(value, Mapping):
        problems.add(f"{at}.totals", "is not a table", "write sum = { label = \"column\" }")
        return Totals()
    names = {c.name: c for c in columns}
    figures: dict[str, tuple[tuple[str, str], ...]] = {}
    for part, kinds in (("sum", ("integer", "float", "decimal")), ("distinct", None)):
        table = value.get(part, {})
        if not isinstance(table, Mapping):
            problems.add(f"{at}.totals.{part}", "is not a table",
                         f"write {part} = {{ label = \"column\" }}")
            table = {}
        for label, column in table.items():
            if column not in names or (kinds and names[column].kind not in kinds):
                problems.add(f"{at}.totals.{part}.{label}", f"{column!r} is not a "
                             + ("numeric " if kinds else "") + "column of the feed",
                             "name one of "
                             + listed(tuple(n for n, c in names.items()
                                            if not kinds or c.kind in kinds)))
        figures[part] = tuple((str(k), str(v)) for k, v in table.items())
    group_by = value.get("group_by")
    if group_by is not None and group_by not in names:
        problems.add(f"{at}.totals.group_by", f"{group_by!r} is not a column of the feed",
                     f"name one of {listed(tuple(names))}")
        group_by = None
    for key in value:
        if key not in ("sum", "distinct", "group_by"):
            problems.add(f"{at}.totals.{key}", "is not a key of totals",
                         "a feed's totals take sum, distinct and group_by")
    return Totals(sums=figures["sum"], distinct=figures["distinct"],
                  group_by=None if group_by is None else str(group_by))
