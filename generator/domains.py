"""What values a feed's column may hold, read from its kind and its checks.

A `Domain` gathers, for one column of a `Contract`, everything the checks say about its
values: bounds (`min`, `max`, as numbers of the column's kind: integer units of the scale
for a decimal, a `date` or an aware `datetime`), `one_of`'s set, `matches`' pattern,
`max_length`, whether it must equal the file's date or start with its `YYYYMMDD-`, and
whether it may be null (a nullable column with no `not_null` check, outside the key). The
bounds of a column that declares none are a small, plausible range. Values are then
written by `generator.values`; this module only reads the declaration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from filedrop_etl.config.contract import Column, Contract, Scalar
from filedrop_etl.generator.patterns import SampleError

# A column without bounds of its own: integers from 1, floats and decimals from 0, this
# wide; dates up to this many days before the file's; timestamps within the file's day.
SPAN = 1000
DATE_SPAN_DAYS = 30
# Decimal units are drawn as int64: a decimal wider than this keeps within it.
MAX_UNITS = 2**62
Bound = int | float | date | datetime


@dataclass(frozen=True)
class Domain:
    column: Column
    low: Bound | None = None
    high: Bound | None = None
    # `one_of`, filtered by the other checks and sorted (so that keys ascend).
    choices: tuple[Scalar, ...] | None = None
    # `matches`' patterns: values are written from the first, and must match them all.
    patterns: tuple[str, ...] = ()
    max_length: int | None = None
    file_date: bool = False
    date_prefix: bool = False
    nulls: bool = False
    # Whether a check sets the upper bound (else the bound is a default, and a key's
    # numbers may run past it).
    capped: bool = False

    @property
    def name(self) -> str:
        return self.column.name

    def size(self) -> int | None:
        """How many distinct values the domain holds; None: more than a key will need."""
        if self.file_date:
            return 1
        if self.choices is not None:
            return len(self.choices)
        kind = self.column.kind
        if kind == "boolean":
            return 2
        if not self.capped or kind in ("timestamp", "string"):
            return None  # microseconds, or text: plenty
        if isinstance(self.low, date) and isinstance(self.high, date):
            return (self.high - self.low).days + 1
        if kind in ("integer", "decimal", "float") and self.high is not None:
            assert isinstance(self.low, int | float) and isinstance(self.high, int | float)
            return max(0, math.floor(self.high - self.low) + 1)
        return None


def _bound(column: Column, value: Scalar | None, upper: bool) -> Bound | None:
    """A `min`/`max` check's value in the column's terms (None: no such check)."""
    if value is None or isinstance(value, bool):
        return None
    match column.kind:
        case "integer":
            number = float(value)
            return math.floor(number) if upper else math.ceil(number)
        case "float":
            return float(value)
        case "decimal":
            units = Decimal(str(value)).scaleb(column.scale or 0)
            return int(units.to_integral_value("ROUND_FLOOR" if upper else "ROUND_CEILING"))
        case "date":
            return date.fromisoformat(str(value))
        case "timestamp":
            moment = datetime.fromisoformat(str(value))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _defaults(column: Column, run_date: date, low: Bound | None,
              high: Bound | None) -> tuple[Bound | None, Bound | None]:
    """Bounds for what the checks leave open."""
    match column.kind:
        case "integer" | "float":
            first: int | float = 1 if column.kind == "integer" else 0.0
            if low is None:
                low = high - SPAN if isinstance(high, int | float) else first
            if high is None:
                assert isinstance(low, int | float)
                high = low + SPAN
        case "decimal":
            widest = min(10 ** (column.precision or 1) - 1, MAX_UNITS)
            one = 10 ** (column.scale or 0)
            low = max(-widest, low) if isinstance(low, int) else (
                max(-widest, high - SPAN * one) if isinstance(high, int) else 0)
            high = min(widest, high) if isinstance(high, int) else min(widest, low + SPAN * one)
        case "date":
            latest = high if isinstance(high, date) else run_date
            if not isinstance(low, date):
                low = min(latest, run_date) - timedelta(DATE_SPAN_DAYS)
            if high is None:
                high = max(run_date, low)
        case "timestamp":
            midnight = datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC)
            if not isinstance(low, datetime):
                low = (high - timedelta(1) if isinstance(high, datetime) and high <= midnight
                       else midnight)
            if high is None:
                high = max(low, midnight + timedelta(days=1, microseconds=-1))
    return low, high


def domain_of(contract: Contract, column: Column, run_date: date) -> Domain:
    """The values `column` of `contract` may hold in the file of `run_date`."""
    checks = [c for c in contract.checks if c.column == column.name and not c.over]
    kinds = {c.kind for c in checks}
    low = high = None
    for check in checks:
        if check.kind == "min":
            low = _bound(column, check.value, upper=False)
        elif check.kind == "max":
            high = _bound(column, check.value, upper=True)
    lengths = [int(c.value) for c in checks
               if c.kind == "max_length" and isinstance(c.value, int | float | str)]
    patterns = [str(c.value) for c in checks if c.kind == "matches"]
    capped = high is not None
    low, high = _defaults(column, run_date, low, high)
    domain = Domain(column, low, high, patterns=tuple(patterns),
                    max_length=min(lengths) if lengths else None,
                    file_date=column.name == contract.date_column or "equals_file_date" in kinds,
                    date_prefix="file_date_prefix" in kinds,
                    nulls=(column.nullable and "not_null" not in kinds
                           and column.name not in contract.key),
                    capped=capped)
    one_of = [c for c in checks if c.kind == "one_of"]
    if one_of:
        allowed = set.intersection(*(set(c.values) for c in one_of))
        choices = tuple(sorted((v for v in allowed if _admits(domain, v)), key=_order))
        if not choices:
            raise SampleError(f"column {column.name}: no value of its one_of check passes "
                              "its other checks", hint="make the checks agree")
        domain = Domain(**{**vars(domain), "choices": choices})
    elif low is not None and high is not None and low > high:  # type: ignore[operator]
        raise SampleError(f"column {column.name}: its min is above its max",
                          hint="correct the min and max checks")
    return domain


def _order(value: Scalar) -> tuple[str, Scalar]:
    return (type(value).__name__, value)


def _admits(domain: Domain, value: Scalar) -> bool:
    """Whether `value` of a `one_of` passes the column's other checks."""
    if isinstance(value, str):
        return ((domain.max_length is None or len(value) <= domain.max_length)
                and all(re.fullmatch(p, value) is not None for p in domain.patterns))
    if isinstance(value, int | float) and domain.column.kind in ("integer", "float"):
        return ((domain.low is None or domain.low <= value)  # type: ignore[operator]
                and (domain.high is None or value <= domain.high))  # type: ignore[operator]
    return True
