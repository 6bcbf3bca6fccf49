"""Views of a history that more than one verdict (and the report) read.

The writes paired with their completions, the monitor's role samples, the nemesis's events, the
moments nodes accepted writes and the split-brain windows among them, role bands and the write
rate for the plot. Pure: events in (in any order: they are sorted by time, ties keep their
history order), plain values out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

from pgha.drill.history import Event, RoleSample, sorted_events

WriteResult = Literal["ok", "fail", "info"]
RoleLabel = Literal["primary", "replica", "down", "unknown"]
Window = tuple[float, float, tuple[str, ...]]

# Patroni has called the leader each of these across versions; a standby may be a sync one.
PRIMARY_ROLES = frozenset({"primary", "master", "leader"})
REPLICA_ROLES = frozenset({"replica", "sync_standby", "standby"})


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


# ---------------------------------------------------------------- writes, samples, nemesis


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


def nemesis_events(events: Sequence[Event], op: str) -> list[Event]:
    """The nemesis's "fault" or "heal" events, in the order given."""
    return [e for e in events if e.process == "nemesis" and e.op == op]


def target_of(event: Event) -> str | None:
    """The target a nemesis event names (None: it names none)."""
    return event.value.get("target") if isinstance(event.value, dict) else None


def is_primary(s: RoleSample) -> bool:
    return s.accepts_writes and s.rest_role in PRIMARY_ROLES


# ---------------------------------------------------------------- nodes accepting writes


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


# ---------------------------------------------------------------- for the plot


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
