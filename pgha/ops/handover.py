"""Planned operations on a running cluster: a hand-over of the primary role with every pooler
paused around it (`pgha switchover`, the drill's `switchover`), restarts (rolling through a
hand-over), resuming the poolers by hand, and renewing certificates while it runs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import psycopg

from pgha.backends.base import CertificateRenewal
from pgha.cluster import HEALTHY_TIMEOUT, Cluster, ClusterError, journaled
from pgha.errors import BackendError
from pgha.model.topology import SERVER_SQL, server_names, topology
from pgha.net.dial import PgTarget
from pgha.net.pooler_console import PoolerError, paused, resume
from pgha.ops.patroni_api import request_restart, request_switchover
from pgha.ops.routing import route_writes_to
from pgha.waiting import wait_until

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwitchoverResult:
    old: str
    new: str
    writable_s: float  # request -> a write through the read-write entrypoint commits on `new`
    healthy_s: float  # request -> healthy again (the old primary streams from the new one)


@dataclass(frozen=True)
class RestartResult:
    order: list[str]  # the nodes, in the order they restarted
    hand_over: tuple[str, str] | None  # (old, new) primary of a rolling restart
    seconds: float


@journaled
def switchover(cluster: Cluster, to: str | None, timeout: float = HEALTHY_TIMEOUT) -> SwitchoverResult:
    """A planned hand-over of the primary role (to `to`, or to the replica Patroni picks),
    waited out until writes through every entrypoint reach the new primary and the cluster
    is healthy again."""
    if to is not None:
        cluster.spec.node_index(to)  # one line naming the nodes when there is no such node
    old = cluster.wait_healthy(timeout=10).leader
    if old is None:
        raise ClusterError("no primary to switch over from")
    if to == old.name:
        raise ClusterError(f"{to} is the primary already")
    start = time.monotonic()
    new, writable = hand_over(cluster, old.name, to, timeout)
    log.info(f"{new} takes writes; waiting for {old.name} to follow it")
    cluster.wait_healthy(timeout=timeout)
    return SwitchoverResult(old.name, new, writable, time.monotonic() - start)


@journaled
def hand_over(cluster: Cluster, leader: str, to: str | None,
              timeout: float = HEALTHY_TIMEOUT) -> tuple[str, float]:
    """Patroni's switchover from `leader`, with every pooler paused around it: transactions
    in flight finish first, new ones wait, and go on once every HAProxy sends writes to the
    new primary and it accepts them. Returns (new primary, seconds until then)."""
    names = server_names(topology(cluster.spec))
    start = time.monotonic()
    if cluster.spec.pooler.enabled:
        log.info("pausing the poolers (transactions in flight finish, new ones wait)")
    try:
        with paused(cluster.reach, cluster.secrets.pooler_admin_password, cluster.spec.pooler.pause_timeout_s):
            log.info(f"asking {leader} to hand over" + (f" to {to}" if to else ""))
            request_switchover(cluster.reach, cluster.secrets.rest_password, leader, to)
            promoted = wait_until(lambda: _writable_node(cluster, exclude=leader), timeout, every=0.02,
                                  cancelled=cluster.cancelled)
            if promoted is None:
                raise ClusterError(f"no node took writes within {timeout:.0f} s of the switchover")
            # Told now rather than found by the next health checks.
            route_writes_to(cluster.reach, promoted)
            new = wait_until(lambda: _writes_reach_one_new_primary(cluster, names, leader), timeout, every=0.02,
                             cancelled=cluster.cancelled)
            if new is None:
                raise ClusterError(f"writes did not reach a new primary within {timeout:.0f} s of the switchover")
            if cluster.spec.pooler.enabled:
                log.info(f"{new} takes writes through every HAProxy; resuming the poolers")
    except (PoolerError, BackendError) as e:
        raise ClusterError(str(e)) from None
    if to is not None and new != to:
        raise ClusterError(f"Patroni handed over to {new}, not {to}")
    return new, time.monotonic() - start


def _writable_node(cluster: Cluster, exclude: str) -> str | None:
    """A node other than `exclude` that accepts writes, asked directly."""
    for node in cluster.spec.node_names:
        if node == exclude:
            continue
        try:
            target = cluster.clients.node_target(node, login=cluster.clients.app)
            with target.connect(connect_timeout=1, autocommit=True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            continue
        if row is not None and not row[0]:
            return node
    return None


def _writes_reach_one_new_primary(cluster: Cluster, names: dict[tuple[str, int], str], old: str) -> str | None:
    """The node every read-write entrypoint reaches, when it is one, not `old`, and writable."""
    seen = set()
    for port in cluster.clients.rw_entrypoint_ports:
        try:
            target = PgTarget(cluster.clients.dsn(port, login=cluster.clients.app))
            with target.connect(connect_timeout=2, autocommit=True) as conn:
                row = conn.execute(f"SELECT {SERVER_SQL}, pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return None
        if row is None or row[2]:
            return None
        seen.add(names.get((row[0], row[1])))
    (node,) = seen if len(seen) == 1 else (None,)
    return node if node not in (None, old) else None


@journaled
def resume_poolers(cluster: Cluster) -> list[str]:
    """RESUME every pooler (after a hand-over that pgha could not finish); the poolers."""
    if not cluster.spec.pooler.enabled:
        raise ClusterError(f"cluster {cluster.name!r} runs without a pooler")
    problems = resume(cluster.reach, cluster.secrets.pooler_admin_password)
    if problems:
        raise ClusterError(f"pooler did not resume: {problems[0]}")
    return [p.name for p in cluster.reach.topology.poolers]


@journaled
def restart(cluster: Cluster, rolling: bool, timeout: float = HEALTHY_TIMEOUT) -> RestartResult:
    """PostgreSQL restarted on every node (e.g. after a setting that needs it). Rolling: the
    replicas one by one, then a planned hand-over (the poolers paused around it), then the old
    primary, so the primary is never down. Otherwise the primary restarts in place, last."""
    start = time.monotonic()
    old = cluster.wait_healthy(timeout=10).leader
    if old is None:
        raise ClusterError("no primary: restart needs a healthy cluster")
    replicas = [n for n in cluster.spec.node_names if n != old.name]
    order: list[str] = []
    handed: tuple[str, str] | None = None
    try:
        for node in replicas:
            log.info(f"restarting replica {node}")
            request_restart(cluster.reach, cluster.secrets.rest_password, node)
            order.append(node)
            cluster.wait_healthy(timeout=timeout)
        if rolling and replicas:
            new, _ = hand_over(cluster, old.name, None, timeout)
            handed = (old.name, new)
            cluster.wait_healthy(timeout=timeout)
            log.info(f"restarting {old.name}, a replica now")
        else:
            log.info(f"restarting the primary {old.name} in place")
        request_restart(cluster.reach, cluster.secrets.rest_password, old.name)
        order.append(old.name)
    except BackendError as e:
        raise ClusterError(str(e)) from None
    cluster.wait_healthy(timeout=timeout)
    return RestartResult(order, handed, time.monotonic() - start)


@journaled
def rotate_certs(cluster: Cluster) -> list[str]:
    """Every host's certificate renewed while the cluster runs (no restart); the components
    that took the new ones up. The cluster must be healthy before and is again after."""
    if not cluster.spec.tls:
        raise ClusterError(f"cluster {cluster.name!r} runs without TLS (spec.tls is off): no certificates to renew")
    backend = cluster.backend()
    if not isinstance(backend, CertificateRenewal):
        raise ClusterError(f"pgha rotate-certs does not renew a {backend.kind} cluster's certificates yet; "
                           "the netns, local and compose backends do")
    cluster.wait_healthy(timeout=10)
    done = backend.renew_certificates()
    log.info("checking that the cluster stays healthy")
    cluster.wait_healthy(timeout=60)
    return done
