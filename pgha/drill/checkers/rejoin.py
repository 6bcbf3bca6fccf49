"""The rejoin verdict: after its last heal, the faulted node is back as a streaming replica on the
primary's timeline (or the only primary), within the deadline."""

from __future__ import annotations

from collections.abc import Iterable

from pgha.drill.checkers.views import REPLICA_ROLES, is_primary, nemesis_events, observations, target_of
from pgha.drill.checkers.wording import Metrics, seconds
from pgha.drill.history import CheckerResult, Event, RoleSample, sorted_events


def _describe(s: RoleSample) -> str:
    return (
        f"rest_role={s.rest_role} in_recovery={s.in_recovery} streaming={s.streaming} "
        f"timeline={s.timeline} accepts_writes={s.accepts_writes}"
    )


def check_rejoin(events: Iterable[Event], target: str, deadline_s: float | None = None) -> CheckerResult:
    """After its last heal, `target` must come back as a streaming replica on the primary's timeline.

    The primary's timeline is that of the latest sample of another node accepting writes. If no
    such sample carries a timeline, the target's own timeline before its fault stands in: the
    target must be on a later timeline if it was the primary then (a failover happened), on the
    same or a later one if it was a replica. If neither is known the timeline is not verified
    (metric timeline_check "unverified"). A target that is the only node accepting writes also
    counts as rejoined (rejoined_as "primary"): the fault was too short to fail over, or it was
    failed back.
    """
    evs = sorted_events(events)
    heals = [e for e in nemesis_events(evs, "heal") if target_of(e) == target]
    if not heals:
        return CheckerResult(
            "rejoin",
            False,
            f"There is no heal event for {target}, so its rejoin cannot be judged.",
            {"rejoin_s": None},
        )
    heal_t = heals[-1].time
    fault_t = max(
        (e.time for e in nemesis_events(evs, "fault") if target_of(e) == target and e.time <= heal_t), default=heal_t
    )

    latest: dict[str, tuple[float, RoleSample]] = {}
    pre_fault_timeline: int | None = None
    was_primary = False
    last_seen: RoleSample | None = None
    for o in observations(evs):
        s = o.sample
        if o.node == target and o.time >= heal_t:
            last_seen = s
            others = [(t, x) for node, (t, x) in latest.items() if node != target and x.accepts_writes]
            if is_primary(s) and not others:
                return _rejoined(o.time - heal_t, deadline_s, target, "primary", s.timeline, None, "primary")
            if (
                s.rest_role in REPLICA_ROLES
                and s.in_recovery is True
                and s.streaming
                and s.timeline is not None
            ):
                primary_tl = max(others, key=lambda p: p[0])[1].timeline if others else None
                if primary_tl is not None:
                    if s.timeline == primary_tl:
                        return _rejoined(
                            o.time - heal_t, deadline_s, target, "replica", s.timeline, primary_tl, "primary"
                        )
                elif pre_fault_timeline is not None:
                    if s.timeline > pre_fault_timeline or (
                        s.timeline == pre_fault_timeline and not was_primary
                    ):
                        return _rejoined(
                            o.time - heal_t, deadline_s, target, "replica", s.timeline, None, "pre-fault"
                        )
                else:
                    return _rejoined(
                        o.time - heal_t, deadline_s, target, "replica", s.timeline, None, "unverified"
                    )
        if o.node == target and o.time <= fault_t:
            was_primary = s.accepts_writes
            pre_fault_timeline = s.timeline if s.timeline is not None else pre_fault_timeline
        latest[o.node] = (o.time, s)

    details = [f"last sample of {target} after the heal: {_describe(last_seen) if last_seen else 'none'}"]
    primaries = [(t, x) for node, (t, x) in latest.items() if node != target and x.accepts_writes]
    if primaries:
        details.append(f"latest primary timeline: {max(primaries, key=lambda p: p[0])[1].timeline}")
    return CheckerResult(
        "rejoin",
        False,
        f"{target} never came back as a streaming replica on the primary's timeline after the heal.",
        {"rejoin_s": None, "heal_time": heal_t},
        details,
    )


def _rejoined(
    rejoin_s: float,
    deadline_s: float | None,
    target: str,
    role: str,
    timeline: int | None,
    primary_timeline: int | None,
    timeline_check: str,
) -> CheckerResult:
    metrics: Metrics = {
        "rejoin_s": rejoin_s,
        "rejoined_as": role,
        "timeline": timeline,
        "primary_timeline": primary_timeline,
        "timeline_check": timeline_check,
        "deadline_s": deadline_s,
    }
    if deadline_s is not None and rejoin_s > deadline_s:
        return CheckerResult(
            "rejoin",
            False,
            f"{target} rejoined as {role} after {seconds(rejoin_s)}, past the {seconds(deadline_s)} deadline.",
            metrics,
        )
    return CheckerResult(
        "rejoin",
        True,
        f"{target} rejoined as {role} on timeline {timeline} {seconds(rejoin_s)} after the heal.",
        metrics,
    )
