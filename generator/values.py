"""A column's values as an Arrow array: drawn at random, or numbered (a key's).

Given a `Domain` (what the column's kind and checks allow), `drawn` writes `count` values
from a numpy `Generator` and `numbered` writes one value per number, keeping their order
(a larger number, a larger value), which is how keys come out unique and ascending. Both
write the column's Arrow type as the reader yields it: a date as ISO text, a timestamp in
UTC microseconds, a decimal at its declared scale. Strings are chosen from candidates
that pass every check of the column, or `SampleError` says none does.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filedrop_etl.config.contract import key_prefix
from filedrop_etl.generator import patterns
from filedrop_etl.generator.domains import Domain
from filedrop_etl.generator.patterns import SampleError

# How many distinct strings a free text column, or one with a pattern, draws from.
POOL = 100
# The share of a nullable column's values that are null.
NULL_SHARE = 0.1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Values: TypeAlias = "pa.Array[Any]"


def _micros(moment: object) -> int:
    assert isinstance(moment, datetime)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _decimals(units: np.ndarray[Any, np.dtype[np.int64]], kind: pa.DataType) -> Values:
    """Decimal128 values of `units` (integer units of the scale): the 16-byte little-endian
    two's complement Arrow keeps, written without a Python `Decimal` per row."""
    words = np.empty((len(units), 2), dtype="<i8")
    words[:, 0] = units
    words[:, 1] = units >> 63
    return pa.Array.from_buffers(kind, len(units), [None, pa.py_buffer(words.tobytes())])


def _dates(first: object, days: np.ndarray[Any, np.dtype[np.int64]]) -> Values:
    assert isinstance(first, date)
    start = np.datetime64(first.isoformat(), "D")
    return pa.array(np.datetime_as_string(start + days.astype("timedelta64[D]")), pa.string())


def _choices(domain: Domain) -> Values:
    assert domain.choices is not None
    kind = domain.column.arrow_type
    if domain.column.kind == "decimal":
        return pa.array([Decimal(str(v)) for v in domain.choices], kind)
    if domain.column.kind == "timestamp":
        return pa.array([datetime.fromisoformat(str(v)) for v in domain.choices], kind)
    return pa.array(list(domain.choices), kind)


def _passes(domain: Domain, text: str, run_date: date) -> bool:
    return ((domain.max_length is None or len(text) <= domain.max_length)
            and all(re.fullmatch(p, text) is not None for p in domain.patterns)
            and (not domain.date_prefix or text.startswith(key_prefix(run_date.isoformat()))))


def _letters(number: int, width: int) -> str:
    """`number` in base 26 (a..z), `width` letters: short text for a short max_length."""
    out = ""
    for _ in range(width):
        number, digit = divmod(number, 26)
        out = chr(ord("a") + digit) + out
    return out


def candidates(domain: Domain, run_date: date, rng: np.random.Generator) -> list[str]:
    """Distinct strings the column may hold, all passing its checks."""
    if domain.patterns and not domain.date_prefix:
        pool = patterns.pool(domain.name, domain.patterns[0], rng, POOL, domain.max_length)
        found = [t for t in pool if _passes(domain, t, run_date)]
        if not found:
            raise SampleError(f"column {domain.name}: the generator found no string matching "
                              f"all of its patterns ({', '.join(domain.patterns)})",
                              hint="keep one matches check per column")
        return found
    stem = key_prefix(run_date.isoformat()) if domain.date_prefix else f"{domain.name}-"
    found = [t for t in (f"{stem}{n:04d}" for n in range(POOL)) if _passes(domain, t, run_date)]
    if not found and not domain.date_prefix and domain.max_length is not None:
        found = list(dict.fromkeys(_letters(n, domain.max_length) for n in range(POOL)))
    if not found:
        raise SampleError(f"column {domain.name}: the generator writes its values as "
                          f"{stem}0000, which its checks refuse",
                          hint="loosen its max_length or matches check, or use one_of")
    return found


def drawn(domain: Domain, rng: np.random.Generator, count: int, run_date: date,
          pool: list[str] | None = None) -> Values:
    """`count` values of the column at random within its domain, some null if it may be;
    a text column's from `pool` (its `candidates`, drawn once per file)."""
    values = _drawn(domain, rng, count, run_date, pool)
    if domain.nulls:
        mask = pa.array(rng.random(count) < NULL_SHARE)
        values = pc.if_else(mask, pa.scalar(None, values.type), values)
    return values


def _drawn(domain: Domain, rng: np.random.Generator, count: int, run_date: date,
           pool: list[str] | None) -> Values:
    kind, low, high = domain.column.kind, domain.low, domain.high
    if domain.file_date:
        return numbered(domain, np.zeros(count, np.int64), run_date)
    if domain.choices is not None:
        return _choices(domain).take(rng.integers(0, len(domain.choices), count))
    match kind:
        case "boolean":
            return pa.array(rng.random(count) < 0.5, pa.bool_())
        case "integer":
            return pa.array(rng.integers(low, high, count, endpoint=True), pa.int64())  # type: ignore[arg-type]
        case "float":
            assert isinstance(low, float | int) and isinstance(high, float | int)
            spread = low + rng.random(count) * (high - low)
            return pa.array(np.clip(np.round(spread, 2), low, high), pa.float64())
        case "decimal":
            units = rng.integers(low, high, count, endpoint=True)  # type: ignore[arg-type]
            return _decimals(units, domain.column.arrow_type)
        case "date":
            assert isinstance(low, date) and isinstance(high, date)
            return _dates(low, rng.integers(0, (high - low).days, count, endpoint=True))
        case "timestamp":
            micros = rng.integers(_micros(low), _micros(high), count, endpoint=True)
            return pa.array(micros, domain.column.arrow_type)
    pool = pool if pool is not None else candidates(domain, run_date, rng)
    return pa.array(pool, pa.string()).take(rng.integers(0, len(pool), count))


def numbered(domain: Domain, numbers: np.ndarray[Any, np.dtype[np.int64]],
             run_date: date, width: int = 4) -> Values:
    """One value per number, in the same order: a key column's values. A string is the
    number zero-padded to `width`, after the file's `YYYYMMDD-` if its checks want it."""
    kind, low = domain.column.kind, domain.low
    if domain.file_date:
        if kind == "timestamp":
            midnight = datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC)
            return pa.array(np.full(len(numbers), _micros(midnight)), domain.column.arrow_type)
        return pa.repeat(pa.scalar(run_date.isoformat(), pa.string()), len(numbers))
    if domain.choices is not None:
        return _choices(domain).take(numbers)
    match kind:
        case "boolean":
            return pa.array(numbers.astype(bool), pa.bool_())
        case "integer" | "decimal":
            assert isinstance(low, int)
            units = numbers + low
            return (pa.array(units, pa.int64()) if kind == "integer"
                    else _decimals(units, domain.column.arrow_type))
        case "float":
            assert isinstance(low, float | int)
            return pa.array(numbers + float(low), pa.float64())
        case "date":
            return _dates(low, numbers)
        case "timestamp":
            return pa.array(numbers * 10**6 + _micros(low), domain.column.arrow_type)
    return pa.array(_numbered_strings(domain, numbers, run_date, width), pa.string())


def _numbered_strings(domain: Domain, numbers: np.ndarray[Any, np.dtype[np.int64]],
                      run_date: date, width: int) -> list[str]:
    stems = ([key_prefix(run_date.isoformat())] if domain.date_prefix
             else [f"{domain.name}-", ""])
    for stem in stems:
        texts = [f"{stem}{n:0{width}d}" for n in numbers.tolist()]
        if all(_passes(domain, t, run_date) for t in (texts[:1] + texts[-1:])) and (
                not domain.patterns or all(_passes(domain, t, run_date) for t in texts)):
            return texts
    raise SampleError(f"column {domain.name}: the generator writes a key column's text as "
                      f"{stems[0]}{0:0{width}d} (numbered, to keep keys unique), which its "
                      "checks refuse", hint="loosen its max_length or matches check")
