"""A run directory in, its report out: the only part of pgha.report that touches files.

Run directory contract (what the drill runner writes; see build_report):
    history.jsonl   the events, one JSON object a line (pgha.drill.history)      required
    meta.json       RunInfo's fields as one JSON object                          required
    final.json      FinalState's fields                                          optional*
    results.json    a list of CheckerResult field objects                        optional
    logs/*.log      raw component logs or excerpts, file stem = component name   optional
* results.json absent: the checkers run here, on history + final.json (without final.json the
  lost-writes check reports that there was no primary to verify against).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pgha.drill.checkers import run_all
from pgha.drill.checkers.alerts import alert_changes, describe
from pgha.drill.history import CheckerResult, Event, FinalState, LogLine, RunInfo, read_history
from pgha.model.spec import build_spec
from pgha.report.clock import origin_of
from pgha.report.narrative import explain
from pgha.report.plot import plot_run
from pgha.report.render import render_html, render_markdown
from pgha.report.seconds import stretches
from pgha.report.timeline import merge, node_of, parse_log

WINDOW_MARGIN_S = 5.0  # log lines this long before the start and after the end still explain the run
PLOT_NAME = "plot.png"


def _fields(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    # Ignore keys a newer runner may add; a missing required one still fails loudly.
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def load_info(path: Path) -> RunInfo:
    return RunInfo(**_fields(RunInfo, json.loads(path.read_text())))


def load_final(path: Path) -> FinalState:
    if not path.exists():
        return FinalState(primary=None, rows={}, caught_up={})
    return FinalState(**_fields(FinalState, json.loads(path.read_text())))


def load_results(path: Path) -> list[CheckerResult] | None:
    if not path.exists():
        return None
    return [CheckerResult(**_fields(CheckerResult, item)) for item in json.loads(path.read_text())]


def nemesis_lines(events: Iterable[Event]) -> list[LogLine]:
    """The nemesis's own actions as timeline lines, so the log table shows where the fault fell."""
    lines = []
    for e in events:
        if e.process != "nemesis" or e.op not in ("fault", "heal"):
            continue
        value = e.value if isinstance(e.value, dict) else {}
        target = value.get("target")
        message = f"{e.op} {value.get('fault', '?')} on {target or '?'}"
        lines.append(LogLine(e.time, "nemesis", target if isinstance(target, str) else None, e.op, message))
    return lines


def alert_lines(events: Iterable[Event]) -> list[LogLine]:
    """What the cluster's Prometheus raised during the run, as timeline lines."""
    return [LogLine(c.time, "prometheus", c.labels.get("name"), f"alert_{c.state}", describe(c))
            for c in alert_changes(list(events))]


def read_logs(log_dir: Path) -> list[list[LogLine]]:
    """Each component's meaningful lines (empty when there is no logs directory)."""
    if not log_dir.is_dir():
        return []
    return [
        parse_log(path.stem, path.read_text(errors="replace"), node_of(path.stem))
        for path in sorted(log_dir.glob("*.log"))
    ]


def build_report(run_dir: Path) -> tuple[Path, Path]:
    """Write timeline.json, plot.png, report.md and report.html into run_dir; return (md, html)."""
    events = read_history(run_dir / "history.jsonl")
    info = load_info(run_dir / "meta.json")
    results = load_results(run_dir / "results.json")
    if results is None:
        results = run_all(events, load_final(run_dir / "final.json"), info.target,
                          target_is_node=info.target in info.nodes)

    timeline = merge(
        [*read_logs(run_dir / "logs"), nemesis_lines(events), alert_lines(events)],
        info.started - WINDOW_MARGIN_S,
        info.ended + WINDOW_MARGIN_S,
    )
    (run_dir / "timeline.json").write_text(
        json.dumps([dataclasses.asdict(line) for line in timeline], indent=1) + "\n"
    )
    png = run_dir / PLOT_NAME
    plot_run(events, info, png)
    narrative = explain(info, results, timeline, events)
    seconds = stretches(info, results, timeline, origin_of(sorted(events, key=lambda e: e.time), info), events,
                        default=build_spec("default"))
    md = run_dir / "report.md"
    md.write_text(render_markdown(info, results, timeline, narrative, PLOT_NAME, seconds))
    page = run_dir / "report.html"
    page.write_text(render_html(info, results, timeline, narrative, png.read_bytes(), seconds))
    return md, page
