"""Line 8 of `pgha check`: every pooler's transactions land on the primary (and, under TLS, each
pooler refuses a cleartext client)."""

from __future__ import annotations

import psycopg

from pgha.checks.result import Outcome, one_row, sample
from pgha.cluster import Cluster
from pgha.net.dial import PgTarget
from pgha.net.probe import ClusterState


def check_pooler(cluster: Cluster, state: ClusterState) -> Outcome:
    name = "every pooler pools transactions to the primary"
    spec = cluster.spec
    if not spec.ports.pooler:
        return Outcome(name, "SKIP", f"cluster {cluster.name!r} runs without a pooler (profile {spec.profile})")
    leader = state.leader
    if leader is None:
        return Outcome(name, "FAIL", "Patroni reports no single leader")
    evidence, failed = [], []
    for k, port in enumerate(spec.ports.pooler):
        samples = sample(cluster, PgTarget(cluster.clients.pooler_dsn(k=k)), 3)
        errors = [s for s in samples if isinstance(s, str)]
        hits = [s for s in samples if not isinstance(s, str)]
        evidence.append(f"port {port}: {len(hits)}/3 transactions on {sorted({n for n, _ in hits})}")
        if errors:
            failed.append(f"port {port}: {errors[0]}")
        elif any(s != (leader.name, False) for s in hits):
            failed.append(f"port {port} reached a node in recovery or not the primary")
        if spec.tls:
            plain = PgTarget(cluster.clients.pooler_dsn(k=k, sslmode="disable"))
            try:
                one_row(plain, "SELECT 1")
                failed.append(f"port {port} took a cleartext client")
            except psycopg.Error:
                evidence.append(f"port {port} refused cleartext")
    text = f"{'; '.join(evidence)} (the primary is {leader.name})"
    return Outcome(name, "FAIL" if failed else "PASS", f"{text}; {failed[0]}" if failed else text)
