"""Checkers composed by name: every checker the drill has, and the verdicts a drill asks for.

A checker takes the `Evidence` (the history, the final state, the faulted target and the drill's
limits) and returns one verdict. `CHECKERS` holds them by name; `compose` runs the verdicts asked
for, in the order asked, and returns them keyed by verdict name. A caller changes one verdict by
its name, never by its place in a list: a fault that hit no node has its `rejoin` verdict given
by the `healthy_after_heal` checker (`instead={"rejoin": "healthy_after_heal"}`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pgha.drill.checkers.alerts import check_alerts
from pgha.drill.checkers.archive import check_archive_caught_up
from pgha.drill.checkers.fencing import check_not_fenced
from pgha.drill.checkers.healthy_after_heal import check_healthy_after_heal
from pgha.drill.checkers.lost_writes import check_lost_writes
from pgha.drill.checkers.outage import check_outage
from pgha.drill.checkers.pitr import check_pitr_exact
from pgha.drill.checkers.rejoin import check_rejoin
from pgha.drill.checkers.rpo import check_rpo
from pgha.drill.checkers.self_demotion import check_self_demotion
from pgha.drill.checkers.split_brain import check_split_brain
from pgha.drill.history import CheckerResult, Event, FinalState, sorted_events


@dataclass(frozen=True)
class Evidence:
    """What a checker judges; each checker reads the fields it needs."""

    events: Sequence[Event]  # the history (sorted by time once, by whoever builds the evidence)
    final: FinalState  # what the drill read after the load stopped
    target: str  # the faulted node, or a host that is not a node (dcs0, all, haproxy)
    fault_time: float | None = None  # None: the outage checker takes the first nemesis fault
    limit_s: float | None = None  # the longest outage that passes (None: any, once writes recover)
    deadline_s: float | None = None  # the longest rejoin that passes (None: any)
    sample_hold_s: float = 1.0  # how long a monitor sample says a node accepts writes
    ttl: float = 0.0  # Patroni's ttl: how soon a cut-off primary must demote itself
    rpo_bound_s: float | None = None  # the oldest acknowledged write a disaster may lose (archive_timeout+)


Checker = Callable[[Evidence], CheckerResult]


def _self_demotion(e: Evidence) -> CheckerResult:
    if e.fault_time is None:
        raise ValueError("the self_demotion checker needs the fault's time")
    return check_self_demotion(e.events, e.target, e.fault_time, e.ttl)


CHECKERS: dict[str, Checker] = {
    "outage": lambda e: check_outage(e.events, e.fault_time, e.limit_s),
    "lost_writes": lambda e: check_lost_writes(e.events, e.final),
    "split_brain": lambda e: check_split_brain(e.events, e.sample_hold_s, e.final),
    "rejoin": lambda e: check_rejoin(e.events, e.target, e.deadline_s),
    "healthy_after_heal": lambda e: check_healthy_after_heal(e.events, e.target),
    "self_demotion": _self_demotion,
    "archive_caught_up": lambda e: check_archive_caught_up(e.events, e.final, e.fault_time),
    "pitr_exact": lambda e: check_pitr_exact(e.events, e.fault_time),
    "rpo": lambda e: check_rpo(e.events, e.final, e.fault_time, e.rpo_bound_s),
    "not_fenced": lambda e: check_not_fenced(e.final),
    "alerts": lambda e: check_alerts(e.events),
}

# Every drill's verdicts, in report order.
STANDARD: tuple[str, ...] = ("outage", "lost_writes", "split_brain", "rejoin")


def compose(
    evidence: Evidence, verdicts: Iterable[str] = STANDARD, instead: Mapping[str, str] | None = None
) -> dict[str, CheckerResult]:
    """verdict name -> its result, in the order of `verdicts`. Each verdict is given by the checker
    of its own name, or by the one `instead` names for it. An unknown name is a KeyError."""
    chosen = instead or {}
    return {verdict: CHECKERS[chosen.get(verdict, verdict)](evidence) for verdict in verdicts}


def instead_for(target_is_node: bool) -> dict[str, str]:
    """Which verdicts another checker gives, by name: a fault that hit no node (the DCS) is judged
    by whether the cluster was healthy again after the heal instead of by a node's rejoin."""
    return {} if target_is_node else {"rejoin": "healthy_after_heal"}


def run_all(
    events: Iterable[Event],
    final: FinalState,
    target: str,
    *,
    fault_time: float | None = None,
    limit_s: float | None = None,
    deadline_s: float | None = None,
    sample_hold_s: float = 1.0,
    target_is_node: bool = True,
) -> list[CheckerResult]:
    """The standard verdicts in report order, sorting the history once."""
    evidence = Evidence(sorted_events(events), final, target, fault_time, limit_s, deadline_s, sample_hold_s)
    return list(compose(evidence, instead=instead_for(target_is_node)).values())
