"""The self-demotion verdict: a primary cut off from the DCS stops accepting writes on its own
within ttl (an extra verdict of the faults that cut a node off)."""

from __future__ import annotations

from collections.abc import Iterable

from pgha.drill.checkers.views import nemesis_events, observations, target_of
from pgha.drill.checkers.wording import seconds
from pgha.drill.history import CheckerResult, Event, sorted_events


def check_self_demotion(events: Iterable[Event], target: str, fault_time: float, limit_s: float) -> CheckerResult:
    """A primary cut off from the DCS must stop accepting writes on its own within `limit_s` (ttl):
    Patroni demotes it when it cannot renew the leader key. Judged from the monitor, which
    reaches the node from inside its own host and so still sees it while it is cut off."""
    evs = sorted_events(events)
    obs = [o for o in observations(evs) if o.node == target]
    before = [o for o in obs if o.time <= fault_time]
    if not before or not before[-1].sample.accepts_writes:
        return CheckerResult("self_demotion", True, f"{target} was not accepting writes when it was cut off.",
                             {"demoted_after_s": None, "limit_s": limit_s})
    heals = [e.time for e in nemesis_events(evs, "heal") if target_of(e) == target and e.time > fault_time]
    until = heals[0] if heals else float("inf")
    after = [o for o in obs if fault_time < o.time <= until]
    # Demoted: the first sample after the last one that still accepted writes. A sample with no
    # answer counts as not accepting: the monitor reaches the node from its own host, so no answer
    # means PostgreSQL is down or restarting, not that the network hides it.
    last_writable = max((i for i, o in enumerate(after) if o.sample.accepts_writes), default=-1)
    demoted = after[last_writable + 1] if last_writable + 1 < len(after) else None
    if demoted is None:
        return CheckerResult("self_demotion", False,
                             f"{target} never stopped accepting writes while it was cut off.",
                             {"demoted_after_s": None, "limit_s": limit_s})
    took = demoted.time - fault_time
    ok = took <= limit_s
    return CheckerResult("self_demotion", ok,
                         f"{target} stopped accepting writes {seconds(took)} after it was cut off "
                         f"({'within' if ok else 'beyond'} ttl {limit_s:.0f} s).",
                         {"demoted_after_s": round(took, 3), "limit_s": limit_s})
