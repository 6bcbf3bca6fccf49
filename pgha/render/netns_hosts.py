"""The hosts file of a netns cluster's hosts: every component's name at its address, as a real
machine's DNS or /etc/hosts would have them. `ip netns exec` mounts /etc/netns/<namespace>/hosts
over /etc/hosts for what it starts, so programs that verify a peer's certificate by host name
(pgBackRest's TLS client matches DNS names only) reach their peers by name; pure."""

from __future__ import annotations

from pgha.model.topology import Topology

MARKER = "# pgha cluster"


def marker(cluster: str) -> str:
    return f"{MARKER} {cluster}: written by pgha, removed with the cluster's network\n"


def hosts_file(topo: Topology) -> str:
    names: dict[str, list[str]] = {}
    for place in topo.places:
        names.setdefault(place.address, [])
        if place.name not in names[place.address]:
            names[place.address].append(place.name)
    lines = [f"{address}\t{' '.join(n)}" for address, n in names.items()]
    return marker(topo.spec.name) + "127.0.0.1\tlocalhost\n" + "\n".join(lines) + "\n"
