"""Where each component of a cluster lives: its address, its ports and, in the netns backend, its
own network namespace. Pure: derived from the spec alone, so renderers and probes agree.

The local backend puts every node and DCS member on one loopback address with a port block per
cluster; the netns backend gives every component a host address of its own on a private network
and the standard ports, exactly as separate machines would have them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from pgha.model.backend_kinds import backend_kind
from pgha.model.ports import (
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    HAPROXY_RO_PORT,
    HAPROXY_RW_PORT,
    HAPROXY_STATS_PORT,
    POOLER_PORT,
    POSTGRES_PORT,
    PROMETHEUS_PORT,
    REST_PORT,
    ZK_CLIENT_PORT,
    ZK_ELECTION_PORT,
    ZK_PEER_PORT,
)
from pgha.model.spec import Spec

# The names of HAProxy's proxies: the read-write entrypoint, the read-only one, and (netns only,
# where pgha hands HAProxy a host-facing socket for the pooler beside it) the pooler's.
RW_PROXY = "primary"
RO_PROXY = "replicas"
POOLER_PROXY = "pooler"

Kind = Literal["node", "dcs", "haproxy", "pooler", "repository", "backup-agent", "guard", "monitor"]

# Host numbers inside the cluster network (netns backend).
_NODE_HOST, _DCS_HOST, _HAPROXY_HOST, _POOLER_HOST, _REPOSITORY_HOST = 10, 20, 30, 40, 50

# The host that keeps the backups when the nodes reach it over the network (pgBackRest's TLS
# server), and the name of the pgBackRest server beside each node that it backs the node up through.
REPOSITORY = "backup"


def backup_agent_name(node: str) -> str:
    return f"{node}-pgbackrest"


MONITOR = "prometheus"


def guard_name(k: int) -> str:
    return "guard" if k == 0 else f"guard{k}"


def dcs_member_name(i: int) -> str:
    return f"dcs{i}"


def haproxy_name(k: int) -> str:
    # The first HAProxy keeps the plain name the local backend has always used.
    return "haproxy" if k == 0 else f"haproxy{k}"


def pooler_name(k: int) -> str:
    return "pooler" if k == 0 else f"pooler{k}"


@dataclass(frozen=True)
class Place:
    name: str  # component name: "node0", "dcs1", "haproxy"
    kind: Kind
    index: int
    address: str  # what it binds and what others connect to
    netns: str | None  # network namespace name (netns backend only)


@dataclass(frozen=True)
class NodePorts:
    postgres: int
    rest: int


@dataclass(frozen=True)
class DcsPorts:
    client: int
    peer: int
    election: int | None


# Each DCS kind's standard ports (a table, not a test: the topology sits below the component
# kinds, pgha.components, and a new DCS kind adds its row here).
STANDARD_DCS_PORTS = {
    "etcd": DcsPorts(ETCD_CLIENT_PORT, ETCD_PEER_PORT, None),
    "zookeeper": DcsPorts(ZK_CLIENT_PORT, ZK_PEER_PORT, ZK_ELECTION_PORT),
}


@dataclass(frozen=True)
class HAProxyPorts:
    rw: int
    ro: int | None
    stats: int


@dataclass(frozen=True)
class Topology:
    spec: Spec
    nodes: tuple[Place, ...]
    dcs: tuple[Place, ...]
    haproxies: tuple[Place, ...]
    node_ports: tuple[NodePorts, ...]
    dcs_ports: tuple[DcsPorts, ...]
    haproxy_ports: tuple[HAProxyPorts, ...]
    # PgBouncer beside each HAProxy (same address, same namespace), and the port it listens on
    # there; none without the pooler.
    poolers: tuple[Place, ...]
    pooler_ports: tuple[int, ...]
    # Networks whose clients PostgreSQL admits (pg_hba), as CIDR strings.
    client_networks: tuple[str, ...]
    switch_netns: str | None  # the namespace holding the bridge (netns backend)
    # With backups on hosts of their own (netns with TLS): the repository host, which runs
    # pgBackRest's TLS server and takes the backups, and a pgBackRest TLS server beside each node
    # (same namespace, same address) that it reaches the node's PostgreSQL through. Elsewhere
    # none: the nodes write a repository on their own machine.
    repository: tuple[Place, ...] = ()
    backup_agents: tuple[Place, ...] = ()
    # The fencing guard beside each HAProxy (same address, same namespace), with fencing on.
    guards: tuple[Place, ...] = ()
    # Prometheus beside the first HAProxy, with monitoring on, and its web port there.
    monitors: tuple[Place, ...] = ()
    monitor_port: int | None = None

    @property
    def places(self) -> tuple[Place, ...]:
        return (self.dcs + self.nodes + self.haproxies + self.poolers + self.repository + self.backup_agents
                + self.guards + self.monitors)

    @property
    def hosts(self) -> tuple[Place, ...]:
        """The places with an address of their own (a pooler and a guard share their HAProxy's
        host, a backup agent its node's)."""
        return self.dcs + self.nodes + self.haproxies + self.repository

    def place(self, name: str) -> Place:
        for p in self.places:
            if p.name == name:
                return p
        raise KeyError(name)

    def node(self, name: str) -> tuple[Place, NodePorts]:
        i = self.spec.node_index(name)
        return self.nodes[i], self.node_ports[i]

    @property
    def prefix_len(self) -> int:
        return ipaddress.ip_network(self.spec.network).prefixlen


def netns_name(spec: Spec, component: str) -> str:
    return f"pgha-{spec.name}-{component}"


def topology(spec: Spec) -> Topology:
    kind = backend_kind(spec.backend)
    if kind.hosts_of_their_own:
        return _netns_topology(spec, named_namespaces=kind.named_namespaces)
    return _shared_host_topology(spec)


def _shared_host_topology(spec: Spec) -> Topology:
    p = spec.ports
    nodes = tuple(Place(n, "node", i, spec.node_host, None) for i, n in enumerate(spec.node_names))
    dcs = tuple(Place(dcs_member_name(i), "dcs", i, spec.node_host, None) for i in range(spec.dcs.members))
    return Topology(
        spec=spec,
        nodes=nodes,
        dcs=dcs,
        haproxies=(Place(haproxy_name(0), "haproxy", 0, spec.host, None),),
        node_ports=tuple(NodePorts(p.postgres[i], p.rest[i]) for i in range(spec.nodes)),
        dcs_ports=tuple(
            DcsPorts(p.dcs_client[i], p.dcs_peer[i], p.dcs_election[i] if p.dcs_election else None)
            for i in range(spec.dcs.members)
        ),
        haproxy_ports=(HAProxyPorts(p.entrypoint_rw, p.entrypoint_ro, p.stats),),
        poolers=tuple(Place(pooler_name(k), "pooler", k, spec.host, None) for k in range(len(p.pooler))),
        pooler_ports=p.pooler,
        # Connections to node_host on loopback arrive from 127.0.0.1, so both are listed.
        client_networks=tuple(sorted({f"{spec.host}/32", f"{spec.node_host}/32"})),
        switch_netns=None,
        guards=_guards(spec, (Place(haproxy_name(0), "haproxy", 0, spec.host, None),)),
        monitors=(Place(MONITOR, "monitor", 0, spec.host, None),) if spec.monitoring.enabled else (),
        monitor_port=p.monitoring if spec.monitoring.enabled else None,
    )


def _guards(spec: Spec, haproxies: tuple[Place, ...]) -> tuple[Place, ...]:
    if not spec.fencing.enabled:
        return ()
    return tuple(Place(guard_name(h.index), "guard", h.index, h.address, h.netns) for h in haproxies)


def netns_topology_ports(spec: Spec, haproxy_hosts: int) -> tuple[
        tuple[NodePorts, ...], tuple[DcsPorts, ...], tuple[HAProxyPorts, ...]]:
    """The standard ports of components that each have an address to themselves."""
    ro = HAPROXY_RO_PORT if spec.haproxy.readonly_port else None
    dcs = STANDARD_DCS_PORTS[spec.dcs.kind]
    return ((NodePorts(POSTGRES_PORT, REST_PORT),) * spec.nodes, (dcs,) * spec.dcs.members,
            (HAProxyPorts(HAPROXY_RW_PORT, ro, HAPROXY_STATS_PORT),) * haproxy_hosts)


def _netns_topology(spec: Spec, named_namespaces: bool = True) -> Topology:
    net = ipaddress.ip_network(spec.network)

    def host(n: int) -> str:
        return str(net.network_address + n)

    def place(name: str, kind: Kind, i: int, n: int) -> Place:
        return Place(name, kind, i, host(n), netns_name(spec, name) if named_namespaces else None)

    node_ports, dcs_ports, haproxy_ports = netns_topology_ports(spec, spec.haproxy.hosts)
    haproxies = tuple(place(haproxy_name(k), "haproxy", k, _HAPROXY_HOST + k) for k in range(spec.haproxy.hosts))
    if not spec.pooler.enabled:
        poolers: tuple[Place, ...] = ()
    elif named_namespaces:
        # Beside its HAProxy: same namespace, same address (netns).
        poolers = tuple(Place(pooler_name(h.index), "pooler", h.index, h.address, h.netns) for h in haproxies)
    else:
        # A container is a host of its own (compose): the pooler gets one beside its HAProxy's.
        poolers = tuple(Place(pooler_name(k), "pooler", k, host(_POOLER_HOST + k), None)
                        for k in range(len(haproxies)))
    nodes = tuple(place(n, "node", i, _NODE_HOST + i) for i, n in enumerate(spec.node_names))
    # pgBackRest's TLS server needs the cluster's certificates; without TLS (or in containers,
    # which keep no backups yet) the nodes write the repository's directory themselves.
    remote_repository = named_namespaces and spec.backup.enabled and spec.tls
    repository = (place(REPOSITORY, "repository", 0, _REPOSITORY_HOST),) if remote_repository else ()
    agents = tuple(Place(backup_agent_name(n.name), "backup-agent", n.index, n.address, n.netns)
                   for n in nodes) if remote_repository else ()
    return Topology(
        spec=spec,
        nodes=nodes,
        dcs=tuple(place(dcs_member_name(i), "dcs", i, _DCS_HOST + i) for i in range(spec.dcs.members)),
        haproxies=haproxies,
        node_ports=node_ports,
        dcs_ports=dcs_ports,
        haproxy_ports=haproxy_ports,
        poolers=poolers,
        pooler_ports=(POOLER_PORT,) * len(poolers),
        client_networks=(str(net),),
        switch_netns=netns_name(spec, "switch") if named_namespaces else None,
        repository=repository,
        backup_agents=agents,
        guards=_guards(spec, haproxies),
        # Beside the first HAProxy: the host clients already reach, in its namespace.
        monitors=(Place(MONITOR, "monitor", 0, haproxies[0].address, haproxies[0].netns),)
        if spec.monitoring.enabled and haproxies else (),
        monitor_port=PROMETHEUS_PORT if spec.monitoring.enabled else None,
    )


# What a session asks to learn which server it is on: (address, port) identify a node.
SERVER_SQL = "host(inet_server_addr()), inet_server_port()"


def server_names(topo: Topology) -> dict[tuple[str, int], str]:
    """(address, port) as PostgreSQL reports it -> node name."""
    return {(place.address, ports.postgres): place.name
            for place, ports in zip(topo.nodes, topo.node_ports, strict=True)}


def multihost_hosts(spec: Spec, readonly: bool = False) -> list[tuple[str, int]]:
    """What a libpq multi-host URI lists: every node where clients reach the nodes directly,
    otherwise every HAProxy host's entrypoint (no single proxy to lose); for reads, the
    read-only entrypoint first."""
    p, kind = spec.ports, backend_kind(spec.backend)
    if kind.direct_nodes_on is not None:
        host = spec.node_host if kind.direct_nodes_on == "node_host" else spec.host
        return [(host, port) for port in p.postgres]
    ro = [p.entrypoint_ro] if readonly and p.entrypoint_ro is not None else []
    return [(spec.host, port) for port in (*ro, p.entrypoint_rw, *p.entrypoint_rw_more)]


@dataclass(frozen=True)
class StopStep:
    """Components stopped together, and why they go at this point."""

    places: tuple[Place, ...]
    why: str


def stop_order(topo: Topology, leader: str | None) -> list[StopStep]:
    """The one order a cluster stops in (`pgha down`, a failed `up` undoing what it started, every
    backend): the entrypoints first, so that no client reaches a node that is going down; the
    replicas, then the primary: stopped together, a replica may take over while the primary shuts
    down, and the old primary's shutdown checkpoint then diverges from it; the DCS members last,
    one at a time: stopped together, etcd members wait seconds for a leader transfer that cannot
    happen. pgBackRest's servers stop after the nodes, before the DCS. The fencing guards go before
    everything: a node pgha stops on purpose is not one to fence."""
    steps = [StopStep(topo.guards, "the fencing guards first: nothing fences a node stopped on purpose"),
             StopStep(topo.monitors, "Prometheus before what it watches: a cluster stopped on purpose raises no alert"),
             StopStep((*topo.poolers, *topo.haproxies), "the entrypoints first: no client reaches a node "
                                                         "that is going down")]
    replicas = tuple(p for p in topo.nodes if p.name != leader)
    steps.append(StopStep(replicas, "the replicas before the primary, so that none takes over while it stops"))
    steps += [StopStep((p,), "the primary, which starts first next time") for p in topo.nodes if p.name == leader]
    steps.append(StopStep((*topo.backup_agents, *topo.repository),
                          "pgBackRest's servers after the nodes: the primary archives its last WAL on the way down"))
    steps += [StopStep((p,), "the DCS members last, one at a time") for p in topo.dcs]
    return [s for s in steps if s.places]


def backups_from_standby(topo: Topology) -> bool:
    """Whether pgBackRest backs up from a standby: where the repository host reaches every node
    (a repository host of its own) and there is a replica to copy from."""
    return bool(topo.repository) and len(topo.nodes) > 1
