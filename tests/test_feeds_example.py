"""The feeds a user copies: README's "Loading your own files", config/feeds.example.toml
and the documented keys of config/etl.toml agree with each other and with the settings.

Read with `tomllib` alone, so that they are held to the same declaration whoever reads it;
the example's feeds, read by the daemon's own parser, are tested with the generator
(`tests/test_generator_feed.py`)."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from filedrop_etl.config.setting_values import SETTING_NAMES

from .conftest import ROOT

SECTION = "## Loading your own files"


def _example() -> dict[str, Any]:
    with (ROOT / "config" / "feeds.example.toml").open("rb") as handle:
        return tomllib.load(handle)


def _readme_declaration() -> dict[str, Any]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(re.escape(SECTION) + r"\n.*?```toml\n(.*?)```", text, re.S)
    assert block, f"README.md has no TOML block under {SECTION!r}"
    return tomllib.loads(re.sub(r"^   ", "", block[1], flags=re.M))


def test_the_section_comes_before_the_reference() -> None:
    """Where a newcomer looks for it: after dropping files, before PostgreSQL and the
    reference (the README's order, held whole by `tests/test_readme_commands.py`)."""
    headings = [line for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith("## ")]
    at = headings.index(SECTION)
    assert headings[at - 1] == "## Dropping files and reading failures"
    assert headings[at + 1].startswith("## Growing past one machine")


def test_the_example_declares_every_part_of_a_feed() -> None:
    example = _example()
    assert example["table_prefix"] == "fact_" and example["unmatched"] == "fail"
    assert example["feeds"]["transactions"] == {}
    orders = example["feeds"]["orders"]
    assert len(orders["key"]) == 2 and orders["key"][0] == orders["date_column"]
    kinds = {k if isinstance(k, str) else k["kind"] for k in orders["columns"].values()}
    assert {"decimal", "boolean", "timestamp", "date", "integer", "string"} <= kinds
    assert any(isinstance(c, dict) and c.get("nullable") for c in orders["columns"].values())
    assert orders["columns"]["price"]["precision"] == 12
    assert {c["rule"] for c in orders["checks"]} >= {"equals_file_date", "min", "max",
                                                    "one_of", "matches", "max_length"}
    assert set(orders["totals"]) == {"sum", "distinct", "group_by"}
    assert all(c["column"] in orders["columns"] for c in orders["checks"])


def test_the_readmes_declaration_is_the_examples_in_short() -> None:
    readme, example = _readme_declaration()["feeds"], _example()["feeds"]
    assert set(readme) == {"transactions", "orders"}
    orders, full = readme["orders"], example["orders"]
    for key in ("pattern", "key", "date_column"):
        assert orders[key] == full[key], key
    assert orders["columns"].items() <= full["columns"].items()
    assert all(check in full["checks"] for check in orders["checks"])


def test_etl_toml_documents_every_key() -> None:
    text = (ROOT / "config" / "etl.toml").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?(\w+) = ", text, re.M))
    assert set(SETTING_NAMES) <= documented
    assert {"table_prefix", "unmatched", "pattern", "key", "date_column"} <= documented
    assert "[feeds.orders]" in text and "feeds.example.toml" in text
