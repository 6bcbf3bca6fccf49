"""A run's report as Markdown (next to plot.png) or as one self-contained HTML page.

Both show the same things in the same order: what the run was (naming the new primary), the
checkers' verdicts, the plot, the narrative and the merged log timeline with times relative to
the fault. The HTML page carries its CSS and its PNG inline, so it can be mailed or archived
alone; every string that came from a log or a checker is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import UTC, datetime

from pgha.drill.history import CheckerResult, LogLine, RunInfo
from pgha.report.clock import origin_without_events
from pgha.report.seconds import Stretch

# The metrics a reader looks at first, per checker; the rest stay in results.json.
KEY_METRICS: dict[str, tuple[str, ...]] = {
    "outage": ("outage_s", "failover_s", "routing_s", "writes_failed", "writes_indeterminate"),
    "lost_writes": ("acknowledged", "lost", "indeterminate", "indeterminate_committed", "missing_on_replicas"),
    "split_brain": ("window_s", "windows", "conflicting_writes"),
    "rejoin": ("rejoin_s", "rejoined_as", "timeline", "timeline_check"),
}
# Epoch timestamps mean nothing to a reader next to durations; they are shown relative elsewhere.
_ABSOLUTE = frozenset({"fault_time", "heal_time", "t_last_ok", "t_recovered"})
# Lines that carry the failover's story, highlighted in the HTML timeline.
_KEY_KINDS = frozenset({
    "fault", "heal", "lock_acquired", "promoted", "demoted", "lock_free", "pg_promoted", "rewind",
    "backend_up", "backend_down", "no_server", "pg_crash", "fenced", "alert_firing", "alert_resolved",
})


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"
    return str(value)


def key_metrics(result: CheckerResult) -> list[tuple[str, str]]:
    names = KEY_METRICS.get(result.name) or tuple(k for k in result.metrics if k not in _ABSOLUTE)[:5]
    return [(k, _fmt(result.metrics[k])) for k in names if k in result.metrics]


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _new_primary(info: RunInfo) -> str:
    if info.new_primary is None:
        return "none (no node took over)"
    if info.new_primary == info.old_primary:
        return f"{info.new_primary} (unchanged)"
    return info.new_primary


def _facts(info: RunInfo) -> list[tuple[str, str]]:
    facts = [
        ("New primary", _new_primary(info)),
        ("Old primary", info.old_primary or "unknown"),
        ("Fault", f"{info.fault} on {info.target}"),
        ("Cluster / profile", f"{info.cluster} / {info.profile}"),
        ("Writes", f"{info.rate:g}/s via {info.via}"),
        ("Run", f"{_utc(info.started)}, {info.ended - info.started:.1f} s"),
        ("Nodes", ", ".join(info.nodes) or "unknown"),
    ]
    patroni = [
        f"{name}={_fmt(v)}"
        for name, v in (("ttl", info.ttl), ("loop_wait", info.loop_wait), ("synchronous_mode", info.synchronous_mode))
        if v is not None
    ]
    if patroni:
        facts.append(("Patroni", ", ".join(patroni)))
    return facts


def _verdict(results: Sequence[CheckerResult]) -> str:
    if not results:
        return "NO CHECKS"
    return "PASS" if all(r.passed for r in results) else "FAIL"


def _t(line: LogLine, origin: float) -> str:
    return f"{line.time - origin:+.3f}"


# ---------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    # A pipe ends a cell and a newline ends the row; HTML in a log line must stay text.
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def render_markdown(
    info: RunInfo, results: list[CheckerResult], timeline: list[LogLine], narrative: str, plot_name: str,
    seconds: Sequence[Stretch] = (),
) -> str:
    origin = origin_without_events(info, results, timeline)
    out = [
        f"# Drill {info.cluster}: {info.fault} on {info.target} - {_verdict(results)}",
        "",
        f"**New primary: {_md_cell(_new_primary(info))}**",
        "",
        *(f"- {name}: {_md_cell(value)}" for name, value in _facts(info)[1:]),
        "",
        "## Verdict",
        "",
        "| Checker | Result | Summary | Key metrics |",
        "|---|---|---|---|",
        *(
            f"| {r.name} | {'PASS' if r.passed else 'FAIL'} | {_md_cell(r.summary)} | "
            f"{_md_cell(', '.join(f'{k}={v}' for k, v in key_metrics(r)))} |"
            for r in results
        ),
        "",
        *(f"- {r.name}: {_md_cell(d)}" for r in results for d in r.details),
        "",
        f"![writes and roles over time]({plot_name})",
        "",
        "## What happened",
        "",
        narrative,
        "",
        *_seconds_markdown(seconds, origin),
        f"## Timeline (seconds since {'the fault' if origin != info.started else 'the run started'})",
        "",
        "| t (s) | component | kind | message |",
        "|---:|---|---|---|",
        *(
            f"| {_t(line, origin)} | {_md_cell(line.component)} | {_md_cell(line.kind)} | {_md_cell(line.message)} |"
            for line in timeline
        ),
        "",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------- HTML

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
.verdict { display: inline-block; padding: .1em .6em; border-radius: 4px; color: #fff; font-weight: bold; }
.pass { background: #2ca02c; } .fail { background: #d62728; } .none { background: #888; }
.primary { font-size: 1.25em; margin: .6em 0; }
.primary strong { background: #e8f1fb; padding: .1em .4em; border-radius: 4px; }
table { border-collapse: collapse; margin: .8em 0; width: 100%; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
table.facts { width: auto; } table.facts th { font-weight: normal; color: #555; }
td.ok { color: #2ca02c; font-weight: bold; } td.bad { color: #d62728; font-weight: bold; }
table.timeline td { font: 12px/1.3 ui-monospace, monospace; }
table.timeline td.t { text-align: right; white-space: nowrap; }
tr.key td { background: #fff8dc; }
img { max-width: 100%; border: 1px solid #ddd; }
p.narrative { font-size: 1.05em; max-width: 60em; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _verdict_row(r: CheckerResult) -> str:
    css, word = ("ok", "PASS") if r.passed else ("bad", "FAIL")
    metrics = "<br>".join(f"{_e(k)} = {_e(v)}" for k, v in key_metrics(r))
    details = (
        "<details><summary>details</summary><ul>" + "".join(f"<li>{_e(d)}</li>" for d in r.details) + "</ul></details>"
        if r.details
        else ""
    )
    return (
        f'<tr><td>{_e(r.name)}</td><td class="{css}">{word}</td><td>{_e(r.summary)}{details}</td>'
        f"<td>{metrics}</td></tr>\n"
    )


def _timeline_row(line: LogLine, origin: float) -> str:
    css = ' class="key"' if line.kind in _KEY_KINDS else ""
    return (
        f'<tr{css}><td class="t">{_t(line, origin)}</td><td>{_e(line.component)}</td>'
        f"<td>{_e(line.kind)}</td><td>{_e(line.message)}</td></tr>"
    )


def render_html(
    info: RunInfo, results: list[CheckerResult], timeline: list[LogLine], narrative: str, png: bytes,
    seconds: Sequence[Stretch] = (),
) -> str:
    origin = origin_without_events(info, results, timeline)
    verdict = _verdict(results)
    css_class = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "none")
    title = f"Drill {info.cluster}: {info.fault} on {info.target}"
    facts = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _facts(info)[1:])
    verdict_rows = "".join(_verdict_row(r) for r in results)
    timeline_rows = "".join(_timeline_row(line, origin) for line in timeline)
    since = "the fault" if origin != info.started else "the run started"
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)} <span class="verdict {css_class}">{verdict}</span></h1>
<p class="primary">New primary: <strong>{_e(_new_primary(info))}</strong></p>
<table class="facts">{facts}</table>
<h2>Verdict</h2>
<table class="verdict-table">
<tr><th>Checker</th><th>Result</th><th>Summary</th><th>Key metrics</th></tr>
{verdict_rows}
</table>
<h2>Writes and roles</h2>
<img alt="writes per 100 ms and each node's role over time" src="data:image/png;base64,{image}">
<h2>What happened</h2>
<p class="narrative">{_e(narrative)}</p>
{_seconds_html(seconds, origin)}
<h2>Timeline <small>(seconds since {since})</small></h2>
<table class="timeline">
<tr><th>t (s)</th><th>component</th><th>kind</th><th>message</th></tr>
{timeline_rows}
</table>
</body>
</html>
"""


_SECONDS_INTRO = ("From the fault to the first write acknowledged after it, stretch by stretch, and whose time "
                  "each was (a stretch the logs do not show is joined to the next, not guessed).")


_INSTEAD = "the default profile sets instead"


def _seconds_markdown(seconds: Sequence[Stretch], origin: float) -> list[str]:
    if not seconds:
        return []
    # The column only where some stretch has an answer (never in a default-profile run).
    extra = any(s.instead for s in seconds)
    return [
        "## Where the seconds went",
        "",
        _SECONDS_INTRO,
        "",
        "| stretch | from (s) | to (s) | seconds | whose time | why |" + (f" {_INSTEAD} |" if extra else ""),
        "|---|---:|---:|---:|---|---|" + ("---|" if extra else ""),
        *(f"| {_md_cell(s.name)} | {s.start - origin:+.2f} | {s.end - origin:+.2f} | {s.seconds:.2f} | "
          f"{_md_cell(s.owner)} | {_md_cell(s.why)} |" + (f" {_md_cell(s.instead)} |" if extra else "")
          for s in seconds),
        "",
    ]


def _seconds_html(seconds: Sequence[Stretch], origin: float) -> str:
    if not seconds:
        return ""
    extra = any(s.instead for s in seconds)
    rows = "".join(f"<tr><td>{_e(s.name)}</td><td>{s.start - origin:+.2f}</td><td>{s.end - origin:+.2f}</td>"
                   f"<td>{s.seconds:.2f}</td><td>{_e(s.owner)}</td><td>{_e(s.why)}</td>"
                   + (f"<td>{_e(s.instead)}</td>" if extra else "") + "</tr>" for s in seconds)
    return (f"<h2>Where the seconds went</h2>\n<p>{_e(_SECONDS_INTRO)}</p>\n<table class=\"seconds\">"
            f"<tr><th>stretch</th><th>from (s)</th><th>to (s)</th><th>seconds</th><th>whose time</th>"
            f"<th>why</th>" + (f"<th>{_e(_INSTEAD)}</th>" if extra else "") + f"</tr>{rows}</table>")
