"""Checkers: pure functions from a drill's history (and the final state) to a verdict with numbers.

Nothing here does I/O; every function takes events (in any order: they are sorted by time, ties
keep their history order) and returns plain values, so the same history always gives the same
verdict and the report can re-run the checkers on a saved history.

One module per verdict (`outage`, `lost_writes`, `split_brain`, `rejoin`, `healthy_after_heal`,
`self_demotion`); `views` reads the history for them and for the report (paired writes, the
monitor's samples, split-brain windows, role bands, write rate); `registry` holds the checkers by
name and composes the verdicts a drill asks for (`compose`, `run_all`). Every name is re-exported
here.
"""

from pgha.drill.checkers.alerts import check_alerts
from pgha.drill.checkers.healthy_after_heal import check_healthy_after_heal
from pgha.drill.checkers.lost_writes import check_lost_writes
from pgha.drill.checkers.outage import (
    MIN_STALL_S,
    STALL_FACTOR,
    check_outage,
    client_summary,
    client_view,
    percentile,
)
from pgha.drill.checkers.registry import CHECKERS, STANDARD, Checker, Evidence, compose, instead_for, run_all
from pgha.drill.checkers.rejoin import check_rejoin
from pgha.drill.checkers.self_demotion import check_self_demotion
from pgha.drill.checkers.split_brain import check_split_brain, conflicting_writes, stale_acknowledged
from pgha.drill.checkers.views import (
    PRIMARY_ROLES,
    REPLICA_ROLES,
    Observation,
    RoleLabel,
    Window,
    Write,
    WriteResult,
    observations,
    pair_writes,
    role_intervals,
    split_brain_windows,
    writable_intervals,
    write_rate,
)
from pgha.drill.checkers.wording import MAX_DETAILS, Metrics

__all__ = [
    "CHECKERS",
    "MAX_DETAILS",
    "MIN_STALL_S",
    "PRIMARY_ROLES",
    "REPLICA_ROLES",
    "STALL_FACTOR",
    "STANDARD",
    "Checker",
    "Evidence",
    "Metrics",
    "Observation",
    "RoleLabel",
    "Window",
    "Write",
    "WriteResult",
    "check_alerts",
    "check_healthy_after_heal",
    "check_lost_writes",
    "check_outage",
    "check_rejoin",
    "check_self_demotion",
    "check_split_brain",
    "client_summary",
    "client_view",
    "compose",
    "conflicting_writes",
    "instead_for",
    "observations",
    "pair_writes",
    "percentile",
    "role_intervals",
    "run_all",
    "split_brain_windows",
    "stale_acknowledged",
    "writable_intervals",
    "write_rate",
]
