"""The running cluster as seen from outside: Patroni's REST API, the DCS and HAProxy's stats.

Health is polled through REST (`GET /cluster`), never through patronictl: each patronictl call
against ZooKeeper leaves a session alive for ttl seconds.
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from pgha.errors import BackendError
from pgha.model.spec import Spec
from pgha.model.topology import RO_PROXY, RW_PROXY
from pgha.net.dcs import member_health
from pgha.net.dial import http_request
from pgha.net.pooler_console import PoolerState
from pgha.net.pooler_console import states as pooler_states
from pgha.net.reach import Reach

HTTP_TIMEOUT = 1.5


@dataclass(frozen=True)
class MemberState:
    name: str
    host: str
    port: int
    role: str  # leader | replica | sync_standby | quorum_standby | standby_leader
    state: str  # running | streaming | stopped | starting ...
    timeline: int | None
    lag: int | None  # bytes behind the leader; None when unknown

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"


@dataclass(frozen=True)
class DcsMemberState:
    name: str
    address: str
    healthy: bool
    detail: str


@dataclass(frozen=True)
class BackendServerState:
    proxy: str
    server: str
    status: str  # UP | DOWN | MAINT | no check ...
    haproxy: str = "haproxy"  # which HAProxy host says so


@dataclass(frozen=True)
class ClusterState:
    members: tuple[MemberState, ...]
    dcs: tuple[DcsMemberState, ...]
    haproxy: tuple[BackendServerState, ...]
    errors: tuple[str, ...] = field(default=())
    poolers: tuple[PoolerState, ...] = field(default=())

    @property
    def leader(self) -> MemberState | None:
        leaders = [m for m in self.members if m.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "members": [m.__dict__ for m in self.members],
            "dcs": [d.__dict__ for d in self.dcs],
            "haproxy": [h.__dict__ for h in self.haproxy],
            "poolers": [p.__dict__ for p in self.poolers],
            "errors": list(self.errors),
        }


@dataclass(frozen=True)
class HealthProblem:
    """Why a cluster is not healthy, and the component whose log says more (None: no one in
    particular, e.g. no leader at all)."""

    message: str
    component: str | None = None

    def __str__(self) -> str:
        return self.message


def health_problem(spec: Spec, state: ClusterState) -> HealthProblem | None:
    """Why the cluster is not healthy yet, or None when it is (pure)."""
    unhealthy_dcs = [d.name for d in state.dcs if not d.healthy]
    if unhealthy_dcs:
        return HealthProblem(f"DCS member(s) not healthy: {', '.join(unhealthy_dcs)}", unhealthy_dcs[0])
    names = {m.name for m in state.members}
    missing = [n for n in spec.node_names if n not in names]
    if missing:
        return HealthProblem(f"node(s) not registered in the DCS: {', '.join(missing)}", missing[0])
    leaders = [m for m in state.members if m.is_leader]
    if len(leaders) != 1:
        return HealthProblem(f"expected one leader, found {len(leaders)}")
    leader = leaders[0]
    if leader.state != "running":
        return HealthProblem(f"leader {leader.name} is {leader.state}", leader.name)
    for m in state.members:
        if m is not leader and (m.state != "streaming" or m.lag is None):
            return HealthProblem(f"replica {m.name} is {m.state}, not streaming yet", m.name)
    if spec.patroni.synchronous_mode and spec.nodes > 1 and not any(m.role == "sync_standby" for m in state.members):
        # Until Patroni names a synchronous standby, no replica may be promoted: a failover at
        # that moment would wait for the old primary forever.
        return HealthProblem("Patroni has not chosen a synchronous standby yet", leader.name)
    hosts = sorted({s.haproxy for s in state.haproxy}) or ["haproxy"]
    if len(hosts) < spec.haproxy.hosts:
        return HealthProblem("an HAProxy host does not answer on its admin socket", "haproxy")
    for host in hosts:
        problem = _routing_problem(spec, state, leader, host)
        if problem:
            return HealthProblem(problem, host)
    for pooler in state.poolers:
        if not pooler.answered:
            return HealthProblem(f"pooler {pooler.name} does not answer ({pooler.error})", pooler.name)
    return None


def _routing_problem(spec: Spec, state: ClusterState, leader: MemberState, host: str) -> str | None:
    who = "HAProxy" if host == "haproxy" else host
    servers = [s for s in state.haproxy if s.haproxy == host]
    rw = {s.server: s.status for s in servers if s.proxy == RW_PROXY}
    if rw.get(leader.name) != "UP":
        return f"{who} does not route to the leader {leader.name} yet"
    wrongly_up = [s for s, st in rw.items() if st == "UP" and s != leader.name]
    if wrongly_up:
        return f"{who} still routes writes to {', '.join(wrongly_up)}"
    if spec.haproxy.readonly_port:
        ro = {s.server: s.status for s in servers if s.proxy == RO_PROXY}
        down = [m.name for m in state.members if m is not leader and ro.get(m.name) != "UP"]
        if down:
            return f"{who} read-only port does not route to {', '.join(down)} yet"
    return None


def patroni_members(reach: Reach) -> tuple[list[MemberState], list[str]]:
    """Members per the first node whose REST API answers `GET /cluster`."""
    errors: list[str] = []
    for node in reach.spec.node_names:
        try:
            _, data = http_request(reach.rest(node), "cluster", HTTP_TIMEOUT)
        except OSError as e:
            errors.append(f"{node}: REST API not answering ({e.__class__.__name__})")
            continue
        if not isinstance(data, dict):
            errors.append(f"{node}: REST API gave no cluster view")
            continue
        return [_member(m) for m in data.get("members", [])], []
    return [], errors


def _member(m: dict[str, Any]) -> MemberState:
    lag = m.get("lag")
    if m.get("role") == "leader":
        lag = 0
    return MemberState(
        name=str(m.get("name")),
        host=str(m.get("host")),
        port=int(m.get("port", 0)),
        role=str(m.get("role")),
        state=str(m.get("state")),
        timeline=m.get("timeline"),
        lag=lag if isinstance(lag, int) else None,
    )


def node_rest(reach: Reach, node: str, endpoint: str = "patroni",
              timeout: float = HTTP_TIMEOUT) -> tuple[int, Any]:
    """(HTTP status, JSON body) of one node's REST endpoint; (0, None) when it does not answer."""
    try:
        return http_request(reach.rest(node), endpoint, timeout)
    except OSError:
        return 0, None


PRIMARY_ROLES = ("primary", "master")  # Patroni before 3.0 said "master"


def leader(reach: Reach, nodes: Iterable[str]) -> str | None:
    """The first node whose own REST API says it runs as primary; None if none answers so."""
    for node in nodes:
        code, body = node_rest(reach, node)
        if code and isinstance(body, dict) and body.get("role") in PRIMARY_ROLES:
            return node
    return None


def dcs_members(reach: Reach) -> list[DcsMemberState]:
    out = []
    for i, place in enumerate(reach.topology.dcs):
        ep = reach.dcs_client(i)
        try:
            healthy, detail = member_health(reach.spec.dcs.kind, ep, HTTP_TIMEOUT)
        except (OSError, ValueError, AttributeError) as e:
            healthy, detail = False, f"not answering ({e.__class__.__name__})"
        out.append(DcsMemberState(place.name, str(ep), healthy, detail))
    return out


def haproxy_servers(name: str, socket_path: Path) -> list[BackendServerState]:
    """One HAProxy's view of each server, from its admin socket (`show stat`)."""
    try:
        text = haproxy_command(socket_path, "show stat", HTTP_TIMEOUT).lstrip("# ")
    except OSError:
        return []
    rows = csv.DictReader(io.StringIO(text))
    return [
        BackendServerState(r["pxname"], r["svname"], r["status"].split(" ")[0], name)
        for r in rows
        if r.get("svname") not in ("FRONTEND", "BACKEND") and r.get("pxname") in (RW_PROXY, RO_PROXY)
    ]


def haproxy_command(socket_path: Path, command: str, timeout: float) -> str:
    """One command on an HAProxy's admin socket, and its whole answer; raises OSError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(socket_path))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def replace_certificate(socket_path: Path, pem: PurePath, text: str, who: str) -> None:
    """HAProxy's runtime API: the certificate it loaded from `pem` (the path as HAProxy knows it)
    replaced by `text` and committed, with no reload; BackendError if it did not take it."""
    try:
        haproxy_command(socket_path, f"set ssl cert {pem} <<\n{text}\n", 5.0)
        answer = haproxy_command(socket_path, f"commit ssl cert {pem}", 5.0)
    except OSError as e:
        raise BackendError(f"{who} did not take its new certificate: {e}") from None
    if "Success" not in answer:
        raise BackendError(f"{who} did not take its new certificate: {answer.strip()[:200]}")


def observe(reach: Reach, pooler_password: str = "") -> ClusterState:
    members, errors = patroni_members(reach)
    return ClusterState(
        poolers=tuple(pooler_states(reach, pooler_password)) if reach.topology.poolers else (),
        members=tuple(sorted(members, key=lambda m: m.name)),
        dcs=tuple(dcs_members(reach)),
        haproxy=tuple(s for name, path in reach.haproxy_sockets.items() for s in haproxy_servers(name, path)),
        errors=tuple(errors),
    )
