"""The status page's tables of the warehouse's records: the latest loads, the declared
feeds (where there are several) and the daemons sharing the warehouse (where there are
several). Markup only, every value from the database escaped here; it reads nothing
(`daemon.ops.page` hands it the rows), and the failed files are `daemon.ops.page_failed`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon.ops import fleet
from filedrop_etl.daemon.ops.commands.table import when
from filedrop_etl.daemon.warehouse.api import Daemon, Load


def feeds(declared: Feeds, last_loads: Mapping[str, Load | None]) -> str:
    """The declared feeds, each with its pattern, its table and its latest load."""
    rows = []
    for c in declared:
        last = last_loads.get(c.name)
        load = ("<td>never</td><td></td><td></td>" if last is None else
                f'<td class="t">{escape(when(last.finished_at) or "")}</td>'
                f'<td class="f">{escape(last.file_name)}</td>'
                f'<td class="{escape(last.status)}">{escape(last.status)}</td>')
        rows.append(f"<tr><td>{escape(c.name)}</td><td class=\"f\">"
                    f"{escape(c.file_name_example)}</td><td>{escape(c.fact_table)}</td>"
                    f"{load}</tr>")
    return ('<section id="feeds"><h2>Feeds</h2><table><thead><tr><th>feed</th>'
            "<th>pattern</th><th>table</th><th>last load</th><th>file</th><th>status</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


def loads(recent: Sequence[Load], waiting: set[str], several: bool) -> str:
    """The latest loads, each with its feed where several are declared. The error of a
    load whose file waits in failed/ is its reason in the table above: it is pointed at,
    not said twice."""
    if not recent:
        return '<section id="loads"><h2>Recent loads</h2><p>No loads yet.</p></section>'
    numbers = ("rows", "inserted", "updated", "unchanged", "deleted")
    head = "".join(f'<th class="n">{n}</th>' for n in numbers)
    rows = "".join(
        f'<tr><td class="n">{load.id}</td>'
        + (f"<td>{escape(load.feed or '-')}</td>" if several else "")
        + f'<td class="f">{escape(load.file_name)}</td>'
        f'<td class="{escape(load.status)}">{escape(load.status)}</td>'
        + "".join(f'<td class="n">{_count(getattr(load, n))}</td>' for n in numbers)
        + f'<td class="t">{escape(when(load.finished_at) or "")}</td>'
        + f"<td>{_error(load, waiting)}</td></tr>"
        for load in recent)
    return ('<section id="loads"><h2>Recent loads</h2><table><thead><tr>'
            f'<th class="n">id</th>{"<th>feed</th>" if several else ""}<th>file</th>'
            f"<th>status</th>{head}<th>finished</th>"
            f"<th>error</th></tr></thead><tbody>{rows}</tbody></table></section>")


def nodes(daemons: Sequence[Daemon]) -> str:
    """The daemons sharing the warehouse (PostgreSQL), with their heartbeats; nothing
    for a warehouse of one daemon."""
    if not fleet.shared(daemons):
        return ""
    rows = "".join(
        f"<tr><td>{escape(d.node)}</td><td class=\"{_NODE_CLASS.get(d.state or '', '')}\">"
        f"{escape(fleet.state(d))}</td>"
        f'<td class="t">{escape(when(d.heartbeat_at) or "-")}</td>'
        f'<td class="f">{escape(d.file_in_hand or "-")}</td></tr>' for d in daemons)
    return ('<section id="nodes"><h2>Daemons</h2><table><thead><tr><th>node</th>'
            "<th>state</th><th>last heartbeat</th><th>file in hand</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></section>")


# A lost node in red; one stopped on purpose is no alarm.
_NODE_CLASS = {"alive": "processed", "lost": "failed"}


def _error(load: Load, waiting: set[str]) -> str:
    if not load.error:
        return ""
    if load.file_name in waiting:
        return '<span class="hint">see Failed files</span>'
    return escape(load.error)


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"
