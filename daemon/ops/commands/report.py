"""The `report` command: what the fact table holds, per customer and per day.

The prototype's customer totals (per customer, the sum of amounts, largest first, and
the number of transactions), then per run date the row count, customers and total.
Read only, from `daemon.warehouse.api.History`.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from datetime import date

from filedrop_etl.config import Settings
from filedrop_etl.daemon.ops.commands import common, table

# Amounts are money: shown, and given to scripts, to the cent, as the tables print them.
CENTS = 2

EPILOG = """\
examples:
  filedrop-etl report
  filedrop-etl report --since 2026-03-01 --until 2026-03-31
  filedrop-etl report --json | jq '.customers[:5]'

--since and --until bound the run date of the rows (both days included). Amounts are
rounded to the cent, in the tables and in --json alike; the fact table keeps them as
loaded.

exit codes: 0 done (also for an empty fact table); 2 bad usage or configuration, or no
usable database.
"""


@dataclass(frozen=True)
class _Customer:
    customer_id: int
    transactions: int
    amount: float


@dataclass(frozen=True)
class _Day:
    run_date: str
    rows: int
    customers: int
    amount: float


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
        description="The loaded transactions summed: per customer (the prototype's "
        "customer totals) and per run date (rows, customers, total amount).")
    parser.add_argument("--since", type=_day, metavar="DATE", help="from this run date on")
    parser.add_argument("--until", type=_day, metavar="DATE", help="up to this run date")
    common.add_json(parser)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.since is not None and args.until is not None and args.since > args.until:
        raise common.reversed_range(args.since, args.until)
    ranged = args.since is not None or args.until is not None
    feed = settings.contract  # TODO(ops helper): --feed, and every feed's figures
    with common.reading(settings) as history:
        groups = history.group_totals(feed, args.since, args.until)
        totals = history.day_totals(feed, args.since, args.until)
        # Nothing in the range is not nothing loaded: say which it is.
        empty = ("(no rows in that range)" if ranged and not totals
                 and history.has_rows(feed) else "(no rows loaded)")
    customers = [_Customer(int(g.group or 0), g.rows, float(g.figure("amount") or 0))
                 for g in groups]
    days = [_Day(d.run_date, d.rows, int(d.figure("customers") or 0),
                 float(d.figure("amount") or 0)) for d in totals]
    rows = sum(d.rows for d in days)
    # Summed exactly, then rounded once: float sums of cents drift (5417.820000000001).
    amount = round(math.fsum(d.amount for d in days), CENTS)
    if args.json:
        table.emit_json({
            "customers": [replace(c, amount=round(c.amount, CENTS)) for c in customers],
            "days": [replace(d, amount=round(d.amount, CENTS)) for d in days],
            "total": {"rows": rows, "customers": len(customers), "amount": amount},
        })
        return common.EXIT_OK
    table.emit("customer totals\n" + table.render(
        ("customer", "transactions", "total"),
        [(c.customer_id, c.transactions, c.amount) for c in customers],
        empty=empty))
    table.emit("\nper day\n" + table.render(
        ("run date", "rows", "customers", "total"),
        [*((d.run_date, d.rows, d.customers, d.amount) for d in days),
         *([("all", rows, len(customers), amount)] if days else [])],
        empty=empty))
    return common.EXIT_OK
