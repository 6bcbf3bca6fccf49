"""The report's clock: every time shown is seconds relative to the fault."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pgha.drill.history import CheckerResult, Event, RunInfo


def nemesis_times(events: Iterable[Event], op: str) -> list[float]:
    """When the nemesis did `op` ("fault" or "heal"), in time order."""
    return sorted(e.time for e in events if e.process == "nemesis" and e.op == op)


def origin_of(events: Iterable[Event], info: RunInfo) -> float:
    """Time zero: the first fault (the outage checker's default too), else the run's start."""
    faults = nemesis_times(events, "fault")
    return faults[0] if faults else info.started


def origin_from_results(info: RunInfo, results: Sequence[CheckerResult]) -> float:
    """Time zero without the events: the outage checker recorded the fault time it used."""
    for r in results:
        t = r.metrics.get("fault_time") if r.name == "outage" else None
        if isinstance(t, int | float) and not isinstance(t, bool):
            return float(t)
    return info.started


def rel(t: float, origin: float) -> str:
    return f"{t - origin:+.1f} s"
