"""Hand-made drill histories for the checkers' tests: writes, monitor samples, nemesis events, and a
clean failover to build on (each test then breaks what it judges)."""

from __future__ import annotations

import random
from dataclasses import asdict

from pgha.drill.history import Event, EventType, RoleSample

T0 = 1_700_000_000.0  # epoch-sized times, so float precision is what the drill will see


MS = 1e-3


def at(t: float) -> float:
    return T0 + t


def write(
    proc: str, id_: int, t0: float, t1: float | None, result: EventType | None = "ok", node: str | None = "n1"
) -> list[Event]:
    """A write invoked at t0 and completed at t1 (result None: never completed)."""
    events = [Event(at(t0), proc, "invoke", "write", id_)]
    if result is not None and t1 is not None:
        events.append(Event(at(t1), proc, result, "write", id_, node=node if result == "ok" else None))
    return events


def role(
    node: str,
    t: float,
    *,
    primary: bool = False,
    down: bool = False,
    timeline: int | None = 1,
    streaming: bool | None = None,
    rest_role: str | None = None,
) -> Event:
    """A monitor sample: a primary, a replica (streaming unless told) or a node that is down."""
    if down:
        sample = RoleSample(rest_role=None, in_recovery=None, accepts_writes=False)
    elif primary:
        sample = RoleSample(rest_role or "primary", in_recovery=False, accepts_writes=True, timeline=timeline)
    else:
        sample = RoleSample(
            rest_role or "replica",
            in_recovery=True,
            accepts_writes=False,
            timeline=timeline,
            streaming=True if streaming is None else streaming,
        )
    # As it comes back from the JSON-lines file: a dict of RoleSample's fields.
    return Event(at(t), "monitor", "info", "role", asdict(sample), node=node)


def fault(t: float, target: str, name: str = "kill-primary") -> Event:
    return Event(at(t), "nemesis", "info", "fault", {"fault": name, "target": target})


def heal(t: float, target: str, name: str = "kill-primary") -> Event:
    return Event(at(t), "nemesis", "info", "heal", {"fault": name, "target": target})


def steps(start: float, stop: float, step: float) -> list[float]:
    """start, start + step, ... up to and including stop, rounded to the microsecond."""
    n = round((stop - start) / step)
    return [round(start + i * step, 6) for i in range(n + 1)]


def failover_history() -> list[Event]:
    """n1 primary, killed at 10.05; n2 promoted at 12.5 (timeline 2); writes back on n2 at 13.06.

    One writer, a write every 0.1 s taking 10 ms (failures 20 ms). Last ok on n1 at 10.01.
    """
    events: list[Event] = []
    ids = iter(range(1, 10_000))
    for t in steps(0.0, 10.0, 0.1):
        events += write("writer-0", next(ids), t, t + 0.01, "ok", "n1")
    for i, t in enumerate(steps(10.1, 12.9, 0.1)):
        events += write("writer-0", next(ids), t, t + 0.02, "fail" if i % 2 else "info")
    for t in steps(13.0, 20.0, 0.1):
        events += write("writer-0", next(ids), t, t + 0.06, "ok", "n2")
    for t in steps(0.0, 25.0, 0.5):
        events.append(role("n1", t, primary=True) if t <= 10.0 else role("n1", t, down=True))
        events.append(role("n2", t, primary=True, timeline=2) if t >= 12.5 else role("n2", t))
        events.append(role("n3", t + 0.1, timeline=1 if t < 13.0 else 2))
    events.append(fault(10.05, "n1"))
    return events


def shuffled(events: list[Event]) -> list[Event]:
    # The checkers must not rely on the caller's ordering.
    out = list(events)
    random.Random(7).shuffle(out)
    return out


def rejoin_history(*samples: Event) -> list[Event]:
    """The failover history, n1 healed at 20.0, with the given samples of n1 after that."""
    events = [e for e in failover_history() if not (e.node == "n1" and e.time > at(20.0))]
    return [*events, heal(20.0, "n1"), *samples]
