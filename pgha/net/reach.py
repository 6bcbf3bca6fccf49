"""How pgha, on this machine, reaches each component of one cluster: the topology's addresses,
dialled from the namespace a backend says the component lives in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from pgha.model.spec import Spec
from pgha.model.topology import Place, Topology
from pgha.net.dial import ClientTls, Endpoint


def same_host(place: Place, port: int) -> Endpoint:
    """The component listens where pgha runs (local backend)."""
    return Endpoint(place.address, port)


def own_namespace(place: Place, port: int) -> Endpoint:
    """The component is a host of its own in a named network namespace (netns backend)."""
    return Endpoint(place.address, port, f"/run/netns/{place.netns}" if place.netns else None)


@dataclass(frozen=True)
class Reach:
    topology: Topology
    endpoint_of: Callable[[Place, int], Endpoint]
    # HAProxy name -> its admin socket (a Unix socket: reachable from any namespace).
    haproxy_sockets: Mapping[str, Path]
    # With TLS (spec.tls): how pgha speaks HTTPS to Patroni's REST API and to the DCS.
    tls: ClientTls | None = None

    @property
    def spec(self) -> Spec:
        return self.topology.spec

    def postgres(self, node: str) -> Endpoint:
        place, ports = self.topology.node(node)
        return self.endpoint_of(place, ports.postgres)

    def rest(self, node: str) -> Endpoint:
        place, ports = self.topology.node(node)
        return replace(self.endpoint_of(place, ports.rest), tls=self.tls)

    def haproxy_stats(self, k: int) -> Endpoint:
        return replace(self.endpoint_of(self.topology.haproxies[k], self.topology.haproxy_ports[k].stats),
                       tls=self.tls.without_certificate() if self.tls else None)

    def pooler(self, k: int) -> Endpoint:
        """PgBouncer beside HAProxy host k, where it listens (its admin console is there too)."""
        return self.endpoint_of(self.topology.poolers[k], self.topology.pooler_ports[k])

    def prometheus(self) -> Endpoint | None:
        """The cluster's Prometheus (spec.monitoring), None without one."""
        monitors, port = self.topology.monitors, self.topology.monitor_port
        if not monitors or port is None:
            return None
        return replace(self.endpoint_of(monitors[0], port), tls=self.tls.without_certificate() if self.tls else None)

    def dcs_client(self, i: int) -> Endpoint:
        return replace(self.endpoint_of(self.topology.dcs[i], self.topology.dcs_ports[i].client), tls=self.tls)
