"""Every fault a drill can inject, in one table.

A `Fault` says what it does (one line, used by `pgha drill --help`), which targets it takes, how
it is injected and healed through the backend, whether Patroni reacts to it only after its leader
key runs out (`settles`), whether the drill holds it until the cluster has recovered (`held`),
and which extra verdicts it brings. Validation, target resolution, the CLI's help and the
nemesis all read this table: adding a fault is one entry here (plus its tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pgha.errors import BackendError, PghaError

# The backend's protocols are imported where a fault needs one, not here: the CLI reads this
# table for its help and its checks of --fault, and should not pay for every backend to do so.
if TYPE_CHECKING:
    from pgha.backends.base import (
        Backend,
        Backups,
        ComponentFaults,
        NetworkFaults,
        NodeFaults,
        PauseFaults,
        PostgresFaults,
    )

STALL_SECONDS = 3.0
# A stall that must not be fenced: well below the fencing guard's threshold.
PAUSE_SECONDS = 1.0
PAUSE_FRACTION = 0.75
SETTLE_MARGIN_S = 5.0
FENCING_WATCH_FACTOR = 3
LOSS_PERCENT = 30
LAG_MS = 200


class TargetError(PghaError):
    """A target the fault does not take (one line, for the CLI)."""


@dataclass(frozen=True)
class Hosts:
    """What a fault's target can name in one cluster, as the drill sees it at the start."""

    leader: str
    replicas: tuple[str, ...]
    nodes: tuple[str, ...]
    dcs: tuple[str, ...]
    haproxies: tuple[str, ...]
    guards: tuple[str, ...] = ()  # the fencing guards, the active one first


class Targets(Protocol):
    """One kind of target: how `pgha drill --help` names it and how a `--target` resolves."""

    @property
    def help(self) -> str: ...

    def resolve(self, fault: str, target: str, hosts: Hosts) -> str: ...


def _no_others(hosts: Hosts) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class NodeTargets:
    """A node: the primary, a replica or one by name; `others` adds hosts that are not nodes."""

    help: str = "primary | replica | a node"
    others: Callable[[Hosts], tuple[str, ...]] = _no_others

    def resolve(self, fault: str, target: str, hosts: Hosts) -> str:
        if target == "primary":
            return hosts.leader
        if target == "replica":
            if not hosts.replicas:
                raise TargetError("target: the cluster has no replica")
            return sorted(hosts.replicas)[0]
        if target in (*hosts.nodes, *self.others(hosts)):
            return target
        others = f", {', '.join(self.others(hosts))}" if self.others(hosts) else ""
        raise TargetError(f"target: no node named {target!r}: {fault} takes primary, replica, "
                          f"{', '.join(hosts.nodes)}{others}")


@dataclass(frozen=True)
class ComponentTargets:
    """One of the components of a kind, or a group of them ('majority' of the DCS members);
    primary and replica, the drill's default targets, mean the first."""

    help: str
    names: Callable[[Hosts], tuple[str, ...]]
    groups: tuple[str, ...] = ()
    none: str = "there is nothing of that kind in this cluster"  # why, when there is none

    def resolve(self, fault: str, target: str, hosts: Hosts) -> str:
        names = self.names(hosts)
        if not names and not self.groups:
            raise TargetError(f"target: {fault}: {self.none}")
        if target in ("primary", "replica"):
            return names[0]
        if target in (*names, *self.groups):
            return target
        raise TargetError(f"target: {fault} takes {', '.join((*names, *self.groups))}")


NODES = NodeTargets()
DCS_MEMBERS = ComponentTargets("dcs0.. | majority | all", lambda h: h.dcs, ("majority", "all"))
HAPROXIES = ComponentTargets("haproxy, haproxy1..", lambda h: h.haproxies)
REPOSITORY = ComponentTargets("repository", lambda h: ("repository",))
TABLE = ComponentTargets("table (the drill's own)", lambda h: ("table",))
EVERY_NODE = ComponentTargets("cluster (every node at once)", lambda h: ("cluster",))
GUARDS = ComponentTargets("guard (the active one), guard1..", lambda h: h.guards,
                          none="the cluster has no fencing guard (fencing.enabled is off)")
ANY_HOST = NodeTargets("primary | replica | a node, dcsN or an HAProxy", lambda h: (*h.dcs, *h.haproxies))



@dataclass
class Nemesis:
    """What a fault's actions get: the backend, the cluster's DCS members, the REST password."""

    backend: Backend
    dcs: tuple[str, ...]
    rest_password: str
    cluster_nodes: tuple[str, ...] = ()  # every node of the cluster (a fault on all of them)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    # A planned hand-over from a leader as pgha does it (the poolers paused around Patroni's
    # switchover); without one, the switchover request alone.
    hand_over: Callable[[str], object] | None = None
    # A rolling restart as pgha does it (replicas, a hand-over, the old primary); None: not offered.
    rolling_restart: Callable[[], object] | None = None
    # pg_switch_wal() on the primary: a segment for the archiver to try now; None: not offered.
    switch_wal: Callable[[], object] | None = None
    # DROP the drill's table (returns the moment just before it, T), and restore the cluster to
    # that T as a new cluster, recording what came back; None: not offered (no backups, or not a drill).
    drop_table: Callable[[], float] | None = None
    restore_to_drop: Callable[[], object] | None = None
    # Restore the cluster in place from its repository to the end of its archive (pgha restore
    # --in-place --latest), recording how it went; None: not offered.
    restore_in_place: Callable[[], object] | None = None
    # The primary when the drill started (a fault on another host that is about the primary).
    primary: str | None = None
    # How long `pause` stops a node: below the fencing guard's threshold.
    pause_s: float = PAUSE_SECONDS
    # The fencing guard that held the guards' lease when the drill started; None: no guard.
    active_guard: str | None = None

    def inject(self, fault: str, target: str) -> float:
        """Inject `fault` on a resolved target; returns the time it landed (the moment of the
        action that hurts, e.g. the kill after stall-then-kill's stall)."""
        began = self.clock()
        landed = FAULTS[fault].inject(self, target)
        return began if landed is None else landed

    def heal(self, fault: str, target: str) -> None:
        FAULTS[fault].heal(self, target)

    def network(self) -> NetworkFaults:
        from pgha.backends.base import NetworkFaults

        if not isinstance(self.backend, NetworkFaults):
            raise BackendError("network faults need hosts of their own: bring the cluster up with --backend netns "
                               "or compose")
        return self.backend

    # The backend as the protocol a fault needs (pgha.backends.base): a backend that cannot do it
    # is refused in one line before anything is injected.
    def nodes(self) -> NodeFaults:
        from pgha.backends.base import NodeFaults

        if isinstance(self.backend, NodeFaults):
            return self.backend
        raise self._unable("kill and start nodes")

    def pause(self) -> PauseFaults:
        from pgha.backends.base import PauseFaults

        if isinstance(self.backend, PauseFaults):
            return self.backend
        raise self._unable("freeze nodes")

    def postgres(self) -> PostgresFaults:
        from pgha.backends.base import PostgresFaults

        if isinstance(self.backend, PostgresFaults):
            return self.backend
        raise self._unable("signal PostgreSQL's own processes")

    def components(self) -> ComponentFaults:
        from pgha.backends.base import ComponentFaults

        if isinstance(self.backend, ComponentFaults):
            return self.backend
        raise self._unable("kill and start DCS members and entrypoints")

    def backups(self) -> Backups:
        from pgha.backends.base import Backups

        if isinstance(self.backend, Backups) and self.switch_wal is not None:
            return self.backend
        raise self._unable("break its backup repository (a cluster with backups, run by pgha drill)")

    def _unable(self, what: str) -> BackendError:
        return BackendError(f"the {self.backend.kind} backend cannot {what}")

    def dcs_members(self, target: str) -> list[int]:
        if target == "all":
            return list(range(len(self.dcs)))
        if target == "majority":
            return list(range(len(self.dcs) // 2 + 1))
        return [int(target.removeprefix("dcs"))]


# An action returns the time the fault landed, or None when that is when the action began.
Action = Callable[[Nemesis, str], float | None]


def _nothing(n: Nemesis, target: str) -> None:
    return None


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    targets: Targets
    inject: Action
    heal: Action = _nothing
    # The drill keeps the fault until the cluster recovered (False: a one-shot action).
    held: bool = True
    # Patroni reacts only after its leader key runs out: the fault is held at least ttl +
    # SETTLE_MARGIN_S, or the drill would heal it before anything could happen.
    settles: bool = False
    # Only a fencing guard could react to it: held at least FENCING_WATCH_FACTOR times the
    # guard's threshold plus SETTLE_MARGIN_S (a guard that would fence has done so by then).
    watches_fencing: bool = False
    # Needs hosts of their own (a backend with NetworkFaults).
    network: bool = False
    # Verdicts beyond the standard ones, by the name of their checker (pgha.drill.checkers.CHECKERS),
    # given when the fault hit a node (or, with extra_for_any_target, whatever it hit).
    extra_verdicts: tuple[str, ...] = ()
    extra_for_any_target: bool = False
    # Its own verdicts instead of the standard ones (a fault on the data, not on availability:
    # writes are not expected to recover, and the drill does not wait for them to).
    only_verdicts: tuple[str, ...] | None = None
    # The drill waits for writes to recover before it heals (False: they cannot until the heal).
    awaits_recovery: bool = True
    # Needs the cluster's backup repository (spec.backup).
    needs_backups: bool = False
    # Needs fencing guards (spec.fencing on a backend that fences).
    needs_fencing: bool = False
    # The alert (pgha.render.alert_rules) that must fire about the faulted node, HAProxy or DCS
    # member when the fault lasts longer than the alert needs (its `for:` and the scrapes before).
    alert: str | None = None
    # The drill's table must be in the archive before the load starts: a restore from the archive
    # alone must find it (what the load writes after that is what the fault puts at risk).
    archive_before_load: bool = False


def _stall_then_kill(n: Nemesis, target: str) -> float:
    # The senders stop, not the receivers: a stopped receiver's kernel still takes the WAL into
    # its socket buffer and nothing would be lost. What the senders never sent dies with the
    # primary, unless commits waited for a synchronous standby.
    n.postgres().freeze_walsenders(target)
    n.sleep(STALL_SECONDS)
    landed = n.clock()
    n.nodes().kill_node(target)
    return landed


def pause_seconds(fence_after_s: float | None) -> float:
    """How long a pause lasts: PAUSE_SECONDS, and below the fencing threshold where there is one."""
    return PAUSE_SECONDS if fence_after_s is None else min(PAUSE_SECONDS, PAUSE_FRACTION * fence_after_s)


def _pause(n: Nemesis, target: str) -> None:
    n.pause().freeze_node(target)
    n.sleep(n.pause_s)
    n.pause().thaw_node(target)


def _cut_guard_from_primary(n: Nemesis, guard: str) -> None:
    network = n.network()
    if n.primary is None:
        raise BackendError("isolate-guard needs the primary the drill started with")
    # The guard shares its HAProxy's host: both lose the primary, nothing else does.
    network.cut(guard, [n.primary])


def _lose_node_and_guard(n: Nemesis, node: str) -> float:
    """The active guard's host lost first, then the node: the standby guard must take over the
    guards' lease (after it runs out) before anyone can fence the node."""
    if n.active_guard is None:
        raise BackendError("node-and-guard-loss needs a cluster with fencing guards (fencing.enabled)")
    n.components().kill_component(n.active_guard)
    landed = n.clock()
    n.nodes().kill_node(node)
    return landed


def _start_node_and_guard(n: Nemesis, node: str) -> None:
    n.nodes().start_node(node)
    if n.active_guard is not None:
        n.components().start_component(n.active_guard)


def _switchover(n: Nemesis, leader: str) -> None:
    if n.hand_over is not None:
        n.hand_over(leader)
    else:
        from pgha.ops.patroni_api import request_switchover

        request_switchover(n.backend.reach, n.rest_password, leader)


def _rolling_restart(n: Nemesis, leader: str) -> None:
    if n.rolling_restart is None:
        raise BackendError("rolling-restart needs the cluster's own restart (run by pgha drill)")
    n.rolling_restart()


def _stop_dcs(n: Nemesis, target: str) -> None:
    for member in n.dcs_members(target):
        n.components().stop_dcs_member(member)


def _start_dcs(n: Nemesis, target: str) -> None:
    for member in n.dcs_members(target):
        n.components().start_dcs_member(member)


def _partition(n: Nemesis, target: str) -> None:
    # The node and a minority of the DCS: the DCS majority side can still elect.
    n.network().partition([target, *n.dcs[: len(n.dcs) // 2]])


def _heal_network(n: Nemesis, target: str) -> None:
    n.network().heal_network()


def _start_node(n: Nemesis, target: str) -> None:
    n.nodes().start_node(target)


def _break_archive(n: Nemesis, target: str) -> None:
    n.backups().break_archive()
    # Nothing is archived until a segment is full or archive_timeout passes: switch one, so the
    # archiver tries (and fails) now.
    assert n.switch_wal is not None
    n.switch_wal()


def _heal_archive(n: Nemesis, target: str) -> None:
    n.backups().heal_archive()
    # The archiver waits up to a minute after three failures; a new segment wakes it.
    assert n.switch_wal is not None
    n.switch_wal()


def _drop_table(n: Nemesis, target: str) -> float:
    if n.drop_table is None:
        raise BackendError("drop-table needs a cluster with backups, run by pgha drill")
    return n.drop_table()


def _restore_before(n: Nemesis, target: str) -> None:
    if n.restore_to_drop is None:
        raise BackendError("drop-table needs a cluster with backups, run by pgha drill")
    n.restore_to_drop()


def _lose_every_node(n: Nemesis, target: str) -> float:
    """Every node's processes killed, then its data directory deleted (the cluster's own: moved
    into its scratch directory first, then removed there). The fault lands when the last node is
    gone: a write acknowledged after that moment came from a restored node."""
    backups = n.backups()
    nodes = n.nodes()
    for node in n.cluster_nodes:
        nodes.kill_node(node)
    landed = n.clock()
    for node in n.cluster_nodes:
        if backups.set_aside_data(node, f"lost-{node}"):
            backups.remove_set_aside(f"lost-{node}")
    return landed


def _restore_in_place(n: Nemesis, target: str) -> None:
    if n.restore_in_place is None:
        raise BackendError("disaster needs a cluster with backups, run by pgha drill")
    n.restore_in_place()


def _table(faults: Iterable[Fault]) -> dict[str, Fault]:
    return {f.name: f for f in faults}


FAULTS: dict[str, Fault] = _table([
    Fault("stop", "graceful stop of Patroni (SIGTERM, as `docker stop`); restarted at heal", NODES,
          lambda n, t: n.nodes().stop_node(t), _start_node, alert="PghaNodeUnreachable"),
    # The supervisor (systemd's Restart=, a container's restart policy) brings it back; the heal
    # only makes sure.
    Fault("kill", "SIGKILL to Patroni and PostgreSQL, restarted at once by the supervisor", NODES,
          lambda n, t: n.nodes().crash_node(t), _start_node, held=False),
    Fault("node-loss", "SIGKILL to every process of the node; no restart until heal", NODES,
          lambda n, t: n.nodes().kill_node(t), _start_node, alert="PghaNodeUnreachable"),
    Fault("node-and-guard-loss", "SIGKILL to the active fencing guard, then node-loss: the guard's host lost at "
          "the moment of the fault; a standby guard takes the guards' lease once it runs out, then fences",
          NODES, _lose_node_and_guard, _start_node_and_guard, needs_fencing=True, alert="PghaNodeUnreachable"),
    Fault("freeze", "SIGSTOP to every process of the node (a hung host); SIGCONT at heal", NODES,
          lambda n, t: n.pause().freeze_node(t), lambda n, t: n.pause().thaw_node(t), alert="PghaNodeUnreachable"),
    Fault("pause", f"SIGSTOP to every process of the node for {PAUSE_SECONDS:g} s (or {PAUSE_FRACTION:g} of the "
          "fencing threshold, if shorter), then SIGCONT: a GC pause, a stalled disk; a stall this short must "
          "never be fenced", NODES, _pause, held=False, awaits_recovery=False, extra_verdicts=("not_fenced",)),
    Fault("crash-postgres", "SIGKILL to the postmaster only; Patroni stays up", NODES,
          lambda n, t: n.postgres().kill_postgres(t), held=False),
    Fault("dcs-down", "stop one DCS member (target 'majority' or 'all': that many); restarted at heal",
          DCS_MEMBERS, _stop_dcs, _start_dcs, settles=True, alert="PghaDcsMemberDown"),
    Fault("stall-then-kill", f"pause the primary's WAL senders for {STALL_SECONDS:.0f} s under load, then lose "
          "the primary (node-loss)", NODES, _stall_then_kill, _start_node, alert="PghaNodeUnreachable"),
    Fault("switchover", "planned switchover through Patroni's REST API, with the poolers paused around it",
          NODES, _switchover, held=False),
    Fault("rolling-restart", "restart PostgreSQL everywhere: replicas, a planned hand-over, the old primary "
          "(pgha restart --rolling)", NODES, _rolling_restart, held=False),
    Fault("haproxy-kill", "SIGKILL one HAProxy host; restarted at heal", HAPROXIES,
          lambda n, t: n.components().kill_component(t), lambda n, t: n.components().start_component(t),
          alert="PghaHaproxyDown"),
    Fault("isolate", "cut the host off from every other host; reconnected at heal", ANY_HOST,
          lambda n, t: n.network().isolate(t), _heal_network, settles=True, network=True,
          extra_verdicts=("self_demotion",), alert="PghaNodeUnreachable"),
    Fault("isolate-guard", "cut the active fencing guard's host (and its HAProxy) off from the primary alone, "
          "the replicas still streaming from it: the guard must not fence a primary only it cannot hear",
          GUARDS, _cut_guard_from_primary, _heal_network, held=True, watches_fencing=True, network=True,
          extra_verdicts=("not_fenced",), extra_for_any_target=True),
    Fault("isolate-dcs", "cut a node off from every DCS member; it still reaches the other nodes", NODES,
          lambda n, t: n.network().cut(t, list(n.dcs)), _heal_network, settles=True, network=True),
    Fault("partition", "split the hosts: the node with a minority of the DCS members against the rest", NODES,
          _partition, _heal_network, settles=True, network=True, extra_verdicts=("self_demotion",)),
    Fault("loss", f"drop {LOSS_PERCENT}% of the packets on the host's link, both ways", ANY_HOST,
          lambda n, t: n.network().lose_packets(t, LOSS_PERCENT), _heal_network, settles=True, network=True),
    Fault("lag", f"delay every packet leaving the host by {LAG_MS} ms (tc netem)", ANY_HOST,
          lambda n, t: n.network().lag(t, LAG_MS), _heal_network, settles=True, network=True),
    Fault("archive-fail", "make the backup repository unwritable (a full or lost backup disk): archiving fails, "
          "the primary must keep acknowledging writes; writable again at heal, the archive must catch up",
          REPOSITORY, _break_archive, _heal_archive, extra_verdicts=("archive_caught_up",),
          extra_for_any_target=True, needs_backups=True),
    Fault("drop-table", "DROP the drill's table under load at T (a bad migration); then pgha restores the cluster "
          "to T as a new cluster beside it, compares its rows with what the writers were told, and removes it",
          TABLE, _drop_table, _restore_before, held=False, only_verdicts=("pitr_exact",), awaits_recovery=False,
          needs_backups=True),
    Fault("disaster", "lose every node at once (processes killed, data directories deleted) under load; pgha "
          "restores the cluster in place from its repository (restore --in-place --latest); judged by the "
          "outage (RTO) and the acknowledged writes lost (RPO, bounded by archive_timeout)", EVERY_NODE,
          _lose_every_node, _restore_in_place, held=False, only_verdicts=("outage", "rpo", "split_brain", "rejoin"),
          awaits_recovery=False, needs_backups=True, archive_before_load=True),
])


def settle_seconds(fault: Fault, ttl: float, fence_after_s: float | None) -> float:
    """How long the drill holds `fault` at least, whatever the writes do: long enough for whoever
    could react to it to have reacted."""
    if fault.settles:
        return ttl + SETTLE_MARGIN_S
    if fault.watches_fencing and fence_after_s is not None:
        return FENCING_WATCH_FACTOR * fence_after_s + SETTLE_MARGIN_S
    return 0.0


def fault_named(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise TargetError(f"fault: unknown fault {name!r} (choose from {', '.join(FAULTS)})") from None


def help_text() -> str:
    """The faults for `pgha drill --help`: one paragraph each, what it does and what it takes."""
    return "Faults:\n\n" + "\n\n".join(
        f"{f.name}: {f.description} (target: {f.targets.help}{'; --backend netns or compose' if f.network else ''})"
        for f in FAULTS.values())
