"""The report's clock: every time shown is seconds relative to the fault."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pgha.drill.history import CheckerResult, Event, LogLine, RunInfo


def nemesis_times(events: Iterable[Event], op: str) -> list[float]:
    """When the nemesis did `op` ("fault" or "heal"), in time order."""
    return sorted(e.time for e in events if e.process == "nemesis" and e.op == op)


def origin_of(events: Iterable[Event], info: RunInfo) -> float:
    """Time zero: the first fault (the outage checker's default too), else the run's start."""
    faults = nemesis_times(events, "fault")
    return faults[0] if faults else info.started


def origin_without_events(info: RunInfo, results: Sequence[CheckerResult], timeline: Sequence[LogLine]) -> float:
    """Time zero for a renderer, which gets no events: the nemesis's fault line in the timeline
    (build_report puts it there), else the fault time the outage checker used, else the start."""
    faults = [line.time for line in timeline if line.component == "nemesis" and line.kind == "fault"]
    if faults:
        return min(faults)
    for r in results:
        t = r.metrics.get("fault_time") if r.name == "outage" else None
        if isinstance(t, int | float) and not isinstance(t, bool):
            return float(t)
    return info.started


def rel(t: float, origin: float) -> str:
    """'+2.7 s'; a moment that rounds to the fault itself reads '0.0 s', never '-0.0 s'."""
    seconds = round(t - origin, 1)
    return "0.0 s" if seconds == 0 else f"{seconds:+.1f} s"
