"""The soak's printed report: the memory table, the run by tenths, the drops by kind,
and the verdict line by line."""

from __future__ import annotations

import statistics
from typing import Any

from tools.soak.run import Soak
from tools.soak.verdict import (
    END_WINDOW,
    FD_SLACK,
    JUDGE_MINUTES,
    RSS_GROWTH_MB,
    RSS_GROWTH_PCT,
    WARM_WINDOW,
    window,
)


def _cell(value: float | str, spec: str) -> str:
    return value if isinstance(value, str) else format(value, spec)


def report(soak: Soak, verdict: dict[str, Any]) -> str:
    samples, drops, flat = soak.samples, soak.drops, verdict["flatness"]
    args = soak.args
    relative = " ".join(a.replace(str(soak.work), "W") for a in ["python", *soak.argv[1:]])
    out = [f"Soak: {args.minutes:g} min of drops, one every {args.interval:g} s; a sample "
           f"every {soak.sample_s:g} s ({len(samples)} samples); W = {soak.work}",
           f"  $ {relative}", ""]
    warm = window(samples, soak.duration, WARM_WINDOW)
    end = window(samples, soak.duration, END_WINDOW)
    out.append(f"{'':>12}{'start':>9}{'warm':>9}{'end':>9}{'min':>9}{'max':>9}   (warm "
               f"{WARM_WINDOW[0]:.0%}-{WARM_WINDOW[1]:.0%} and end {END_WINDOW[0]:.0%}-"
               f"{END_WINDOW[1]:.0%} of the drops: medians)")
    for label, attr, spec in (("RSS MB", "rss_mb", ".1f"), ("anon MB", "anon_mb", ".1f"),
                              ("file MB", "file_mb", ".1f"), ("open fds", "fds", "g"),
                              ("threads", "threads", "g"), ("db MB", "db_mb", ".1f"),
                              ("backlog", "backlog", "g")):
        values: list[float] = [getattr(s, attr) for s in samples]
        cells: list[float | str] = [
            values[0], statistics.median(getattr(s, attr) for s in warm) if warm else "-",
            statistics.median(getattr(s, attr) for s in end) if end else "-",
            min(values), max(values)]
        out.append(f"{label:>12}" + "".join(f"{_cell(c, spec):>9}" for c in cells))
    out += ["", "By tenth of the drop phase (medians; archived and db MB at its end)",
            f"{'minutes':>12}{'RSS MB':>9}{'anon MB':>9}{'file MB':>9}{'fds':>6}"
            f"{'archived':>10}{'db MB':>9}"]
    for tenth in range(10):
        low, high = tenth * soak.duration / 10, (tenth + 1) * soak.duration / 10
        part = [s for s in samples if s.phase == "drops" and low <= s.t < high]
        if part:
            out.append(f"{f'{low / 60:g}-{high / 60:g}':>12}"
                       f"{statistics.median(s.rss_mb for s in part):>9.1f}"
                       f"{statistics.median(s.anon_mb for s in part):>9.1f}"
                       f"{statistics.median(s.file_mb for s in part):>9.1f}"
                       f"{statistics.median(s.fds for s in part):>6g}"
                       f"{part[-1].archived:>10}{part[-1].db_mb:>9.1f}")
    out += ["", f"{'kind':<11}{'drops':>7}{'rename':>8}{'in place':>9}{'processed':>10}"
            f"{'failed':>8}{'rows':>10}{'p50 s':>8}{'max s':>8}"]
    for kind in dict.fromkeys(d.kind for d in drops):
        mine = [d for d in drops if d.kind == kind]
        late = sorted(d.latency_s for d in mine if d.latency_s is not None) or [0.0]
        rows = sum(int(d.logged.get("rows") or 0) for d in mine if d.outcome == "processed")
        out.append(f"{kind:<11}{len(mine):>7}{sum(d.how == 'rename' for d in mine):>8}"
                   f"{sum(d.how == 'in_place' for d in mine):>9}"
                   f"{sum(d.outcome == 'processed' for d in mine):>10}"
                   f"{sum(d.outcome == 'failed' for d in mine):>8}"
                   f"{rows:>10}"
                   f"{statistics.median(late):>8.3f}{late[-1]:>8.3f}")
    inserted = sum(int(d.logged.get("inserted") or 0) for d in drops)
    minutes = (drops[-1].at - drops[0].at) / 60 if len(drops) > 1 else 0.0
    out += ["", f"Throughput: {len(drops)} files in {minutes:.1f} min "
            f"({len(drops) / max(minutes, 1e-9):.1f} files/min); {inserted:,} fact rows inserted",
            f"Drained {soak.drain_s:.1f} s after the last drop; the producer waited "
            f"{soak.producer.waited_s:.1f} s in all for a name to be taken from the inbox",
            "", f"Verdict: {'FLAT' if flat['flat'] else 'NOT FLAT'}"
            f"{'' if flat['judged'] else f' (not judged: shorter than {JUDGE_MINUTES:g} min)'}; "
            f"{'all checks held' if verdict['ok'] else 'FAILED'}"]
    ok = {True: "  ok     ", False: "  FAILED "}
    shown = ok if flat["judged"] else {True: "  ok     ", False: "  (no)   "}
    if "rss_warm_mb" in flat:
        out.append(shown[flat["rss_flat"]] + f"RSS {flat['rss_warm_mb']:.1f} MB -> "
                   f"{flat['rss_end_mb']:.1f} MB: {flat['rss_growth_mb']:+.1f} MB, "
                   f"{flat['rss_growth_pct']:+.1f}% (limit +{RSS_GROWTH_MB:g} MB and "
                   f"+{RSS_GROWTH_PCT:g}%)")
        out.append(shown[flat["fds_flat"]] + f"open fds {flat['fds_warm']:g} -> "
                   f"{flat['fds_end']:g}: {flat['fds_growth']:+g} (limit +{FD_SLACK})")
    else:
        out.append(shown[False] + flat["reason"])
    acc, counts, daemon, log = (verdict[k] for k in ("accounting", "counts", "daemon", "log"))
    out.append(ok[acc["ok"]] + f"{acc['dropped']} dropped, {acc['processed']} in processed/, "
               f"{acc['failed']} in failed/: lost {len(acc['lost'])}, extra {len(acc['extra'])}, "
               f"left behind {acc['left_behind']}, failed without sidecar "
               f"{len(acc['failed_without_sidecar'])}")
    out.append(ok[counts["ok"]] + f"outcome and counts as expected for every drop (wrong: "
               f"{counts['wrong_total']}, unmatched log lines: "
               f"{len(counts['unmatched_log_lines'])})")
    out.append(ok[daemon["ok"]] + f"daemon alive to the end: {daemon['alive_at_end']}; "
               f"SIGTERM exit code {daemon['exit_code']}"
               + (f"; stalled: {daemon['stalled']}" if daemon["stalled"] else ""))
    out.append(ok[log["ok"]] + f"log: {log['problems_total']} unexpected warnings or errors, "
               f"{len(log['stray_lines'])} non-JSON lines")
    return "\n".join(out)
