"""Line 10 of `pgha check`: a lost primary is fenced and replaced within seconds (the fencing
guards; pgha.ops.fencing_guard). The reading of the guards' reports is pure (`fencing_outcome`),
so `pgha status` says the same."""

from __future__ import annotations

from pgha.backends.base import Fencing, GuardReport
from pgha.checks.result import Outcome
from pgha.cluster import Cluster
from pgha.model.backend_kinds import backend_kind
from pgha.model.spec import Spec
from pgha.net.probe import ClusterState

NAME = "A lost primary is fenced and replaced within seconds (fencing guard armed)"
# A guard writes its state at least once a second: older than this, it is not running its loop.
STALE_S = 5.0


def why_off(spec: Spec) -> str:
    """Why a cluster keeps no fencing guard, in the words an operator needs."""
    wait = f"a lost primary is replaced after Patroni's ttl ({spec.patroni.ttl} s)"
    if spec.profile == "seed":
        return f"off, as in the lab: {wait}"
    if not backend_kind(spec.backend).fences:
        return f"off: the {spec.backend} backend has no fence yet; {wait}"
    if spec.dcs.kind != "etcd":
        return f"off: the guards hold their key in etcd, and this cluster's DCS is {spec.dcs.kind}; {wait}"
    return f"off (fencing.enabled is false): {wait}"


def fencing_outcome(spec: Spec, reports: list[GuardReport], leader: str | None) -> Outcome:
    """PASS when exactly one guard is active and armed, watching the primary the cluster has (pure)."""
    if not spec.fencing.enabled:
        return Outcome(NAME, "SKIP", why_off(spec))
    down = [r.name for r in reports if not r.running]
    if down:
        return Outcome(NAME, "FAIL", f"guard {', '.join(down)} is not running (`pgha up` starts it again)")
    stale = [r.name for r in reports if r.state is None or r.age_s is None or r.age_s > STALE_S]
    if stale:
        return Outcome(NAME, "FAIL", f"guard {', '.join(stale)} runs but has not reported for {STALE_S:g} s "
                                     "(see its log)")
    active = [r for r in reports if r.state and r.state.get("active")]
    if not active:
        why = next((str(r.state.get("why")) for r in reports if r.state), "none holds the guards' key")
        return Outcome(NAME, "FAIL", f"no guard is active: {why}")
    if len(active) > 1:
        return Outcome(NAME, "FAIL", f"{len(active)} guards say they are active: "
                                     f"{', '.join(r.name for r in active)}")
    guard = active[0]
    assert guard.state is not None
    watching = guard.state.get("leader")
    if not guard.state.get("armed") or watching is None:
        return Outcome(NAME, "FAIL", f"guard {guard.name} is active but not armed: {guard.state.get('why')}")
    if leader is not None and watching != leader:
        return Outcome(NAME, "FAIL", f"guard {guard.name} watches {watching}, but the primary is {leader}")
    standby = [r.name for r in reports if r is not guard]
    others = f"; {', '.join(standby)} standing by" if standby else ""
    fenced = guard.state.get("fenced") or {}
    history = f"; fenced so far: {', '.join(f'{n} at {t}' for n, t in fenced.items())}" if fenced else ""
    return Outcome(NAME, "PASS", f"fencing guard '{guard.name}' is active and watches {watching}: silent for "
                                 f"{spec.fencing.fence_after_s:g} s and confirmed by its replicas, it is fenced "
                                 f"and its leader key removed{others}{history}")


def check_fencing(cluster: Cluster, state: ClusterState) -> Outcome:
    backend = cluster.backend()
    reports = backend.guard_reports() if isinstance(backend, Fencing) and cluster.spec.fencing.enabled else []
    return fencing_outcome(cluster.spec, reports, state.leader.name if state.leader else None)
