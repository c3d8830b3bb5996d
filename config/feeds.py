"""Declared feeds: the `[feeds.NAME]` tables of the config file, read into `Contract`s.

Owns the declaration's syntax and its validation: every problem at once, each saying
where it is and what to write instead. A config without `[feeds]` gets the built-in
transactions feed (`contract.TRANSACTIONS`).
"""

from __future__ import annotations

from collections.abc import Mapping

from filedrop_etl.config.contract import (
    DEFAULT_TABLE_PREFIX,
    TRANSACTIONS,
    Feeds,
    UnmatchedPolicy,
)


def read_feeds(declared: Mapping[str, object] | None, *,
               table_prefix: str = DEFAULT_TABLE_PREFIX,
               unmatched: UnmatchedPolicy = "fail") -> Feeds:
    """The feeds a config declares (None: no `[feeds]`, the built-in one)."""
    if not declared:
        return Feeds((TRANSACTIONS,), unmatched)
    raise NotImplementedError("declared feeds are read by issue 23's parser")
