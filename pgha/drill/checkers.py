"""Checkers: pure functions from a drill's history (and the final state) to a verdict with numbers.

Nothing here does I/O; every function takes events (in any order: they are sorted by time, ties
keep their history order) and returns plain values, so the same history always gives the same
verdict and the report can re-run the checkers on a saved history.

Outage definition (check_outage):
    Let F be the fault time. The *first failure* is the write, among those that completed "fail"
    or "info" at or after F, whose completion came first: the first moment after the fault at
    which a client was told a write did not happen (or may not have). Let R be that completion.
    - t_last_ok:   the latest "ok" completion at or before R (if none, the first failure's invoke);
    - t_recovered: the earliest "ok" completion of a write *invoked* at or after R (a write the
                   client started after it had seen the failure; writes already in flight at R
                   that end "ok" are the old primary's tail, not a recovery).
    error outage = t_recovered - t_last_ok.
    A stall without errors is an outage too, from the client's view: max_gap_s is the longest
    gap between consecutive "ok" completions from the last one at or before F to the end, and
    when it exceeds STALL_FACTOR times the median gap between consecutive "ok" completions over
    the whole history, outage_s = max(error outage, max_gap_s); otherwise outage_s = error
    outage (0 when no write failed after the fault).
    Writes never recovered when a failure has no later-invoked "ok" write, or when writes were
    invoked at or after F and no "ok" completed after F.
    Writes that never completed (no ok/fail/info) say nothing about when a client saw a failure:
    the outage checker ignores them (it reports how many) and lost_writes treats them as
    indeterminate.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby, islice, pairwise
from operator import itemgetter
from typing import Any, Literal

from pgha.drill.history import CheckerResult, Event, FinalState, RoleSample, sorted_events

WriteResult = Literal["ok", "fail", "info"]
RoleLabel = Literal["primary", "replica", "down", "unknown"]
Metrics = dict[str, float | int | str | None]
Window = tuple[float, float, tuple[str, ...]]

# Patroni has called the leader each of these across versions; a standby may be a sync one.
PRIMARY_ROLES = frozenset({"primary", "master", "leader"})
REPLICA_ROLES = frozenset({"replica", "sync_standby", "standby"})
STALL_FACTOR = 3.0
# ... and at least this long: on a loaded 2-core machine the scheduler alone delays a write by
# 0.15 s now and then (seen with TLS handshakes on every new connection), which no fault causes.
MIN_STALL_S = 0.5
MAX_DETAILS = 20  # ids or examples listed in details; the metrics carry the full counts


@dataclass(frozen=True)
class Write:
    """One write operation: its invoke paired with its completion by (process, value)."""

    process: str
    id: Any
    invoke: float
    complete: float | None  # None: never completed
    result: WriteResult | None  # None: never completed (indeterminate)
    node: str | None  # the node that committed it (reported on "ok")


@dataclass(frozen=True)
class Observation:
    """One monitor sample: what `node` looked like at `time`."""

    time: float
    node: str
    sample: RoleSample


# ---------------------------------------------------------------- reading the history


def pair_writes(events: Iterable[Event]) -> list[Write]:
    """Writes in invoke order; a write never completed has complete and result None."""
    pending: dict[tuple[str, Any], float] = {}
    writes: list[Write] = []
    for e in sorted_events(events):
        if e.op != "write":
            continue
        key = (e.process, e.value)
        if e.type == "invoke":
            if key in pending:  # re-invoked before completing: the first one stays indeterminate
                writes.append(Write(e.process, e.value, pending[key], None, None, None))
            pending[key] = e.time
            continue
        result: WriteResult = "ok" if e.type == "ok" else "fail" if e.type == "fail" else "info"
        # A completion whose invoke is missing is kept, as if it started when it ended.
        invoked = pending.pop(key, e.time)
        writes.append(Write(e.process, e.value, invoked, e.time, result, e.node))
    writes.extend(Write(proc, value, t, None, None, None) for (proc, value), t in pending.items())
    return sorted(writes, key=lambda w: w.invoke)


def _role_sample(value: Any) -> RoleSample:
    # In memory the monitor may still hold the dataclass; from JSON lines it is a dict.
    if isinstance(value, RoleSample):
        return value
    v: dict[str, Any] = value if isinstance(value, dict) else {}
    return RoleSample(
        rest_role=v.get("rest_role"),
        in_recovery=v.get("in_recovery"),
        accepts_writes=bool(v.get("accepts_writes")),
        timeline=v.get("timeline"),
        streaming=bool(v.get("streaming")),
    )


def observations(events: Iterable[Event]) -> list[Observation]:
    """The monitor's role samples, in time order."""
    return [
        Observation(e.time, e.node, _role_sample(e.value))
        for e in sorted_events(events)
        if e.process == "monitor" and e.op == "role" and e.node is not None
    ]


def _nemesis(events: Sequence[Event], op: str) -> list[Event]:
    return [e for e in events if e.process == "nemesis" and e.op == op]


def _target(event: Event) -> str | None:
    return event.value.get("target") if isinstance(event.value, dict) else None


def _is_primary(s: RoleSample) -> bool:
    return s.accepts_writes and s.rest_role in PRIMARY_ROLES


def _ok_completions(writes: Iterable[Write]) -> list[float]:
    return sorted(w.complete for w in writes if w.result == "ok" and w.complete is not None)


def _ids(ids: Iterable[Any]) -> str:
    shown = sorted(ids)
    more = f" (+{len(shown) - MAX_DETAILS} more)" if len(shown) > MAX_DETAILS else ""
    return ", ".join(map(str, shown[:MAX_DETAILS])) + more


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _latency(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else _s(seconds)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile of `values` (None when empty): a value that occurred."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, min(len(ranked) - 1, math.ceil(p / 100 * len(ranked)) - 1))]


def client_view(writes: Sequence[Write], since: float) -> Metrics:
    """What the writers felt from `since` on (every write not finished before it, so those in
    flight at the fault count): how many failed, how many ended unknown, and how long the
    acknowledged ones took from the client's call to its answer."""
    felt = [w for w in writes if w.complete is None or w.complete >= since]
    latencies = [w.complete - w.invoke for w in felt if w.result == "ok" and w.complete is not None]
    return {
        "client_failed": sum(w.result == "fail" for w in felt),
        "client_indeterminate": sum(w.result in ("info", None) for w in felt),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p99_s": percentile(latencies, 99),
        "latency_max_s": max(latencies, default=None),
    }


def client_summary(view: Metrics) -> str:
    return (f" Clients: {view['client_failed']} failed, {view['client_indeterminate']} indeterminate; "
            f"write latency p50 {_latency(view['latency_p50_s'])}, p99 {_latency(view['latency_p99_s'])}, "
            f"max {_latency(view['latency_max_s'])}.")


def _span(w: Write, origin: float) -> str:
    end = "never" if w.complete is None else f"+{w.complete - origin:.3f}"
    return f"[+{w.invoke - origin:.3f}, {end}]"


# ---------------------------------------------------------------- outage


def _failover(obs: Sequence[Observation], fault_time: float, target: str | None) -> tuple[str, float] | None:
    """(new primary, time the monitor first saw it accept writes) after the fault, if it moved."""
    latest: dict[str, RoleSample] = {}
    for o in obs:
        if o.time > fault_time:
            break
        latest[o.node] = o.sample
    # The primary at the fault is excluded, not only the target: faulting a replica must not
    # make the unchanged primary look like a new one.
    old = {node for node, s in latest.items() if _is_primary(s)}
    if not old and target is not None:
        old = {target}
    for o in obs:
        if o.time >= fault_time and o.node not in old and _is_primary(o.sample):
            return o.node, o.time
    return None


def check_outage(
    events: Iterable[Event], fault_time: float | None = None, limit_s: float | None = None
) -> CheckerResult:
    """How long writes were unavailable after the fault (see the module docstring).

    fault_time defaults to the first nemesis "fault" event. failover_s: fault -> the monitor's
    first sample of another node that is primary and accepts writes; routing_s: that moment ->
    the first "ok" write committed on that node (clamped at 0: the monitor polls, so a write can
    land before the monitor notices). Both are None when the primary did not move.
    passed: writes recovered, and outage_s <= limit_s when a limit is given.
    """
    evs = sorted_events(events)
    writes = pair_writes(evs)
    faults = _nemesis(evs, "fault")
    if fault_time is None and faults:
        fault_time = faults[0].time
    fault = next((e for e in faults if fault_time is None or e.time >= fault_time), None)
    target = _target(fault) if fault is not None else None
    origin = fault_time if fault_time is not None else (evs[0].time if evs else 0.0)
    metrics: Metrics = {
        "fault_time": fault_time,
        "writes_ok": sum(w.result == "ok" for w in writes),
        "writes_failed": sum(w.result == "fail" for w in writes),
        "writes_indeterminate": sum(w.result == "info" for w in writes),
        "writes_pending": sum(w.result is None for w in writes),
    }
    if not writes:
        return CheckerResult(
            "outage",
            False,
            "The history has no writes, so availability cannot be judged.",
            metrics | {"outage_s": None},
        )

    def rel(t: float) -> str:
        return f"{t - origin:+.3f} s"

    details: list[str] = []
    if metrics["writes_pending"]:
        details.append(f"{metrics['writes_pending']} write(s) never completed; ignored here")
    after = fault_time if fault_time is not None else float("-inf")
    oks = _ok_completions(writes)

    failures = [
        (w.complete, w)
        for w in writes
        if w.result in ("fail", "info") and w.complete is not None and w.complete >= after
    ]
    reported, first_failure = min(failures, key=itemgetter(0), default=(None, None))
    error_outage = 0.0
    t_last_ok: float | None = None
    t_recovered: float | None = None
    never = False
    if first_failure is not None and reported is not None:
        details.append(
            f"first failure: {first_failure.process} id {first_failure.id} invoked "
            f"{rel(first_failure.invoke)}, {first_failure.result} {rel(reported)}"
        )
        i = bisect_right(oks, reported)
        t_last_ok = oks[i - 1] if i else None
        t_recovered = min(
            (
                w.complete
                for w in writes
                if w.result == "ok" and w.complete is not None and w.invoke >= reported
            ),
            default=None,
        )
        if t_recovered is None:
            never = True
        else:
            error_outage = t_recovered - (t_last_ok if t_last_ok is not None else first_failure.invoke)
            details.append(
                f"last ok before it {rel(t_last_ok) if t_last_ok is not None else 'none'}, "
                f"first ok after it {rel(t_recovered)}"
            )
    invoked_after = any(w.invoke >= after for w in writes)
    if fault_time is not None and invoked_after and not any(t > fault_time for t in oks):
        never = True

    if never:
        details.append("no write invoked after the first failure succeeded")
        return CheckerResult(
            "outage",
            False,
            "Writes never recovered after the fault.",
            metrics | {"outage_s": None, "t_last_ok": t_last_ok, "t_recovered": None},
            details,
        )

    start = bisect_right(oks, after)
    tail = oks[max(start - 1, 0) :]  # include the last ok before the fault: the gap spans it
    max_gap = max((b - a for a, b in pairwise(tail)), default=0.0)
    all_gaps = [b - a for a, b in pairwise(oks)]
    median_gap = statistics.median(all_gaps) if all_gaps else None
    stalled = median_gap is not None and max_gap > max(STALL_FACTOR * median_gap, MIN_STALL_S)
    outage = max(error_outage, max_gap) if stalled else error_outage
    if stalled:
        details.append(
            f"longest gap between ok writes {_s(max_gap)} > {STALL_FACTOR:g} x median "
            f"{_s(median_gap or 0.0)} and > {_s(MIN_STALL_S)}: counted as a stall"
        )

    failover_s: float | None = None
    routing_s: float | None = None
    new_primary: str | None = None
    if fault_time is not None:
        moved = _failover(observations(evs), fault_time, target)
        if moved is not None:
            new_primary, t_promoted = moved
            failover_s = t_promoted - fault_time
            first_on_new = min(
                (
                    w.complete
                    for w in writes
                    if w.result == "ok"
                    and w.node == new_primary
                    and w.complete is not None
                    and w.complete >= fault_time
                ),
                default=None,
            )
            details.append(f"{new_primary} seen accepting writes {rel(t_promoted)}")
            if first_on_new is not None:
                routing_s = max(0.0, first_on_new - t_promoted)
                details.append(f"first ok write on {new_primary} {rel(first_on_new)}")

    metrics |= {
        "outage_s": outage,
        "error_outage_s": error_outage,
        "max_gap_s": max_gap,
        "median_gap_s": median_gap,
        "stalled": "yes" if stalled else "no",
        "failover_s": failover_s,
        "routing_s": routing_s,
        "new_primary": new_primary,
        "t_last_ok": t_last_ok,
        "t_recovered": t_recovered,
    }
    if outage == 0.0:
        summary = f"No write failed or stalled after the fault (longest gap between ok writes {_s(max_gap)})."
    elif first_failure is None:
        summary = f"No write failed after the fault, but writes stalled for {_s(outage)}."
    else:
        summary = f"Writes were unavailable for {_s(outage)} after the fault"
        if failover_s is not None:
            summary += f"; {new_primary} became primary after {_s(failover_s)}"
            if routing_s is not None:
                summary += f" and took its first write {_s(routing_s)} later"
        summary += "."
    passed = limit_s is None or outage <= limit_s
    if not passed:
        summary = f"Writes were unavailable for {_s(outage)}, over the {_s(limit_s or 0.0)} limit."
    # Beside the outage, what clients felt (issue 11): failures, unknown outcomes, latency.
    view = client_view(writes, origin)
    metrics |= view
    return CheckerResult("outage", passed, summary + client_summary(view), metrics, details)


# ---------------------------------------------------------------- lost writes


def check_lost_writes(events: Iterable[Event], final: FinalState) -> CheckerResult:
    """Every acknowledged write must be on the final primary and on every caught-up replica.

    Also errors: ids on the primary that no one invoked, and ids whose write definitely failed.
    Indeterminate writes ("info", or never completed) may or may not be there; both are fine.
    A caught-up replica missing from final.rows counts as having no rows.
    """
    writes = pair_writes(events)
    acked = {w.id for w in writes if w.result == "ok"}
    failed = {w.id for w in writes if w.result == "fail"} - acked
    indeterminate = {w.id for w in writes if w.result in ("info", None)} - acked
    invoked = {w.id for w in writes}
    metrics: Metrics = {
        "acknowledged": len(acked),
        "failed": len(failed),
        "indeterminate": len(indeterminate),
    }
    if final.primary is None:
        return CheckerResult(
            "lost_writes", False, "There was no primary to verify the writes against.", metrics
        )
    if final.primary not in final.rows:
        return CheckerResult(
            "lost_writes", False, f"No rows were read from the final primary {final.primary}.", metrics
        )

    on_primary = set(final.rows[final.primary])
    lost = acked - on_primary
    unexpected = on_primary - invoked
    failed_but_committed = failed & on_primary
    details: list[str] = []
    if lost:
        details.append(f"lost (acknowledged, absent on {final.primary}): {_ids(lost)}")
    if unexpected:
        details.append(f"unexpected (on {final.primary}, never invoked): {_ids(unexpected)}")
    if failed_but_committed:
        details.append(f"failed but committed (on {final.primary}): {_ids(failed_but_committed)}")

    missing_on_replicas = 0
    for node, caught_up in sorted(final.caught_up.items()):
        if node == final.primary:
            continue
        if not caught_up:
            details.append(f"{node} not checked: it had not caught up")
            continue
        missing = acked - set(final.rows.get(node, []))
        missing_on_replicas += len(missing)
        if missing:
            details.append(f"acknowledged but absent on replica {node}: {_ids(missing)}")

    metrics |= {
        "lost": len(lost),
        "unexpected": len(unexpected),
        "failed_but_committed": len(failed_but_committed),
        "missing_on_replicas": missing_on_replicas,
        "indeterminate_committed": len(indeterminate & on_primary),
        "rows_on_primary": len(on_primary),
    }
    problems = [
        f"{n} {what}"
        for n, what in (
            (len(lost), "acknowledged write(s) lost"),
            (len(unexpected), "row(s) never written"),
            (len(failed_but_committed), "failed write(s) committed"),
            (missing_on_replicas, "acknowledged write(s) missing on replicas"),
        )
        if n
    ]
    if problems:
        summary = f"Writes went wrong on {final.primary}: " + ", ".join(problems) + "."
    else:
        summary = (
            f"All {len(acked)} acknowledged writes are on {final.primary} and on every caught-up "
            f"replica; {metrics['indeterminate_committed']} indeterminate write(s) committed."
        )
    return CheckerResult("lost_writes", not problems, summary, metrics, details)


# ---------------------------------------------------------------- split brain


def _merge(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def writable_intervals(
    events: Iterable[Event], sample_hold_s: float = 1.0
) -> dict[str, list[tuple[float, float]]]:
    """node -> merged intervals during which the monitor saw it accept writes.

    A sample holds until the node's next sample but never longer than sample_hold_s: a node the
    monitor could not poll for a while (hung, partitioned) must not be assumed writable throughout.
    """
    by_node: dict[str, list[Observation]] = defaultdict(list)
    for o in observations(events):
        by_node[o.node].append(o)
    result: dict[str, list[tuple[float, float]]] = {}
    for node, obs in by_node.items():
        nexts = [o.time for o in obs[1:]] + [float("inf")]
        result[node] = _merge(
            (o.time, min(t_next, o.time + sample_hold_s))
            for o, t_next in zip(obs, nexts, strict=True)
            if o.sample.accepts_writes
        )
    return result


def split_brain_windows(events: Iterable[Event], sample_hold_s: float = 1.0) -> list[Window]:
    """(start, end, nodes) for every stretch during which two or more nodes accepted writes."""
    points = sorted(
        (t, delta, node)
        for node, intervals in writable_intervals(events, sample_hold_s).items()
        for start, end in intervals
        for t, delta in ((start, 1), (end, -1))
    )  # at equal times ends (-1) sort first: touching intervals do not overlap
    windows: list[Window] = []
    active: set[str] = set()
    since = 0.0
    for t, group in groupby(points, key=lambda p: p[0]):
        if len(active) >= 2 and t > since:
            nodes = tuple(sorted(active))
            if windows and windows[-1][1] == since and windows[-1][2] == nodes:
                windows[-1] = (windows[-1][0], t, nodes)
            else:
                windows.append((since, t, nodes))
        for _, delta, node in group:
            if delta > 0:
                active.add(node)
            else:
                active.discard(node)
        since = t
    return windows


def conflicting_writes(
    events: Iterable[Event], limit: int = MAX_DETAILS, settled: frozenset[Any] = frozenset()
) -> tuple[int, list[tuple[Write, Write]]]:
    """(number of pairs, up to `limit` example pairs) of ok writes on different nodes that overlap.

    Intervals are open: a write invoked exactly when another completed is sequential with it.
    A pair whose two ids are both `settled` (on the final primary) is no conflict: one history
    holds both, so the old primary committed its write before the new one took over (its client
    only heard of it later, e.g. after a thaw) and nothing diverged.
    """
    oks = [
        (w.node, w.invoke, w.complete, w)
        for w in pair_writes(events)
        if w.result == "ok" and w.node is not None and w.complete is not None
    ]
    points = sorted(
        (t, is_start, i)
        for i, (_, invoke, complete, _) in enumerate(oks)
        for t, is_start in ((invoke, 1), (complete, 0))
    )  # ends (0) before starts (1) at the same instant
    active: dict[str, dict[int, Write]] = defaultdict(dict)
    pairs = 0
    examples: list[tuple[Write, Write]] = []
    for _, is_start, i in points:
        node, invoke, complete, w = oks[i]
        if not is_start:
            active[node].pop(i, None)
            continue
        others = [o for other_node, ws in active.items() if other_node != node for o in ws.values()
                  if not (o.id in settled and w.id in settled)]
        pairs += len(others)
        examples.extend(islice(((o, w) for o in others), limit - len(examples)))
        if complete > invoke:  # a zero-length write never stays open
            active[node][i] = w
    return pairs, examples


def stale_acknowledged(events: Iterable[Event], sample_hold_s: float = 1.0) -> list[Write]:
    """Acknowledged writes that overlap a split-brain window on a node other than its newest primary.

    Within a window the node with the highest timeline is the legitimate (newest) primary; the
    others are stale (e.g. a thawed old primary before Patroni demotes it). A write acknowledged
    there diverges from the cluster's history and is lost at the next rewind.
    """
    evs = sorted_events(events)
    obs = observations(evs)
    writes = [w for w in pair_writes(evs) if w.result == "ok" and w.complete is not None]
    stale: list[Write] = []
    for start, end, nodes in split_brain_windows(evs, sample_hold_s):
        timeline: dict[str, int] = {}
        for o in obs:
            if o.node in nodes and start - sample_hold_s <= o.time <= end and o.sample.timeline is not None:
                timeline[o.node] = max(timeline.get(o.node, 0), o.sample.timeline)
        newest = max(nodes, key=lambda n: timeline.get(n, -1))
        for w in writes:
            assert w.complete is not None
            if w.node in nodes and w.node != newest and w.invoke <= end and w.complete >= start:
                stale.append(w)
    return stale


def check_split_brain(events: Iterable[Event], sample_hold_s: float = 1.0,
                      final: FinalState | None = None) -> CheckerResult:
    """Two nodes accepting writes at once: measured by the monitor, judged by the writes.

    window_s is every moment the monitor saw two or more nodes accept writes (e.g. a thawed old
    primary before Patroni's next loop demotes it). The verdict fails when that window could have
    cost a client something: an acknowledged write on the stale node of a window, or two
    acknowledged writes on different nodes whose invoke..ok intervals overlap (overlap makes
    concurrent commits possible, not certain; with the final state, a pair the final primary
    holds both of is no conflict). Lost writes themselves are lost_writes' verdict.
    """
    evs = sorted_events(events)
    windows = split_brain_windows(evs, sample_hold_s)
    window_s = sum(end - start for start, end, _ in windows)
    settled = frozenset(final.rows.get(final.primary, ())) if final is not None and final.primary else frozenset()
    pairs, examples = conflicting_writes(evs, settled=settled)
    stale = stale_acknowledged(evs, sample_hold_s)
    origin = evs[0].time if evs else 0.0
    details = [
        f"{'+'.join(nodes)} accepted writes together from +{start - origin:.3f} s to +{end - origin:.3f} s"
        for start, end, nodes in windows[:MAX_DETAILS]
    ] + [
        f"write {a.id} on {a.node} {_span(a, origin)} overlaps write {b.id} on {b.node} {_span(b, origin)}"
        for a, b in examples
    ] + [f"write {w.id} was acknowledged by stale node {w.node} {_span(w, origin)}" for w in stale[:MAX_DETAILS]]
    metrics: Metrics = {
        "window_s": window_s,
        "windows": len(windows),
        "conflicting_writes": pairs,
        "stale_acknowledged": len(stale),
        "sample_hold_s": sample_hold_s,
    }
    passed = pairs == 0 and not stale
    if window_s == 0 and passed:
        summary = "No two nodes accepted writes at the same time."
    elif passed:
        summary = (
            f"The monitor saw two nodes accept writes at once for {_s(window_s)}, "
            "but no acknowledged write landed on the stale node and none overlapped across nodes."
        )
    else:
        summary = (
            f"Two or more nodes accepted writes at once for {_s(window_s)} per the monitor; "
            f"{len(stale)} write(s) were acknowledged by a stale node and {pairs} overlapping pair(s) "
            "of acknowledged writes landed on different nodes."
        )
    return CheckerResult("split_brain", passed, summary, metrics, details)


# ---------------------------------------------------------------- rejoin


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
    heals = [e for e in _nemesis(evs, "heal") if _target(e) == target]
    if not heals:
        return CheckerResult(
            "rejoin",
            False,
            f"There is no heal event for {target}, so its rejoin cannot be judged.",
            {"rejoin_s": None},
        )
    heal_t = heals[-1].time
    fault_t = max(
        (e.time for e in _nemesis(evs, "fault") if _target(e) == target and e.time <= heal_t), default=heal_t
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
            if _is_primary(s) and not others:
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
            f"{target} rejoined as {role} after {_s(rejoin_s)}, past the {_s(deadline_s)} deadline.",
            metrics,
        )
    return CheckerResult(
        "rejoin",
        True,
        f"{target} rejoined as {role} on timeline {timeline} {_s(rejoin_s)} after the heal.",
        metrics,
    )


# ---------------------------------------------------------------- all together, and for plots


def run_all(
    events: Iterable[Event],
    final: FinalState,
    target: str,
    *,
    fault_time: float | None = None,
    limit_s: float | None = None,
    deadline_s: float | None = None,
    sample_hold_s: float = 1.0,
) -> list[CheckerResult]:
    """The four checkers in report order, sorting the history once."""
    evs = sorted_events(events)
    return [
        check_outage(evs, fault_time, limit_s),
        check_lost_writes(evs, final),
        check_split_brain(evs, sample_hold_s, final),
        check_rejoin(evs, target, deadline_s),
    ]


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
    heals = [e.time for e in _nemesis(evs, "heal") if _target(e) == target and e.time > fault_time]
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
                         f"{target} stopped accepting writes {_s(took)} after it was cut off "
                         f"({'within' if ok else 'beyond'} ttl {limit_s:.0f} s).",
                         {"demoted_after_s": round(took, 3), "limit_s": limit_s})


def write_rate(events: Iterable[Event], bucket_s: float = 0.1) -> list[tuple[float, int, int]]:
    """(bucket start, ok, fail + info) by completion time, every bucket from the first to the last."""
    done = [(w.complete, w.result == "ok") for w in pair_writes(events) if w.complete is not None]
    if not done:
        return []
    t0 = min(t for t, _ in done)
    ok: Counter[int] = Counter()
    not_ok: Counter[int] = Counter()
    for t, succeeded in done:
        (ok if succeeded else not_ok)[int((t - t0) // bucket_s)] += 1
    last = max((ok | not_ok).keys())
    return [(t0 + i * bucket_s, ok[i], not_ok[i]) for i in range(last + 1)]


def _label(s: RoleSample) -> RoleLabel:
    if s.accepts_writes:
        return "primary"
    if s.in_recovery is True:
        return "replica"
    if s.rest_role is None and s.in_recovery is None:
        return "down"
    return "unknown"


def role_intervals(events: Iterable[Event]) -> dict[str, list[tuple[float, float, str]]]:
    """node -> (start, end, label) bands; a sample holds until the node's next one, the last until
    the end of the history. Consecutive samples with the same label are merged."""
    evs = sorted_events(events)
    if not evs:
        return {}
    end_of_history = evs[-1].time
    by_node: dict[str, list[Observation]] = defaultdict(list)
    for o in observations(evs):
        by_node[o.node].append(o)
    bands: dict[str, list[tuple[float, float, str]]] = {}
    for node, obs in by_node.items():
        nexts = [o.time for o in obs[1:]] + [end_of_history]
        node_bands: list[tuple[float, float, str]] = []
        for o, end in zip(obs, nexts, strict=True):
            label = _label(o.sample)
            if node_bands and node_bands[-1][2] == label:
                node_bands[-1] = (node_bands[-1][0], end, label)
            elif end > o.time:
                node_bands.append((o.time, end, label))
        bands[node] = node_bands
    return bands


def check_healthy_after_heal(events: Iterable[Event], target: str) -> CheckerResult:
    """For faults that hit no node (a DCS member, or all of them): the cluster must be healthy
    again after the last heal, as the drill observed it (its "rejoined" phase)."""
    evs = sorted_events(events)
    heals = [e for e in _nemesis(evs, "heal") if _target(e) == target]
    if not heals:
        return CheckerResult("rejoin", False, f"There is no heal event for {target}.", {"rejoin_s": None})
    heal_time = heals[-1].time
    rejoined = [e for e in evs if e.op == "phase" and e.process == "drill" and e.time >= heal_time
                and isinstance(e.value, dict) and e.value.get("phase") == "rejoined"]
    if not rejoined:
        return CheckerResult("rejoin", False, f"The cluster was not healthy again after healing {target}.",
                             {"rejoin_s": None})
    seconds = rejoined[0].time - heal_time
    return CheckerResult("rejoin", True, f"The cluster was healthy again {_s(seconds)} after healing {target}.",
                         {"rejoin_s": seconds, "rejoined_as": "cluster"})
