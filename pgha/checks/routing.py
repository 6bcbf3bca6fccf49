"""Lines 3, 4 and 5 of `pgha check`: where the entrypoints send fresh sessions, and that exactly
one node is the primary."""

from __future__ import annotations

import psycopg

from pgha.checks.result import Outcome, one_row, replica_names, sample
from pgha.cluster import Cluster
from pgha.net.probe import ClusterState


def check_rw_entrypoint(cluster: Cluster, state: ClusterState) -> Outcome:
    name = "the read-write entrypoint reaches the primary and no replica"
    leader = state.leader
    if leader is None:
        return Outcome(name, "FAIL", "Patroni reports no single leader")
    spec = cluster.spec
    samples = sample(cluster, cluster.clients.entrypoint(), 5)
    errors = [s for s in samples if isinstance(s, str)]
    hits = [s for s in samples if not isinstance(s, str)]
    wrong = [s for s in hits if s != (leader.name, False)]
    evidence = (f"port {spec.ports.entrypoint_rw}: {len(hits)}/5 connections reached "
                f"{sorted({n for n, _ in hits})} (the primary is {leader.name})")
    if errors:
        return Outcome(name, "FAIL", f"{evidence}; errors: {errors[0]}")
    if wrong:
        return Outcome(name, "FAIL", f"{evidence}; reached a node in recovery or not the primary")
    return Outcome(name, "PASS", evidence)


def check_ro_entrypoint(cluster: Cluster, state: ClusterState) -> Outcome:
    name = "the read-only entrypoint reaches replicas only"
    spec = cluster.spec
    if spec.ports.entrypoint_ro is None:
        return Outcome(name, "SKIP", f"profile {spec.profile} has no read-only entrypoint (as the lab)")
    replicas = replica_names(cluster, state)
    if not replicas:
        return Outcome(name, "SKIP", "the cluster has no replicas")
    samples = sample(cluster, cluster.clients.entrypoint(readonly=True), 2 * len(replicas) + 2)
    errors = [s for s in samples if isinstance(s, str)]
    hits = [s for s in samples if not isinstance(s, str)]
    seen = sorted({n for n, _ in hits})
    evidence = f"port {spec.ports.entrypoint_ro}: reached {seen}; replicas are {sorted(replicas)}"
    if errors:
        return Outcome(name, "FAIL", f"{evidence}; errors: {errors[0]}")
    if any(not rec or node not in replicas for node, rec in hits):
        return Outcome(name, "FAIL", f"{evidence}; reached a node that is not a replica")
    return Outcome(name, "PASS", evidence)


def check_one_primary(cluster: Cluster, state: ClusterState) -> Outcome:
    name = "exactly one primary, per Patroni and per pg_is_in_recovery()"
    leaders = [m.name for m in state.members if m.is_leader]
    writable: list[str] = []
    unreachable: list[str] = []
    for node in cluster.spec.node_names:
        try:
            (recovery,) = one_row(cluster.clients.node_target(node), "SELECT pg_is_in_recovery()")
            if not recovery:
                writable.append(node)
        except psycopg.Error:
            unreachable.append(node)
    evidence = f"Patroni leader(s): {leaders or 'none'}; not in recovery: {writable or 'none'}"
    if unreachable:
        evidence += f"; unreachable: {unreachable}"
    ok = len(leaders) == 1 and writable == leaders and not unreachable
    return Outcome(name, "PASS" if ok else "FAIL", evidence)
