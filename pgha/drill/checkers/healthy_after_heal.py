"""The healthy-after-heal verdict: for a fault that hit no node (a DCS member, or all of them), the
cluster is healthy again after the last heal. It fills the rejoin verdict of such a drill."""

from __future__ import annotations

from collections.abc import Iterable

from pgha.drill.checkers.views import nemesis_events, target_of
from pgha.drill.checkers.wording import seconds
from pgha.drill.history import CheckerResult, Event, sorted_events


def check_healthy_after_heal(events: Iterable[Event], target: str) -> CheckerResult:
    """For faults that hit no node (a DCS member, or all of them): the cluster must be healthy
    again after the last heal, as the drill observed it (its "rejoined" phase)."""
    evs = sorted_events(events)
    heals = [e for e in nemesis_events(evs, "heal") if target_of(e) == target]
    if not heals:
        return CheckerResult("rejoin", False, f"There is no heal event for {target}.", {"rejoin_s": None})
    heal_time = heals[-1].time
    rejoined = [e for e in evs if e.op == "phase" and e.process == "drill" and e.time >= heal_time
                and isinstance(e.value, dict) and e.value.get("phase") == "rejoined"]
    if not rejoined:
        return CheckerResult("rejoin", False, f"The cluster was not healthy again after healing {target}.",
                             {"rejoin_s": None})
    took = rejoined[0].time - heal_time
    return CheckerResult("rejoin", True, f"The cluster was healthy again {seconds(took)} after healing {target}.",
                         {"rejoin_s": took, "rejoined_as": "cluster"})
