"""The status page's failed files: one row per file waiting in failed/, with its stage,
its reason and hint, when it failed, and its "to retry" cell: the short command that
retries it (as the name it most likely meant, where its own can never load), or in a
few words why not with what to do folded under it, or, for a file a later drop's load
made stale, the command that dismisses it. Markup only, every name and reason escaped
here; it reads nothing (`daemon.ops.page` hands it the files and the commands' writer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape

from filedrop_etl.config.file_names import Feeds
from filedrop_etl.config.invocation import CommandLine
from filedrop_etl.daemon.ops.commands.table import when
from filedrop_etl.daemon.ops.folders import FailedFile
from filedrop_etl.daemon.ops.retries import name_refusal, suggested_name
from filedrop_etl.daemon.warehouse.api import Load


def section(failed: Sequence[FailedFile], command: CommandLine, feeds: Feeds,
            stale: Mapping[str, Load]) -> str:
    """The failed files, each with its reason and what to do; the cells wrap, and below
    `page_style.NARROW_PX` each file is a block whose cells say what they are."""
    if not failed:
        return '<section id="failed"><h2>Failed files</h2><p>None.</p></section>'
    rows = "".join(
        ('<tr class="superseded">' if f.name in stale else "<tr>")
        + f'<td class="f">{breakable(f.name)}</td>'
        f'<td class="stage" data-label="stage">{escape(f.stage or "")}</td>'
        f'<td class="reason">{escape(f.reason)}<div class="hint">{escape(f.hint or "")}</div>'
        f"</td><td class=\"t\" data-label=\"failed at\">{escape(when(f.attempted_at) or '')}"
        f'</td><td class="retry">{_to_retry(f, command, feeds, stale.get(f.name))}</td></tr>'
        for f in failed)
    return (f'<section id="failed"><h2>Failed files ({len(failed)})</h2><table>'
            "<thead><tr><th>file</th><th>stage</th><th>reason</th><th>failed at</th>"
            f"<th>to retry</th></tr></thead><tbody>{rows}</tbody></table></section>")


def _to_retry(failed: FailedFile, command: CommandLine, feeds: Feeds,
              load: Load | None) -> str:
    """The command that retries the file (as the name it most likely meant, where its
    own can never load), why not in a few words with what to do folded under it where a
    retry would fail it again, or, for a file superseded by a later drop's load, the
    command that dismisses it; each command as it runs from any folder."""
    if load is not None:
        return retry_cell(command("dismiss", files=[failed.name]),
                          f"superseded by load {load.id}: no retry needed")
    refusal = name_refusal(failed, feeds, command)
    if refusal is None:
        return retry_cell(command("retry", files=[failed.name]))
    likely = suggested_name(failed, feeds)
    if likely is not None:
        return retry_cell(command("retry", files=[failed.name], then=("--as", likely)))
    why, _, _ = refusal[0].partition(": ")
    return retry_cell(None, f"{why}: retry it under a new name", refusal[1])


def retry_cell(command: str | None, why: str | None = None, how: str | None = None) -> str:
    """A "to retry" cell: a short command to copy (as it is: the style sheet lets it
    wrap), a compact reason, and the longer what-to-do folded (`<details>`): never a
    paragraph."""
    return "".join([
        f"<code>{escape(command)}</code>" if command else "",
        f'<div class="why">{escape(why)}</div>' if why else "",
        f"<details><summary>what to do</summary>{escape(how)}</details>" if how else ""])


def breakable(text: str) -> str:
    """`text` escaped, a line break allowed after each `/`, `_` and `-` and before each `.`
    (`<wbr>`): a long file name wraps where it reads well, and copies as it is."""
    return re.sub(r"([/_-])", r"\1<wbr>", escape(text)).replace(".", "<wbr>.")
