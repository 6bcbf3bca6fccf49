"""The outage verdict: how long writes were unavailable after the fault, and what clients felt.

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
from collections.abc import Iterable, Sequence
from itertools import pairwise
from operator import itemgetter

from pgha.drill.checkers.views import (
    Observation,
    Write,
    is_primary,
    nemesis_events,
    observations,
    pair_writes,
    target_of,
)
from pgha.drill.checkers.wording import Metrics, seconds
from pgha.drill.history import CheckerResult, Event, RoleSample, sorted_events

STALL_FACTOR = 3.0
# ... and at least this long: on a loaded 2-core machine the scheduler alone delays a write by
# 0.15 s now and then (seen with TLS handshakes on every new connection), which no fault causes.
MIN_STALL_S = 0.5


def _ok_completions(writes: Iterable[Write]) -> list[float]:
    return sorted(w.complete for w in writes if w.result == "ok" and w.complete is not None)


def _latency(s: object) -> str:
    if not isinstance(s, int | float):
        return "-"
    return f"{s * 1000:.0f} ms" if s < 1 else seconds(s)


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


def _failover(obs: Sequence[Observation], fault_time: float, target: str | None) -> tuple[str, float] | None:
    """(new primary, time the monitor first saw it accept writes) after the fault, if it moved."""
    latest: dict[str, RoleSample] = {}
    for o in obs:
        if o.time > fault_time:
            break
        latest[o.node] = o.sample
    # The primary at the fault is excluded, not only the target: faulting a replica must not
    # make the unchanged primary look like a new one.
    old = {node for node, s in latest.items() if is_primary(s)}
    if not old and target is not None:
        old = {target}
    for o in obs:
        if o.time >= fault_time and o.node not in old and is_primary(o.sample):
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
    faults = nemesis_events(evs, "fault")
    if fault_time is None and faults:
        fault_time = faults[0].time
    fault = next((e for e in faults if fault_time is None or e.time >= fault_time), None)
    target = target_of(fault) if fault is not None else None
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
            f"longest gap between ok writes {seconds(max_gap)} > {STALL_FACTOR:g} x median "
            f"{seconds(median_gap or 0.0)} and > {seconds(MIN_STALL_S)}: counted as a stall"
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
        summary = f"No write failed or stalled after the fault (longest gap between ok writes {seconds(max_gap)})."
    elif first_failure is None:
        summary = f"No write failed after the fault, but writes stalled for {seconds(outage)}."
    else:
        summary = f"Writes were unavailable for {seconds(outage)} after the fault"
        if failover_s is not None:
            summary += f"; {new_primary} became primary after {seconds(failover_s)}"
            if routing_s is not None:
                summary += f" and took its first write {seconds(routing_s)} later"
        summary += "."
    passed = limit_s is None or outage <= limit_s
    if not passed:
        summary = f"Writes were unavailable for {seconds(outage)}, over the {seconds(limit_s or 0.0)} limit."
    # Beside the outage, what clients felt (issue 11): failures, unknown outcomes, latency.
    view = client_view(writes, origin)
    metrics |= view
    return CheckerResult("outage", passed, summary + client_summary(view), metrics, details)

