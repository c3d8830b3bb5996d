"""Declared feeds side by side: no two may write one table or match one file name.

Of each feed, what it declares of its file names and its table (`Declared`, kept even
for a feed with problems elsewhere); `side_by_side` finds two feeds writing one table
(or one's `_days` table), or whose patterns both match one name, for which a file's
feed, or a table's shape, would be a guess. Names are tried as each feed writes its own
for a few dates, with and without a `~N` re-drop suffix. Problems go into the
declaration's `Problems` (`config.feed_parts`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from filedrop_etl.config.feed_parts import Problems
from filedrop_etl.config.file_names import file_name_for, name_pattern

# Dates a feed's own names are tried with against the other feeds' patterns.
_SAMPLE_DATES = ("2026-01-02", "1999-12-31", "2031-11-30")


@dataclass(frozen=True)
class Declared:
    """What a feed says of its file names and its table, for `side_by_side`."""

    name: str
    file_name_template: str | None
    date_format: str
    fact_table: str | None
    dated: bool

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        return (None if self.file_name_template is None
                else name_pattern(self.file_name_template, self.date_format))

    def matches(self, name: str) -> bool:
        return self._pattern is not None and bool(self._pattern.fullmatch(name))

    def file_name_for(self, run_date: str) -> str:
        assert self.file_name_template is not None
        return file_name_for(self.file_name_template, self.date_format, run_date)


def side_by_side(feeds: list[Declared], problems: Problems) -> None:
    """Two feeds writing one table (or one's `_days` table), or whose patterns both match
    one name: which of them a file belongs to, or a table's shape, would be a guess."""
    tables: dict[str, str] = {}
    for feed in feeds:
        if feed.fact_table is None:
            continue
        mine = {feed.fact_table.lower()} | ({f"{feed.fact_table}_days".lower()}
                                            if feed.dated else set())
        for table in sorted(mine):
            if table in tables:
                problems.add(f"feeds.{feed.name}.table", f"{feed.fact_table!r} is written "
                             f"by feed {tables[table]} too (table names are compared in "
                             "any case)", "give each feed a table of its own")
            tables.setdefault(table, feed.name)
    for index, feed in enumerate(feeds):
        for other in feeds[index + 1:]:
            clash = _one_name(feed, other) if feed.file_name_template and \
                other.file_name_template else None
            if clash:
                problems.add(f"feeds.{other.name}.pattern",
                             f"{other.file_name_template!r} and feed {feed.name}'s "
                             f"{feed.file_name_template!r} both match {clash!r}",
                             "make the two patterns differ in their fixed text, so that "
                             "every name belongs to one feed")


def _one_name(one: Declared, other: Declared) -> str | None:
    """A name both feeds' patterns match, among each one's own names for a few dates."""
    for first, second in ((one, other), (other, one)):
        for day in _SAMPLE_DATES:
            plain = first.file_name_for(day)
            stem, dot, ext = plain.rpartition(".")
            for name in (plain, f"{stem}~1{dot}{ext}" if dot else f"{plain}~1"):
                if second.matches(name):
                    return name
    return None
