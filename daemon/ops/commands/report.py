"""The `report` command: what each feed's fact table holds, per group and per day.

A feed's figures are its `Contract.totals`: for the built-in transactions feed the
prototype's customer totals (per customer, the sum of amounts, largest first, and the
number of transactions), then per run date the row count, customers and total. A
declared feed gets its own (by default the sum of each float and decimal column).
With several feeds, each has its section (`--feed` picks one). Read only, from
`daemon.warehouse.api.History`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import Column, Contract
from filedrop_etl.daemon.ops.commands import common, table
from filedrop_etl.daemon.warehouse import api

# Amounts are money: shown, and given to scripts, to the cent, as the tables print them.
CENTS = 2

EPILOG = """\
examples:
  filedrop-etl report
  filedrop-etl report --since 2026-03-01 --until 2026-03-31
  filedrop-etl report --json | jq '.customers[:5]'

--since and --until bound the run date of the rows (both days included). Amounts are
rounded to the cent, in the tables and in --json alike; the fact table keeps them as
loaded. With several feeds declared, each feed has its section (in --json, under
.feeds.NAME); --feed NAME reports one feed, in the one-feed form.

exit codes: 0 done (also for an empty fact table); 2 bad usage or configuration, or no
usable database.
"""


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-01") from None


def add(commands: common.Subcommands,
        shared: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "report", parents=[shared], formatter_class=common.Help, epilog=EPILOG,
        help="customer totals, and totals and row counts per day",
        description="The loaded rows of each feed summed: for transactions per customer "
        "(the prototype's customer totals) and per run date (rows, customers, total "
        "amount); for a declared feed, its figures per group and per run date.")
    parser.add_argument("--since", type=_day, metavar="DATE", help="from this run date on")
    parser.add_argument("--until", type=_day, metavar="DATE", help="up to this run date")
    common.add_feed(parser)
    common.add_json(parser)


# The built-in feed's tables keep the headings they had before feeds.
_BUILTIN_HEADINGS = {"customer_id": "customer", "amount": "total"}


@dataclass(frozen=True)
class FeedReport:
    """One feed's totals in a range: per group (largest first) and per run date."""

    contract: Contract
    groups: list[api.GroupTotal]
    days: list[api.DayTotal]
    empty: str


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.since is not None and args.until is not None and args.since > args.until:
        raise common.reversed_range(args.since, args.until)
    chosen = common.feeds_of(settings, args.feed)
    ranged = args.since is not None or args.until is not None
    reports = []
    with common.reading(settings) as history:
        for contract in chosen:
            days = history.day_totals(contract, args.since, args.until)
            # Nothing in the range is not nothing loaded: say which it is.
            empty = ("(no rows in that range)"
                     if ranged and not days and history.has_rows(contract)
                     else "(no rows loaded)")
            reports.append(FeedReport(contract, history.group_totals(
                contract, args.since, args.until), days, empty))
    if not common.grouped(settings, args.feed):
        [only] = reports
        if args.json:
            table.emit_json(_document(only))
        else:
            table.emit(_text(only))
        return common.EXIT_OK
    if args.json:
        table.emit_json({"feeds": {r.contract.name: _document(r) for r in reports}})
    else:
        table.emit("\n\n".join(f"feed {r.contract.name}\n\n{_text(r)}" for r in reports))
    return common.EXIT_OK


def _rounded(value: float | int | str | None) -> float | int | str | None:
    """A figure as shown: a float (money, mostly) to the cent; counts and exact decimals
    as they are."""
    return round(value, CENTS) if isinstance(value, float) else value


def _total(values: Sequence[float | int | str | None],
           column: Column) -> float | int | str | None:
    """The sum of one figure over the days, by its column's kind: floats summed exactly,
    then rounded once (float sums of cents drift: 5417.820000000001); decimals, as the
    exact text at their scale."""
    present = [v for v in values if v is not None]
    if column.kind == "decimal":
        unit = Decimal(1).scaleb(-(column.scale or 0))
        return str(sum((Decimal(str(v)) for v in present), Decimal(0)).quantize(unit))
    if column.kind == "float":
        return round(math.fsum(float(v) for v in present), CENTS)
    return sum(int(v) for v in present)


def _group_list(contract: Contract) -> str:
    """The JSON key of the groups: the label counting their column (`customers`), else
    `groups`."""
    totals = contract.totals
    return next((label for label, column in totals.distinct if column == totals.group_by),
                "groups")


def _totals(r: FeedReport) -> dict[str, float | int | str | None]:
    """The figures of the whole range: each sum over the days; a distinct count of the
    group column, the number of groups (any other distinct count is not a sum of the
    days': null)."""
    totals = r.contract.totals
    figures: dict[str, float | int | str | None] = {
        label: (len(r.groups) if column == totals.group_by else None)
        for label, column in totals.distinct}
    for label, column in totals.sums:
        figures[label] = _total([dict(d.figures).get(label) for d in r.days],
                                r.contract.column(column))
    return figures


def _sums(figures: api.Figures, contract: Contract) -> list[tuple[str, float | int | str | None]]:
    """A group's figures: its sums (a group's count of its own column is 1)."""
    labels = {label for label, _ in contract.totals.sums}
    return [(label, _rounded(v)) for label, v in figures if label in labels]


def _document(r: FeedReport) -> dict[str, object]:
    totals = r.contract.totals
    document: dict[str, object] = {}
    if totals.group_by is not None:
        document[_group_list(r.contract)] = [
            {totals.group_by: g.group, totals.group_rows: g.rows,
             **dict(_sums(g.figures, r.contract))} for g in r.groups]
    document["days"] = [{"run_date": d.run_date, "rows": d.rows,
                         **{label: _rounded(v) for label, v in d.figures}} for d in r.days]
    document["total"] = {"rows": sum(d.rows for d in r.days), **_totals(r)}
    return document


def _text(r: FeedReport) -> str:
    contract, totals = r.contract, r.contract.totals

    def heading(label: str) -> str:
        return _BUILTIN_HEADINGS.get(label, label) if contract.builtin else label

    labels = [label for label, _ in (*totals.distinct, *totals.sums)]
    sums = [label for label, _ in totals.sums]
    parts = []
    if totals.group_by is not None:
        parts.append(f"{heading(totals.group_by)} totals\n" + table.render(
            (heading(totals.group_by), totals.group_rows, *map(heading, sums)),
            [(g.group, g.rows, *(v for _, v in _sums(g.figures, contract)))
             for g in r.groups],
            empty=r.empty, numeric=(totals.group_rows, *map(heading, sums))))
    everything = _totals(r)
    parts.append("per day\n" + table.render(
        ("run date", "rows", *map(heading, labels)),
        [*((d.run_date, d.rows, *(_rounded(v) for _, v in d.figures)) for d in r.days),
         *([("all", sum(d.rows for d in r.days), *(everything[x] for x in labels))]
           if r.days else [])],
        empty=r.empty, numeric=("rows", *map(heading, labels))))
    return "\n\n".join(parts)
