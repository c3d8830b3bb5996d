"""Strings that match a `matches` check's pattern: a sampler for simple regular expressions.

Walks the pattern as Python's own regex parser reads it (literals, classes and ranges,
`\\d` `\\w` `\\s`, `.`, groups, alternation, anchors, bounded and unbounded repeats) and
writes one random string per call from a numpy `Generator`, so that a seeded stream
gives the same strings in any process. Each string is then checked with `re.fullmatch`
(and against `max_length`): a pattern the sampler cannot satisfy (look-arounds,
back-references, or a length it cannot meet) raises `SampleError` naming the column, never
a value the check would refuse. It knows nothing of feeds beyond that column's name.
"""

from __future__ import annotations

import importlib
import re
import string
from typing import Any

import numpy as np

from filedrop_etl.config.errors import EtlError

# Python's regex parser, read through importlib: typeshed has no stubs for it. Every
# string it helps write is checked with `re.fullmatch`, so a change to its private
# structures can only make a pattern refused (SampleError), never a wrong value.
_parser: Any = importlib.import_module("re._parser")
# An unbounded repeat (`*`, `+`, `{n,}`) writes at most this many more than its minimum.
EXTRA_REPEATS = 3
# What `.` and a negated class choose from: printable, unremarkable characters.
_ALPHABET = string.ascii_letters + string.digits
_CATEGORIES = {
    "CATEGORY_DIGIT": string.digits,
    "CATEGORY_NOT_DIGIT": string.ascii_letters,
    "CATEGORY_WORD": string.ascii_letters + string.digits + "_",
    "CATEGORY_NOT_WORD": "-.,:;",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": _ALPHABET,
}
# Tries per wanted string before a pattern is given up as unsatisfiable.
TRIES = 20


class SampleError(EtlError):
    """A feed's declaration the generator cannot write sample values for."""


class _Unsupported(Exception):
    pass


def _class_members(items: list[tuple[Any, Any]]) -> str:
    """The characters a `[...]` class (or `\\d` and the like) admits, from `_ALPHABET`
    when negated."""
    chosen: list[str] = []
    negate = False
    for op, av in items:
        match str(op):
            case "NEGATE":
                negate = True
            case "LITERAL":
                chosen.append(chr(av))
            case "RANGE":
                low, high = av
                chosen.extend(chr(c) for c in range(low, min(high, low + 255) + 1))
            case "CATEGORY":
                chosen.extend(_CATEGORIES.get(str(av), ""))
            case _:
                raise _Unsupported(str(op))
    if negate:
        return "".join(c for c in _ALPHABET if c not in chosen)
    return "".join(dict.fromkeys(chosen))


def _write(parsed: Any, rng: np.random.Generator, out: list[str]) -> None:
    for op, av in parsed:
        match str(op):
            case "LITERAL":
                out.append(chr(av))
            case "NOT_LITERAL":
                out.append(next(c for c in _ALPHABET if ord(c) != av))
            case "ANY":
                out.append(_ALPHABET[int(rng.integers(len(_ALPHABET)))])
            case "IN":
                members = _class_members(av)
                if not members:
                    raise _Unsupported("an empty class")
                out.append(members[int(rng.integers(len(members)))])
            case "MAX_REPEAT" | "MIN_REPEAT" | "POSSESSIVE_REPEAT":
                low, high, inner = av
                high = min(high, low + EXTRA_REPEATS)
                for _ in range(int(rng.integers(low, high + 1))):
                    _write(inner, rng, out)
            case "SUBPATTERN":
                _write(av[-1], rng, out)
            case "ATOMIC_GROUP":
                _write(av, rng, out)
            case "BRANCH":
                branches = av[1]
                _write(branches[int(rng.integers(len(branches)))], rng, out)
            case "AT":
                pass  # ^, $, \b: a fully matched string satisfies the anchors it needs
            case _:
                raise _Unsupported(str(op))


def pool(column: str, pattern: str, rng: np.random.Generator, size: int,
         max_length: int | None = None) -> list[str]:
    """Up to `size` distinct strings that fully match `pattern` (and are at most
    `max_length` long), in the order written; `SampleError` if none can be written."""
    hint = ("use a simpler pattern (literals, classes such as [A-Z] or \\d, groups, | and "
            "repeats), or declare the column with one_of")
    try:
        parsed = _parser.parse(pattern)
        compiled = re.compile(pattern)
    except re.error as exc:
        raise SampleError(f"column {column}: the pattern {pattern!r} is not a regular "
                          f"expression: {exc}", hint="correct the matches check") from None
    found: dict[str, None] = {}
    try:
        for _ in range(size * TRIES):
            out: list[str] = []
            _write(parsed, rng, out)
            text = "".join(out)
            if compiled.fullmatch(text) and (max_length is None or len(text) <= max_length):
                found[text] = None
                if len(found) == size:
                    break
    except _Unsupported as exc:
        raise SampleError(f"column {column}: the generator cannot write strings matching "
                          f"{pattern!r} (it does not handle {exc})", hint=hint) from None
    if not found:
        within = f" in at most {max_length} characters" if max_length is not None else ""
        raise SampleError(f"column {column}: the generator found no string matching "
                          f"{pattern!r}{within}", hint=hint)
    return list(found)
