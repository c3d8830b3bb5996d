"""The `feeds` command: the feeds this configuration declares, and the last load of each.

For each feed: its file-name pattern (and an example name), its table, key, date column,
write mode (its own, or the daemon's), what it does with undeclared columns, its columns
(kind, nullable, precision and scale, default) and checks, and its latest load from the
ledger. Works without a database (the last load is then none): what the config declares
is the answer, and the database only adds the last loads. Read only.
"""

from __future__ import annotations

import argparse

from filedrop_etl.config import Settings
from filedrop_etl.config.check_words import rule_words
from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.ops.commands import common, table
from filedrop_etl.daemon.warehouse import api

EPILOG = """\
examples:
  filedrop-etl feeds
  filedrop-etl feeds --config /etc/filedrop-etl/etl.toml
  filedrop-etl feeds --json | jq '.[] | {name, table, last_load}'

The feeds are those of the config file's [feeds] tables; without any, the built-in
transactions feed. A feed's write mode is its own `write_mode`, else the daemon's. The
last load is the feed's latest attempt in load_history, whatever its outcome (none
without a database, or before the feed's first file).

exit codes: 0 done (also without a database); 2 bad usage or configuration, or a
database that cannot be read.
"""


def add(commands: common.Subcommands, shared: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "feeds", parents=[shared], formatter_class=common.Help, epilog=EPILOG,
        help="the declared feeds: pattern, table, key, columns, last load",
        description="The feeds the configuration declares, each with its file-name "
        "pattern, table, key, columns, checks and write mode, and its last load from "
        "load_history. Reads only; works before any database exists.")
    common.add_json(parser)


def run(settings: Settings, args: argparse.Namespace) -> int:
    last: dict[str, api.Load | None] = dict.fromkeys(settings.feeds.names)
    if common.database_named(settings):
        with common.reading(settings) as history:
            for name in last:
                last[name] = next(iter(history.recent_loads(
                    api.LoadFilter(limit=1, feed=name))), None)
    if args.json:
        table.emit_json([_document(c, settings, last[c.name]) for c in settings.feeds])
    else:
        table.emit("\n\n".join(_text(c, settings, last[c.name]) for c in settings.feeds))
    return common.EXIT_OK


_WHOSE = {"feed": "its own", "daemon": "the daemon's setting"}


def _write_mode(contract: Contract, settings: Settings) -> tuple[str, str]:
    """The feed's effective write mode, and whose it is."""
    if contract.write_mode is not None:
        return contract.write_mode, "feed"
    return settings.write_mode, "daemon"


def _document(contract: Contract, settings: Settings,
              last: api.Load | None) -> dict[str, object]:
    mode, whose = _write_mode(contract, settings)
    return {
        "name": contract.name,
        "builtin": contract.builtin,
        "pattern": contract.file_name_template,
        "date_format": contract.date_format,
        "example": contract.file_name_example,
        "table": contract.fact_table,
        "key": list(contract.key),
        "date_column": contract.date_column,
        "write_mode": mode,
        "write_mode_from": whose,
        "undeclared_columns": contract.undeclared_columns,
        "columns": [{"name": c.name, "kind": c.kind, "nullable": c.nullable,
                     "precision": c.precision, "scale": c.scale, "default": c.default}
                    for c in contract.columns],
        "checks": [check.name for check in contract.checks],
        # The same rules in words, for people (the ids above are what tooling matches).
        "rules": [rule_words(check) for check in contract.checks],
        "last_load": common.load_json(last, settings),
    }


def _last(last: api.Load | None) -> str:
    if last is None:
        return "none"
    rows = "" if last.rows is None else f", {last.rows} rows"
    return f"{table.when(last.finished_at)}  {last.file_name} ({last.status}{rows})"


def _text(contract: Contract, settings: Settings, last: api.Load | None) -> str:
    mode, whose = _write_mode(contract, settings)
    heading = f"feed {contract.name}" + (" (built in)" if contract.builtin else "")
    facts: list[tuple[str, table.Cell]] = [
        ("pattern", f"{contract.file_name_template} (as {contract.file_name_example})"),
        ("table", contract.fact_table),
        ("key", ", ".join(contract.key)),
        ("date column", contract.date_column or "none"),
        ("write mode", f"{mode} ({_WHOSE[whose]})"),
        ("undeclared", f"{contract.undeclared_columns} (columns a file holds beyond these)"),
        # In words, each with its id (what the sidecar's `checks` and tooling name); "; "
        # apart, as a rule's words may hold commas (`one of web, store`).
        ("checks", "; ".join(f"{rule_words(c)} ({c.name})" for c in contract.checks)
         or "none"),
        ("last load", _last(last)),
    ]
    columns = table.render(
        ("column", "kind", "nullable", "precision", "scale", "default"),
        [(c.name, c.kind, "yes" if c.nullable else "no", c.precision, c.scale,
          None if c.default is None else str(c.default)) for c in contract.columns],
        numeric=("precision", "scale"))
    return f"{table.safe(heading)}\n{table.pairs(facts)}\n\n{columns}"
