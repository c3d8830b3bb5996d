"""A feed's file names: the template, its date format, its pattern, and the set of feeds.

A declared name (`orders_{date}.parquet`) and its date's `strftime` format make the
pattern a file name is matched with (`name_pattern`, a `~N` re-drop suffix allowed) and
the name a producer gives a day's file (`file_name_for`). `Feeds` is the set a daemon
serves, and the one place that says which feed a file name belongs to (`for_file`) and
what a name matching none does (`UnmatchedPolicy`). Nothing here touches files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from filedrop_etl.config.contract import Contract

# What a file whose name matches no feed does: `fail` (to failed/, naming the patterns)
# or `leave` (stays in the inbox untouched, logged once).
UnmatchedPolicy = Literal["fail", "leave"]
UNMATCHED_POLICIES: tuple[UnmatchedPolicy, ...] = ("fail", "leave")
ISO_DATE_FORMAT = "%Y-%m-%d"


def file_name_for(template: str, date_format: str, run_date: str) -> str:
    """The name a producer gives the file of `run_date` (ISO) under a template holding
    `{date}`, its date written in `date_format`; by hand, as glibc's `strftime("%Y")`
    drops the leading zeros of years below 1000 (`1-01-01` for 0001-01-01)."""
    day = date.fromisoformat(run_date)
    fields = {"%Y": f"{day.year:04d}", "%y": f"{day.year % 100:02d}",
              "%m": f"{day.month:02d}", "%d": f"{day.day:02d}",
              "%j": f"{day.timetuple().tm_yday:03d}", "%%": "%"}
    text = "".join(fields.get(part, part) for part in re.split(r"(%[a-zA-Z%])", date_format))
    return template.replace("{date}", text)


# `strftime` directives a file-name date may use, and the text each matches.
DATE_DIRECTIVES: dict[str, str] = {"%Y": r"\d{4}", "%y": r"\d{2}", "%m": r"\d{2}",
                                   "%d": r"\d{2}", "%j": r"\d{3}"}
# `~N` before the extension: an archived name with a uniqueness suffix still parses.
_REDROP_SUFFIX = r"(?:~\d+)?"


def name_pattern(template: str, date_format: str = ISO_DATE_FORMAT) -> re.Pattern[str]:
    """The compiled pattern of a file-name template holding `{date}` once: the literal
    text as it is, the date as `date_format` writes it, and an optional `~N` before the
    last extension (or at the end, for a name without one)."""
    date_re = "".join(DATE_DIRECTIVES.get(part, re.escape(part))
                      for part in re.split(r"(%[a-zA-Z%])", date_format) if part)
    before, _, after = template.partition("{date}")
    stem, dot, ext = after.rpartition(".")
    tail = (re.escape(stem) + _REDROP_SUFFIX + re.escape(dot + ext) if dot
            else re.escape(after) + _REDROP_SUFFIX)
    return re.compile(re.escape(before) + f"(?P<date>{date_re})" + tail)


# A date's fields as a person may write them: a month or a day of one digit, any common
# separator (or none) between fields, for the name a misnamed file most likely meant.
_LOOSE_FIELDS = {"%Y": r"\d{4}", "%y": r"\d{2}", "%m": r"\d{1,2}", "%d": r"\d{1,2}",
                 "%j": r"\d{1,3}"}
_LOOSE_SEPARATOR = r"[-_./ ]?"


def loose_date_pattern(date_format: str) -> str:
    """A regex for a date written loosely in `date_format`'s order of fields (`2026-1-1`,
    `2026_01_01`, `20260101` for `%Y-%m-%d`), one named group per field (`Y`, `m`, ...),
    never inside a longer run of digits."""
    fields = [p for p in re.split(r"(%[a-zA-Z%])", date_format) if p in _LOOSE_FIELDS]
    body = _LOOSE_SEPARATOR.join(f"(?P<{f[1]}>{_LOOSE_FIELDS[f]})" for f in fields)
    return rf"(?<!\d){body}(?!\d)"


def loose_date(match: re.Match[str]) -> str | None:
    """The ISO date a `loose_date_pattern` match holds, or None if it is no calendar
    date (month 13, February 30) or lacks a year."""
    found = {k: v for k, v in match.groupdict().items() if v is not None}
    try:
        year = (int(found["Y"]) if "Y" in found else
                datetime.strptime(found["y"], "%y").year if "y" in found else None)
        if year is None:
            return None
        if "j" in found:
            day = date(year, 1, 1) + timedelta(days=int(found["j"]) - 1)
            return day.isoformat() if day.year == year and int(found["j"]) > 0 else None
        return date(year, int(found["m"]), int(found["d"])).isoformat()
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class Feeds:
    """The feeds a daemon serves, in declaration order, and what a file whose name matches
    none of them does. Validation (`config.feeds`) sees that no name matches two."""

    all: tuple[Contract, ...]
    unmatched: UnmatchedPolicy = "fail"

    def __iter__(self) -> Iterator[Contract]:
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.all)

    def named(self, name: str) -> Contract | None:
        return next((c for c in self.all if c.name == name), None)

    def for_file(self, name: str) -> Contract | None:
        """The feed whose pattern `name` matches, or None."""
        return next((c for c in self.all if c.file_name_pattern.fullmatch(name)), None)

    def name_of(self, file_name: str) -> str | None:
        """The name of the feed `file_name` belongs to, or None."""
        contract = self.for_file(file_name)
        return None if contract is None else contract.name

    @property
    def examples(self) -> tuple[str, ...]:
        """Every feed's pattern with its date spelled out, for a name matching none."""
        return tuple(c.file_name_example for c in self.all)
