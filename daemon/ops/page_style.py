"""The status page's look: its style sheet and the script that refreshes it.

Owns what the browser lays out, not what the page says (`daemon.ops.page`) nor what its
charts draw (`daemon.ops.charts`). The page fits its window from 800 px up without a
sideways scroll of the document: the failed files' names, reasons and commands wrap
(names at their `_`, `-` and `.`), and below 900 px each failed file is a block of its
own lines instead of a row of five columns; the wider tables of records (recent loads,
feeds, daemons) scroll within their own section. The charts shrink with a window
narrower than they are. The script reloads the page every REFRESH_SECONDS, unless the
reader is in the middle of something a reload would undo.
"""

from __future__ import annotations

# The page refreshes itself: an operator leaves it open on a screen.
REFRESH_SECONDS = 15
# Below this window width, each failed file is a block of lines, not a table row.
NARROW_PX = 900

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em 1.5em;color:#222}
h1{margin:0 .6em .2em 0;display:inline-block}h2{margin:1em 0 .3em;font-size:1.05em}
dl{display:flex;flex-wrap:wrap;gap:1.5em;margin:.4em 0}dt{color:#666;font-size:.85em}dd{margin:0}
dl.figures{gap:2.2em}dl.figures dd{font-size:1.6em;font-weight:600}
#state{font-weight:600;padding:.3em .6em;display:inline-block;border-radius:4px}
.ok{background:#e3f5e1}.warn{background:#fff3cd}.bad{background:#f8d7da}
.charts{display:flex;flex-wrap:wrap;gap:2em}.charts section{max-width:100%}
svg{max-width:100%;height:auto}
table{border-collapse:collapse}th,td{padding:.2em .6em;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}.n{text-align:right}td.failed{color:#a11;font-weight:600}
td.f{white-space:nowrap}
.hint{color:#666;font-size:.9em}.t{white-space:nowrap}
#loads,#feeds,#nodes{overflow-x:auto}#loads .hint{white-space:nowrap}
#failed table{width:100%}#failed td{overflow-wrap:anywhere}#failed td.stage{overflow-wrap:normal}
#failed td.f{white-space:normal;min-width:10em;max-width:24em}
#failed td.reason{min-width:16em;max-width:40em}#failed td.retry{min-width:12em;max-width:26em}
#failed td.retry details{margin-top:.2em}
code{overflow-wrap:anywhere}
svg text{font-size:11px}svg .axis{fill:#666}svg line.grid{stroke:#eee}
svg rect{fill:#4a78b5}svg circle.processed{fill:#4a78b5;fill-opacity:.7}
svg circle.failed{fill:#d11;fill-opacity:.95;stroke:#fff;stroke-width:1}
svg path.range{fill:none;stroke:#4a78b5;stroke-opacity:.5}svg path.range.failed{stroke:#d11}
svg text.count.processed{fill:#2f5d99}svg text.count.failed{fill:#b11;font-weight:600}
details{font-size:.9em;color:#444}
tr.superseded td{color:#777}
@media (max-width:NARROWpx){
#failed table,#failed tbody{display:block}#failed thead{display:none}
#failed tr{display:flex;flex-wrap:wrap;border-bottom:1px solid #ddd;padding:.4em 0}
#failed td,#failed td.f,#failed td.reason,#failed td.retry{border:0;padding:.1em 0;
flex:1 1 100%;max-width:none;min-width:0}
#failed td.f{font-weight:600}#failed td.reason{order:2}#failed td.retry{order:3}
#failed td.stage,#failed td.t{flex:0 0 auto;order:1;color:#666;margin-right:1.5em}
#failed td[data-label]::before{content:attr(data-label) ": "}
}
""".strip().replace("NARROW", str(NARROW_PX))

# Reload every REFRESH_SECONDS, unless the reader has scrolled (a reload would jump back
# to the top and lose their place) or opened a fold (the numbers under a chart, what to
# do with a failed file), which a reload would close.
REFRESH = ("setTimeout(function(){if(window.scrollY>0||window.scrollX>0||"
           "document.querySelector('details[open]')){return;}location.reload();},"
           f"{REFRESH_SECONDS * 1000});")
