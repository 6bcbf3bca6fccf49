"""Where the seconds of a failover went: the outage cut into stretches (the loss noticed, the
leader race, the promotion, the routing, the clients' reconnect), each attributed to the component
and the setting that own it, from the run's own timeline (pure).

The lab asks *why* writes stopped for as long as they did; the narrative tells what happened in
order, this tells whose time each stretch was, and, for a run that is not the default profile's,
what the default profile sets instead for the setting that owns the stretch (read from the
default spec itself; bench/seconds.py measures both side by side). A stretch whose ends the logs
do not show is left out rather than guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pgha.drill.history import CheckerResult, Event, LogLine, RunInfo
from pgha.model.spec import Spec

# Faults after which the old primary cannot hand its leader key back: the key has to expire.
_KEY_MUST_EXPIRE = {"freeze", "node-loss", "isolate", "partition", "stall-then-kill"}
# Faults that go through Patroni's own shutdown of the primary.
_GRACEFUL = {"stop", "switchover", "rolling-restart"}


@dataclass(frozen=True)
class Stretch:
    name: str
    start: float
    end: float
    owner: str  # the component and the setting whose time it was
    why: str  # one sentence
    key: str = ""  # which stretch: pg_stop, fenced, noticed, race, promotion, routing, reconnect
    instead: str = ""  # what the default profile sets instead, where this run differs from it

    @property
    def seconds(self) -> float:
        return self.end - self.start


def _first(timeline: Sequence[LogLine], kind: str, after: float, node: str | None = None,
           prefix: str = "") -> LogLine | None:
    return next((line for line in timeline if line.kind == kind and line.time >= after
                 and (node is None or line.node == node) and line.message.startswith(prefix)), None)


def _metric(results: Sequence[CheckerResult], name: str, key: str) -> object:
    result = next((r for r in results if r.name == name), None)
    return None if result is None else result.metrics.get(key)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _noticed(info: RunInfo) -> tuple[str, str]:
    ttl = f"{info.ttl} s" if info.ttl is not None else "its ttl"
    if info.fault in _KEY_MUST_EXPIRE:
        return (f"Patroni: the leader key's ttl ({ttl})",
                f"the old primary could not give its leader key back, and nothing proves it is gone "
                f"until the key expires, so no replica may take over before then (ttl {ttl})")
    if info.fault in _GRACEFUL:
        return ("Patroni's shutdown of the old primary",
                "Patroni polls until PostgreSQL is down (ten times a second with pgha's patches, once a second "
                "without), checks that a replica has the shutdown checkpoint, and releases the leader key")
    return ("Patroni on the replicas",
            "until a replica's Patroni saw that the leader key no longer had an owner")


def _fenced(info: RunInfo) -> tuple[str, str]:
    after = f"{info.fence_after_s:g} s" if info.fence_after_s is not None else "fence_after_s"
    return (f"the fencing guard (fence_after_s {after})",
            f"the guard heard nothing from the primary for {after}, the replicas confirmed that they receive "
            "nothing from it, it killed the node, checked that nothing of it answers, and deleted its leader "
            "key (instead of waiting for the key to expire)")


# What a replica logs once it acts on a change of the leader key.
_NOTICED = ("following", "race_probe", "lock_free", "lock_owner", "lock_acquired")


def _race(info: RunInfo) -> tuple[str, str]:
    loop = f"{info.loop_wait} s" if info.loop_wait is not None else "loop_wait"
    return (f"Patroni's HA loop (loop_wait {loop})",
            f"each replica notices the free key within one loop ({loop}) and asks the other members "
            "which of them is the healthiest before one takes the key (a member that does not answer, "
            "such as a lost primary whose member key outlives it, costs up to Patroni's request timeout: "
            "2 s, 1 s as pgha runs it)")


def _routing(info: RunInfo) -> tuple[str, str]:
    if info.push_routing:
        return ("pgha's on_role_change hook",
                "the new primary told every HAProxy through its admin socket at once; the health checks "
                "only confirm it")
    if info.haproxy_inter_ms is not None and info.haproxy_rise is not None:
        inter, rise = info.haproxy_inter_ms, info.haproxy_rise
        # A DOWN server is checked every downinter (else inter); once a check passes, the rest of
        # `rise` come every fastinter (else inter).
        first = info.haproxy_downinter_ms or inter
        then = info.haproxy_fastinter_ms or inter
        settings = f"inter {inter} ms" + (f", downinter {first} ms" if info.haproxy_downinter_ms else "") + \
            (f", fastinter {then} ms" if info.haproxy_fastinter_ms else "") + f", rise {rise}"
        return (f"HAProxy's health checks ({settings})",
                f"HAProxy checks a DOWN server every {first} ms and marks it UP after {rise} passing check(s): "
                f"a promoted node waits up to {(first + (rise - 1) * then) / 1000:g} s before it receives writes")
    return ("HAProxy's health checks", "HAProxy marks the promoted node UP once its checks pass")


def _reconnect(info: RunInfo, events: Sequence[Event], routed: float | None, recovered: float) -> tuple[str, str]:
    """Whose time it was from the routing to the first acknowledged write: the writers' next try,
    unless writes kept failing through the entrypoint after it routed to the new primary (then the
    failures say what held them up)."""
    # Writes *invoked* after the routing: one sent before it and failing just after (a connect
    # timeout on the old primary) is the failover's, not the entrypoint's.
    invoked = {e.value: e.time for e in events if e.type == "invoke" and e.op == "write"}
    failures = [e for e in events if e.type == "fail" and e.op == "write" and routed is not None
                and routed <= invoked.get(e.value, e.time) and e.time < recovered]
    if not failures:
        return ("the writers", f"the next attempt of a writer through the entrypoint (writes every "
                               f"{1 / info.rate:g} s at {info.rate:g}/s) found the new primary")
    (error, count), = Counter((e.error or "no error text").splitlines()[0] for e in failures).most_common(1)
    return (f"the entrypoint ({info.via})",
            f"writes kept failing after HAProxy routed to the new primary: {len(failures)} failed, "
            f"{count} of them with \"{error}\"")


def _differ(pairs: Sequence[tuple[str, object, object, str]]) -> str:
    """'setting <default> (this run: <value>)' for each setting where the run differs."""
    return ", ".join(f"{label} {want}{unit} (this run: {have}{unit if isinstance(have, int) else ''})"
                     for label, have, want, unit in pairs if have is not None and have != want)


def instead(key: str, owner: str, info: RunInfo, default: Spec) -> str:
    """What the default profile sets, for the setting that owns this stretch, where the run's
    differs; "" where they agree or no setting owns it (pure)."""
    p, h = default.patroni, default.haproxy
    if key == "fenced":
        return _differ([("fence_after_s", info.fence_after_s, default.fencing.fence_after_s, " s")])
    if key == "noticed":
        if info.fence_after_s is None and default.fencing.enabled and info.fault in _KEY_MUST_EXPIRE:
            return (f"a fencing guard (fencing.enabled): the primary fenced after {default.fencing.fence_after_s:g} s "
                    "of silence, confirmed by its replicas, and its leader key deleted instead of expiring")
        if info.fault in _KEY_MUST_EXPIRE:
            ttl = _differ([("ttl", info.ttl, p.ttl, " s")])
            return f"{ttl}: Patroni's floor (it raises anything lower to 20)" if ttl else ""
        if info.fault in _GRACEFUL:
            return ""  # the same Patroni shutdown path in every profile
        return _differ([("loop_wait", info.loop_wait, p.loop_wait, " s")])
    if key == "race":
        return _differ([("loop_wait", info.loop_wait, p.loop_wait, " s"),
                        ("retry_timeout", info.retry_timeout, p.retry_timeout, " s")])
    if key == "routing":
        # Unset, downinter and fastinter are inter (when the run recorded its checks at all).
        unset = "unset (= inter)" if info.haproxy_inter_ms is not None else None
        checks = _differ([("inter", info.haproxy_inter_ms, h.inter_ms, " ms"),
                          ("downinter", info.haproxy_downinter_ms or unset, h.downinter_ms, " ms"),
                          ("fastinter", info.haproxy_fastinter_ms or unset, h.fastinter_ms, " ms"),
                          ("rise", info.haproxy_rise, h.rise, "")])
        if h.push_routing and info.push_routing is False:
            return ("the new primary pushes its role to every HAProxy from Patroni's on_role_change "
                    "(haproxy.push_routing)" + (f"; checks: {checks}" if checks else ""))
        return checks
    if key == "reconnect" and owner.startswith("the entrypoint"):
        return _differ([("maxconn", info.haproxy_maxconn, h.maxconn, ""),
                        ("timeout connect", info.haproxy_timeout_connect_ms, h.timeout_connect_ms, " ms"),
                        ("fall", info.haproxy_fall, h.fall, "")])
    return ""


def stretches(info: RunInfo, results: Sequence[CheckerResult], timeline: Sequence[LogLine],
              origin: float, events: Sequence[Event] = (), default: Spec | None = None) -> list[Stretch]:
    """The stretches from the fault (`origin`) to the first acknowledged write after the outage, in
    time order; empty when the run had no failover to a new primary or no outage to explain. With
    `default` (the default profile's spec), each says what that profile sets instead."""
    new = info.new_primary
    recovered = _number(_metric(results, "outage", "t_recovered"))
    if new is None or new == info.old_primary or recovered is None:
        return []
    lines = sorted(timeline, key=lambda line: line.time)
    locked = _first(lines, "lock_acquired", origin, new)
    freed = _first(lines, "lock_free", origin)
    promoted = _first(lines, "pg_promoted", origin, new)
    failover_s = _number(_metric(results, "outage", "failover_s"))
    writable = origin + failover_s if failover_s is not None else None
    became = promoted.time if promoted is not None else writable
    routed_line = _first(lines, "backend_up", became, new, "Server primary/") if became is not None else None
    routing_s = _number(_metric(results, "outage", "routing_s"))
    routed = routed_line.time if routed_line is not None else (
        writable + routing_s if writable is not None and routing_s is not None else None)
    # The key free: a replica says so, or starts asking the others whether it is the healthiest
    # (the old primary asks them too while it shuts down: not a sign that anyone noticed).
    probe = next((line for line in lines if line.kind == "race_probe" and line.time >= origin
                  and line.node not in (None, info.old_primary)), None)
    seen = [line.time for line in (freed, probe) if line is not None]
    noticed = min(seen) if seen and (locked is None or min(seen) <= locked.time) else None
    # A graceful stop: the old primary's PostgreSQL goes down first, then Patroni lets go of the key.
    stopped = _first(lines, "pg_stopped", origin, info.old_primary) if info.fault in _GRACEFUL else None
    # A fencing guard's deletion of the leader key ends the wait the key's ttl would have been.
    deleted = _first(lines, "fenced", origin, prefix="deleted the leader key")
    if deleted is not None:
        # The replicas watch the key: the first of them to say anything after its deletion has
        # noticed (the race's own probes are logged only once every member answered or timed out).
        woke = next((line for line in lines if line.time >= deleted.time and line.kind in _NOTICED
                     and line.node not in (None, info.old_primary)), None)
        noticed = woke.time if woke is not None and (locked is None or woke.time <= locked.time) else None

    points: list[tuple[str, str, float | None, tuple[str, str]]] = [
        *([("pg_stop", "the old primary's PostgreSQL stops", stopped.time,
            (f"PostgreSQL on {info.old_primary}", "a fast shutdown: sessions ended, a shutdown checkpoint"))]
          if stopped is not None else []),
        *([("fenced", "the primary fenced", deleted.time, _fenced(info))] if deleted is not None else []),
        ("noticed", "the loss noticed", noticed, _noticed(info) if deleted is None else (
            "Patroni on the replicas", "they watch the leader key: its deletion wakes them at once")),
        ("race", "leader race", locked.time if locked is not None else None, _race(info)),
        ("promotion", "promotion", became, (f"PostgreSQL on {new}", "promote: a new timeline, then Patroni "
                                                                     "updates the leader key and the node "
                                                                     "accepts writes")),
        ("routing", "routing", routed, _routing(info)),
        ("reconnect", "clients reconnect", recovered, _reconnect(info, events, routed, recovered)),
    ]
    out: list[Stretch] = []
    start = origin
    pending: list[tuple[str, str, str, str]] = []  # stretches whose end the logs do not show
    for key, name, end, (owner, why) in points:
        pending.append((name, owner, why, instead(key, owner, info, default) if default is not None else ""))
        if end is not None:
            # A log line written just after the write it enabled (HAProxy logs a pushed change a
            # moment later) ends its stretch at the write: the outage ends there.
            end = min(end, recovered)
        if end is None or end < start:
            continue  # not shown, or not in order: joined to the next stretch rather than guessed
        out.append(Stretch(" and ".join(p[0] for p in pending), start, end, "; ".join(p[1] for p in pending),
                           "; then ".join(p[2] for p in pending), key,
                           "; ".join(p[3] for p in pending if p[3])))
        pending, start = [], end
    return out
