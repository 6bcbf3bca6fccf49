"""The split-brain verdict: two nodes accepting writes at once, measured by the monitor and judged
by the acknowledged writes (a stale node's acknowledgements, overlapping writes on two nodes)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from itertools import islice
from typing import Any

from pgha.drill.checkers.views import Write, observations, pair_writes, split_brain_windows
from pgha.drill.checkers.wording import MAX_DETAILS, Metrics, seconds
from pgha.drill.history import CheckerResult, Event, FinalState, sorted_events


def _span(w: Write, origin: float) -> str:
    end = "never" if w.complete is None else f"+{w.complete - origin:.3f}"
    return f"[+{w.invoke - origin:.3f}, {end}]"


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
            f"The monitor saw two nodes accept writes at once for {seconds(window_s)}, "
            "but no acknowledged write landed on the stale node and none overlapped across nodes."
        )
    else:
        summary = (
            f"Two or more nodes accepted writes at once for {seconds(window_s)} per the monitor; "
            f"{len(stale)} write(s) were acknowledged by a stale node and {pairs} overlapping pair(s) "
            "of acknowledged writes landed on different nodes."
        )
    return CheckerResult("split_brain", passed, summary, metrics, details)
