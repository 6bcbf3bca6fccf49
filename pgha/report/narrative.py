"""The lab's question, answered in prose: what happened after the primary was cut off?

Every sentence is built from the run's data (checker metrics, the monitor's events, the merged
log timeline); where the data is missing the paragraph says so rather than guessing. Times are
seconds relative to the fault (the first nemesis "fault" event, else the run's start).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

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


def _takeover_sentence(
    info: RunInfo, results: Sequence[CheckerResult], timeline: Sequence[LogLine], origin: float
) -> str:
    new = new_primary_of(info, results)
    outage = _result(results, "outage")
    failover_s = _num(outage.metrics.get("failover_s")) if outage is not None else None
    if new is None or new == info.old_primary:
        grabbed = next(
            (line for line in timeline if line.kind == "lock_acquired" and line.time >= origin),
            None,
        )
        if info.target != info.old_primary and info.old_primary is not None:
            return f"The primary did not change: {info.old_primary} kept the leader role throughout."
        said = (
            f", although the logs show {grabbed.node or grabbed.component} acquiring the leader lock at "
            f"{rel(grabbed.time, origin)}"
            if grabbed is not None
            else ""
        )
        if new == info.old_primary and new is not None:
            return f"No other node took over: {new} was the primary again by the end of the run{said}."
        return f"No node took over: the monitor never saw a new primary{said}."

    parts: list[str] = []
    freed = _first(timeline, "lock_free", origin)
    if freed is not None:
        who = freed.node or freed.component
        parts.append(f"Patroni on {who} saw the leader lock free at {rel(freed.time, origin)}")
    locked = _first(timeline, "lock_acquired", origin, new)
    if locked is not None:
        parts.append(f"{new} acquired the leader lock at {rel(locked.time, origin)}")
    promoted = _first(timeline, "pg_promoted", origin, new)
    if promoted is not None:
        new_tl = next(
            (
                m[1]
                for line in timeline
                if line.kind == "pg_promoted" and line.node == new and line.time >= origin
                and (m := _TIMELINE_ID.search(line.message)) is not None
            ),
            None,
        )
        onto = f" onto timeline {new_tl}" if new_tl else ""
        parts.append(f"its PostgreSQL was promoted{onto} at {rel(promoted.time, origin)}")
    if failover_s is not None:
        parts.append(f"the monitor saw it accept writes at {failover_s:+.1f} s")
    routed = _first(timeline, "backend_up", origin, new, "Server primary/")
    if routed is not None:
        parts.append(f"HAProxy switched its primary backend to it at {rel(routed.time, origin)}")
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
    return f"Writes were lost or corrupted: {lost.summary}"


def _split_brain_sentence(results: Sequence[CheckerResult]) -> str:
    split = _result(results, "split_brain")
    if split is None:
        return "Split-brain was not checked."
    if split.passed:
        return "There was no split-brain: the monitor never saw two nodes accept writes at once."
    window = _num(split.metrics.get("window_s")) or 0.0
    return (
        f"There was split-brain: two or more nodes accepted writes at once for {window:.2f} s, with "
        f"{split.metrics.get('conflicting_writes', 0)} overlapping pair(s) of acknowledged writes on different nodes."
    )


def _return_sentence(
    info: RunInfo, results: Sequence[CheckerResult], timeline: Sequence[LogLine], events: Sequence[Event],
    origin: float,
) -> str:
    who = info.target
    heals = [
        e.time for e in events
        if e.process == "nemesis" and e.op == "heal" and isinstance(e.value, dict) and e.value.get("target") == who
    ]
    if not heals:
        return f"{who} was not healed during the run, so its return was not observed."
    heal = heals[-1]
    steps: list[tuple[float, str]] = []  # (when, what), told in time order
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
    streaming = _first(timeline, "streaming", heal, who)
    if streaming is not None:
        steps.append((streaming.time, f"streamed WAL again from {rel(streaming.time, origin)}"))
    done = [what for _, what in sorted(steps)]
    after = f"After the heal at {rel(heal, origin)}, {who}"

    rejoin = _result(results, "rejoin")
    rejoin_s = _num(rejoin.metrics.get("rejoin_s")) if rejoin is not None else None
    if rejoin is not None and rejoin_s is not None:
        role = rejoin.metrics.get("rejoined_as") or "replica"
        tl = rejoin.metrics.get("timeline")
        on = f" on timeline {tl}" if tl is not None else ""
        late = "" if rejoin.passed else ", past the deadline"
        return f"{after} {_join([*done, f'was back as a {role}{on} {rejoin_s:.1f} s after the heal{late}'])}."
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
            _takeover_sentence(info, results, lines, origin),
            _writes_sentence(results, origin),
            _lost_sentence(results),
            _split_brain_sentence(results),
            _return_sentence(info, results, lines, evs, origin),
        ]
    )
