"""The lab's question, answered in prose: what happened after the primary was cut off?

Every sentence is built from the run's data (checker metrics, the monitor's events, the merged
log timeline); where the data is missing the paragraph says so rather than guessing. Times are
seconds relative to the fault (the first nemesis "fault" event, else the run's start).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pgha.drill.checkers import observations, split_brain_windows
from pgha.drill.history import CheckerResult, Event, LogLine, RunInfo
from pgha.report.clock import nemesis_times, origin_of, rel

_TIMELINE_ID = re.compile(r"timeline(?: ID)?:? (\d+)", re.I)
_FOLLOWED = re.compile(r"following a leader \((\S+?)\)")


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _result(results: Sequence[CheckerResult], name: str) -> CheckerResult | None:
    return next((r for r in results if r.name == name), None)


def _first(
    timeline: Iterable[LogLine], kind: str, after: float, node: str | None = None, prefix: str = ""
) -> LogLine | None:
    """The first line of `kind` at or after `after`, about `node` (any node when None)."""
    return next(
        (
            line
            for line in timeline
            if line.kind == kind
            and line.time >= after
            and (node is None or line.node == node)
            and line.message.startswith(prefix)
        ),
        None,
    )


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def new_primary_of(info: RunInfo, results: Sequence[CheckerResult]) -> str | None:
    """The node that took over: the runner's word, else the outage checker's."""
    if info.new_primary:
        return info.new_primary
    outage = _result(results, "outage")
    found = outage.metrics.get("new_primary") if outage is not None else None
    return found if isinstance(found, str) else None


def _fault_sentence(info: RunInfo, events: Sequence[Event]) -> str:
    faults = nemesis_times(events, "fault")
    if not faults:
        return (
            f"The history holds no fault event (the run was meant to apply {info.fault} to {info.target}), "
            "so times below count from the start of the run."
        )
    role = (
        "the primary"
        if info.target == info.old_primary
        else f"a replica (the primary was {info.old_primary})"
        if info.old_primary
        else "a node whose role before the fault is unknown"
    )
    more = f" It was the first of {len(faults)} faults in the run." if len(faults) > 1 else ""
    return f"At 0 s the drill applied {info.fault} to {info.target}, {role}.{more}"


def _writable_again(events: Sequence[Event], node: str, after: float) -> float | None:
    """When the monitor first saw `node` accept writes after having seen it not accept them."""
    lost = False
    for o in observations(events):
        if o.node != node or o.time < after:
            continue
        if not o.sample.accepts_writes:
            lost = True
        elif lost:
            return o.time
    return None


def _takeover_parts(
    node: str, timeline: Sequence[LogLine], origin: float, seen_writable: float | None, again: bool
) -> list[str]:
    """What the logs and the monitor say about `node` becoming primary, in time order."""
    parts: list[tuple[float, str]] = []
    if not again:
        freed = _first(timeline, "lock_free", origin)
        if freed is not None:
            who = freed.node or freed.component
            parts.append((freed.time, f"Patroni on {who} saw the leader lock free at {rel(freed.time, origin)}"))
    locked = _first(timeline, "lock_acquired", origin, node)
    if locked is not None:
        took = "took the leader lock again" if again else "acquired the leader lock"
        parts.append((locked.time, f"{node} {took} at {rel(locked.time, origin)}"))
    promoted = _first(timeline, "pg_promoted", origin, node)
    if promoted is not None:
        new_tl = next(
            (
                m[1]
                for line in timeline
                if line.kind == "pg_promoted" and line.node == node and line.time >= origin
                and (m := _TIMELINE_ID.search(line.message)) is not None
            ),
            None,
        )
        onto = f" onto timeline {new_tl}" if new_tl else ""
        parts.append((promoted.time, f"its PostgreSQL was promoted{onto} at {rel(promoted.time, origin)}"))
    if seen_writable is not None:
        again_ = " again" if again else ""
        parts.append((seen_writable, f"the monitor saw it accept writes{again_} at {rel(seen_writable, origin)}"))
    routed = _first(timeline, "backend_up", origin, node, "Server primary/")
    if routed is not None:
        did = "marked it up as the primary again" if again else "switched its primary backend to it"
        parts.append((routed.time, f"HAProxy {did} at {rel(routed.time, origin)}"))
    return [text for _, text in sorted(parts, key=lambda p: p[0])]


def _takeover_sentence(
    info: RunInfo, results: Sequence[CheckerResult], timeline: Sequence[LogLine], events: Sequence[Event],
    origin: float,
) -> str:
    new, old = new_primary_of(info, results), info.old_primary
    if new is None:
        grabbed = _first(timeline, "lock_acquired", origin)
        said = (
            f", although the logs show {grabbed.node or grabbed.component} acquiring the leader lock at "
            f"{rel(grabbed.time, origin)}"
            if grabbed is not None
            else ""
        )
        return f"No node took over: the monitor never saw a new primary{said}."
    if new == old:
        if info.target != old:
            return f"The primary did not change: {old} kept the leader role throughout."
        parts = _takeover_parts(new, timeline, origin, _writable_again(events, new, origin), again=True)
        if parts:
            return f"No other node took over; {new} came back as the primary itself: {_join(parts)}."
        return f"No other node took over: {new} was the primary again by the end of the run."

    outage = _result(results, "outage")
    # The checker's failover time is about the node *it* saw take writes first; only quote it
    # when that is the node the run names as the new primary.
    same = outage is not None and outage.metrics.get("new_primary") == new
    failover_s = _num(outage.metrics.get("failover_s")) if outage is not None and same else None
    seen = origin + failover_s if failover_s is not None else None
    parts = _takeover_parts(new, timeline, origin, seen, again=False)
    if not parts:
        return f"{new} took over as the new primary, but neither the logs nor the monitor say when."
    return f"{new} took over as the new primary: {_join(parts)}."


def _writes_sentence(results: Sequence[CheckerResult], origin: float) -> str:
    outage = _result(results, "outage")
    if outage is None:
        return "Write availability was not checked."
    m = outage.metrics
    failed, unknown = m.get("writes_failed") or 0, m.get("writes_indeterminate") or 0
    counts = f"{failed} write(s) failed and {unknown} had an unknown outcome"
    outage_s = _num(m.get("outage_s"))
    if outage_s is None:
        if not m.get("writes_ok") and not failed and not unknown:
            return "The history has no writes, so how long writes failed cannot be told."
        return f"Writes never recovered after the fault: {counts}."
    if outage_s == 0:
        return f"No write failed or stalled after the fault ({counts} over the whole run)."
    last_ok, recovered = _num(m.get("t_last_ok")), _num(m.get("t_recovered"))
    span = ""
    if last_ok is not None and recovered is not None:
        span = (
            f", from the last acknowledged write at {rel(last_ok, origin)} "
            f"to the first new one at {rel(recovered, origin)}"
        )
    gap, errors = _num(m.get("max_gap_s")), _num(m.get("error_outage_s"))
    stalled = (
        " (the longest gap between acknowledged writes: the client saw a stall, not only errors)"
        if m.get("stalled") == "yes" and gap is not None and (errors is None or gap > errors)
        else ""
    )
    return f"Writes were unavailable for {outage_s:.1f} s{span}{stalled}; {counts}."


def _lost_sentence(results: Sequence[CheckerResult]) -> str:
    lost = _result(results, "lost_writes")
    if lost is None:
        return "Whether acknowledged writes survived was not checked."
    m = lost.metrics
    acked = m.get("acknowledged", 0)
    if "lost" not in m:  # the checker could not compare: no final primary, or no rows read
        return f"Whether the {acked} acknowledged write(s) survived could not be verified: {lost.summary}"
    if lost.passed:
        unknown = m.get("indeterminate") or 0
        committed = (
            f", and {m.get('indeterminate_committed', 0)} of the {unknown} write(s) with an unknown outcome "
            "had committed"
            if unknown
            else ""
        )
        return f"Nothing was lost: all {acked} acknowledged writes were found on the final primary{committed}."
    return f"The lost-writes check failed: {lost.summary}"


def _split_brain_sentence(results: Sequence[CheckerResult], events: Sequence[Event], origin: float) -> str:
    split = _result(results, "split_brain")
    if split is None:
        return "Split-brain was not checked."
    if split.passed:
        return "There was no split-brain: the monitor never saw two nodes accept writes at once."
    window = _num(split.metrics.get("window_s")) or 0.0
    pairs = split.metrics.get("conflicting_writes") or 0
    windows = split_brain_windows(events, _num(split.metrics.get("sample_hold_s")) or 1.0)
    where = ""
    if windows:
        start, end, nodes = windows[0]
        more = f" (the first of {len(windows)} such windows)" if len(windows) > 1 else ""
        together = "both" if len(nodes) == 2 else "all"
        where = (
            f"; {_join(list(nodes))} {together} accepted writes from {rel(start, origin)} to "
            f"{rel(end, origin)}{more}"
        )
    witness = (
        f"{pairs} pair(s) of acknowledged writes on different nodes overlapped in time"
        if pairs
        else "no two acknowledged writes on different nodes overlapped in time"
    )
    return f"There was split-brain for {window:.2f} s in total{where}; {witness}."


def _heal_time(events: Sequence[Event], node: str) -> float | None:
    heals = [
        e.time for e in events
        if e.process == "nemesis" and e.op == "heal" and isinstance(e.value, dict) and e.value.get("target") == node
    ]
    return heals[-1] if heals else None


def _demoted_sentence(info: RunInfo, timeline: Sequence[LogLine], events: Sequence[Event], origin: float) -> str | None:
    """The faulted node's Patroni giving up the primary role while the fault lasted (a partition, a
    DCS outage); a demotion after the heal is told with the node's return instead."""
    demoted = _first(timeline, "demoted", origin, info.target)
    heal = _heal_time(events, info.target)
    if demoted is None or (heal is not None and demoted.time >= heal):
        return None
    return f"Patroni on {info.target} demoted it at {rel(demoted.time, origin)} (\u201c{demoted.message}\u201d)."


def _return_steps(
    who: str, timeline: Sequence[LogLine], heal: float, origin: float, timeline_id: object
) -> list[str]:
    """What the faulted node's logs show it doing after the heal, in time order."""
    steps: list[tuple[float, str]] = []
    demoted = _first(timeline, "demoted", heal, who)
    if demoted is not None:
        steps.append(
            (demoted.time, f"was demoted by its Patroni at {rel(demoted.time, origin)} (\u201c{demoted.message}\u201d)")
        )
    rewind = _first(timeline, "rewind", heal, who)
    if rewind is not None:
        steps.append((rewind.time, f"ran pg_rewind at {rel(rewind.time, origin)}"))
    follow = next(
        (
            (line.time, m[1])
            for line in timeline
            if line.kind == "following" and line.node == who and line.time >= heal
            and (m := _FOLLOWED.search(line.message)) is not None
        ),
        None,
    )
    if follow is not None:
        steps.append((follow[0], f"followed {follow[1]} from {rel(follow[0], origin)}"))
    # A rejoining old primary first streams its own, old timeline and is cut off where the
    # histories fork; the line that matters is the first on the timeline it rejoined.
    streams = [line for line in timeline if line.kind == "streaming" and line.node == who and line.time >= heal]
    on_tl = [line for line in streams if timeline_id is not None and line.message.endswith(f"timeline {timeline_id}")]
    streaming = on_tl[0] if on_tl else streams[0] if streams else None
    if streaming is not None:
        steps.append((streaming.time, f"streamed WAL from the primary from {rel(streaming.time, origin)}"))
    return [what for _, what in sorted(steps, key=lambda step: step[0])]


def _return_sentence(
    info: RunInfo, results: Sequence[CheckerResult], timeline: Sequence[LogLine], events: Sequence[Event],
    origin: float,
) -> str:
    who = info.target
    heal = _heal_time(events, who)
    if heal is None:
        return f"{who} was not healed during the run, so its return was not observed."
    rejoin = _result(results, "rejoin")
    tl = rejoin.metrics.get("timeline") if rejoin is not None else None
    done = _return_steps(who, timeline, heal, origin, tl)
    after = f"After the heal at {rel(heal, origin)}, {who}"

    rejoin_s = _num(rejoin.metrics.get("rejoin_s")) if rejoin is not None else None
    if rejoin is not None and rejoin_s is not None:
        role = rejoin.metrics.get("rejoined_as") or "replica"
        on = f" on timeline {tl}" if tl is not None else ""
        late = "" if rejoin.passed else ", past the deadline"
        return f"{after} {_join([*done, f'was back as a {role}{on}, {rejoin_s:.1f} s after the heal{late}'])}."
    if done:
        return (
            f"{after} {_join(done)}, but the monitor never saw it back as a streaming replica on the "
            "primary's timeline."
        )
    return (
        f"{after} did not come back: the monitor never saw it as a streaming replica on the primary's "
        "timeline, and its logs show no rejoin."
    )


def explain(
    info: RunInfo, results: list[CheckerResult], timeline: list[LogLine], events: Iterable[Event]
) -> str:
    """One plain-English paragraph (6 sentences or so) on what the run showed."""
    evs = sorted(events, key=lambda e: e.time)
    origin = origin_of(evs, info)
    lines = sorted(timeline, key=lambda line: line.time)
    return " ".join(
        [
            _fault_sentence(info, evs),
            _takeover_sentence(info, results, lines, evs, origin),
            _writes_sentence(results, origin),
            _lost_sentence(results),
            _split_brain_sentence(results, evs, origin),
            *filter(None, [_demoted_sentence(info, lines, evs, origin)]),
            _return_sentence(info, results, lines, evs, origin),
        ]
    )
