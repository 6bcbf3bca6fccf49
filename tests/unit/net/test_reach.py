"""How pgha reaches each component: the topology's addresses and ports, the namespace to dial
from, and the TLS each kind of endpoint speaks (pgha.net.reach)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgha.backends.netns_network import NETNS_DIR
from pgha.model.spec import SpecError, build_spec
from pgha.model.topology import Place, Topology, topology
from pgha.net.dial import ClientTls, Endpoint
from pgha.net.reach import Reach, own_namespace, same_host

TLS = ClientTls("/pki/ca.crt", "/pki/pgha.crt", "/pki/pgha.key")
CA_ONLY = ClientTls("/pki/ca.crt")


def _netns_topology(**more: object) -> Topology:
    return topology(build_spec("default", overrides={"backend": "netns", "name": "x", "base_port": 9432, **more}))


def _local_topology(**more: object) -> Topology:
    return topology(build_spec("default", overrides={"name": "y", "base_port": 9432, **more}))


def _reach(topo: Topology, tls: ClientTls | None = TLS) -> Reach:
    return Reach(topo, own_namespace if topo.switch_netns else same_host,
                 {h.name: Path(f"/run/pgha/{h.name}.sock") for h in topo.haproxies}, tls)


def test_own_namespace_dials_from_the_places_named_namespace() -> None:
    place = Place("node1", "node", 1, "198.18.0.11", "pgha-x-node1")
    assert own_namespace(place, 5432) == Endpoint("198.18.0.11", 5432, "/run/netns/pgha-x-node1", None)
    # The path the netns backend creates its namespaces under.
    assert own_namespace(place, 5432).netns == str(NETNS_DIR / "pgha-x-node1")
    # A host of its own without a named namespace (a container): dialled from pgha's own.
    assert own_namespace(Place("node1", "node", 1, "198.18.0.11", None), 5432) == Endpoint("198.18.0.11", 5432)


def test_same_host_never_enters_a_namespace() -> None:
    place = Place("node1", "node", 1, "198.18.0.11", "pgha-x-node1")
    assert same_host(place, 9443) == Endpoint("198.18.0.11", 9443, None, None)


def test_netns_endpoints_are_each_components_own_host_and_standard_port() -> None:
    reach = _reach(_netns_topology())
    assert reach.postgres("node1") == Endpoint("198.18.0.11", 5432, "/run/netns/pgha-x-node1", None)
    assert reach.rest("node2") == Endpoint("198.18.0.12", 8008, "/run/netns/pgha-x-node2", TLS)
    assert reach.dcs_client(2) == Endpoint("198.18.0.22", 2379, "/run/netns/pgha-x-dcs2", TLS)
    assert reach.haproxy_stats(0) == Endpoint("198.18.0.30", 7000, "/run/netns/pgha-x-haproxy", CA_ONLY)
    assert reach.haproxy_stats(1) == Endpoint("198.18.0.31", 7000, "/run/netns/pgha-x-haproxy1", CA_ONLY)
    # PgBouncer is beside its HAProxy: same address, same namespace; pgha speaks no TLS to it here
    # (pgha.net.pooler_console adds libpq's own TLS settings).
    assert reach.pooler(0) == Endpoint("198.18.0.30", 6432, "/run/netns/pgha-x-haproxy", None)
    assert reach.pooler(1) == Endpoint("198.18.0.31", 6432, "/run/netns/pgha-x-haproxy1", None)


def test_haproxy_stats_trusts_the_ca_but_presents_no_certificate() -> None:
    stats = _reach(_netns_topology()).haproxy_stats(1)
    assert stats.tls is not None
    assert (stats.tls.ca, stats.tls.cert, stats.tls.key) == ("/pki/ca.crt", None, None)


def test_local_endpoints_are_the_specs_port_block_on_this_host() -> None:
    topo = _local_topology()
    spec = topo.spec
    reach = _reach(topo, tls=None)
    assert [reach.postgres(n) for n in spec.node_names] == [
        Endpoint("127.0.1.1", 9442), Endpoint("127.0.1.1", 9443), Endpoint("127.0.1.1", 9444)]
    assert [reach.rest(n) for n in spec.node_names] == [
        Endpoint("127.0.1.1", 9452), Endpoint("127.0.1.1", 9453), Endpoint("127.0.1.1", 9454)]
    assert [reach.dcs_client(i) for i in range(3)] == [
        Endpoint("127.0.1.1", 9462), Endpoint("127.0.1.1", 9463), Endpoint("127.0.1.1", 9464)]
    assert reach.haproxy_stats(0) == Endpoint("127.0.0.1", 9434)
    assert reach.pooler(0) == Endpoint("127.0.0.1", 9437)
    assert (spec.ports.stats, spec.ports.pooler) == (9434, (9437,))


def test_without_tls_nothing_carries_a_certificate() -> None:
    reach = _reach(_netns_topology(), tls=None)
    assert reach.rest("node0").tls is None
    assert reach.dcs_client(0).tls is None
    assert reach.haproxy_stats(0).tls is None
    assert reach.postgres("node0").tls is None


def test_tls_goes_only_where_it_belongs() -> None:
    reach = _reach(_local_topology(), tls=TLS)
    assert reach.rest("node0") == Endpoint("127.0.1.1", 9452, None, TLS)
    assert reach.dcs_client(1) == Endpoint("127.0.1.1", 9463, None, TLS)
    assert reach.haproxy_stats(0) == Endpoint("127.0.0.1", 9434, None, CA_ONLY)
    # PostgreSQL and PgBouncer speak libpq's TLS, configured in the DSN: not this one.
    assert reach.postgres("node0").tls is None
    assert reach.pooler(0).tls is None


def test_zookeeper_members_are_reached_on_zookeepers_client_port() -> None:
    reach = _reach(_netns_topology(dcs={"kind": "zookeeper"}))
    assert [reach.dcs_client(i) for i in range(3)] == [
        Endpoint(f"198.18.0.2{i}", 2181, f"/run/netns/pgha-x-dcs{i}", TLS) for i in range(3)]


def test_compose_hosts_are_dialled_from_pgha_s_own_namespace() -> None:
    topo = topology(build_spec("default", overrides={"backend": "compose", "name": "z"}))
    reach = Reach(topo, own_namespace, {}, TLS)
    assert reach.postgres("node2") == Endpoint("198.18.0.12", 5432, None, None)
    # A container of its own for the pooler (not HAProxy's address).
    assert reach.pooler(0) == Endpoint("198.18.0.40", 6432, None, None)


def test_the_endpoint_function_decides_where_to_dial_from() -> None:
    seen: list[tuple[str, int]] = []

    def record(place: Place, port: int) -> Endpoint:
        seen.append((place.name, port))
        return Endpoint("10.9.9.9", port + 1, "/somewhere")

    reach = Reach(_netns_topology(), record, {}, TLS)
    assert reach.rest("node1") == Endpoint("10.9.9.9", 8009, "/somewhere", TLS)
    assert reach.postgres("node0") == Endpoint("10.9.9.9", 5433, "/somewhere", None)
    assert reach.haproxy_stats(1).port == 7001
    assert seen == [("node1", 8008), ("node0", 5432), ("haproxy1", 7000)]


def test_spec_is_the_topologys() -> None:
    topo = _netns_topology()
    reach = _reach(topo)
    assert reach.spec is topo.spec
    assert reach.haproxy_sockets == {"haproxy": Path("/run/pgha/haproxy.sock"),
                                     "haproxy1": Path("/run/pgha/haproxy1.sock")}


def test_unknown_components_are_refused() -> None:
    reach = _reach(_netns_topology())
    with pytest.raises(SpecError, match="no node named 'node9'"):
        reach.postgres("node9")
    with pytest.raises(SpecError, match="no node named"):
        reach.rest("haproxy")
    with pytest.raises(IndexError):
        reach.dcs_client(3)
    with pytest.raises(IndexError):
        reach.haproxy_stats(2)


def test_no_pooler_without_the_pooler() -> None:
    reach = _reach(_local_topology(pooler={"enabled": False}))
    assert reach.topology.poolers == ()
    with pytest.raises(IndexError):
        reach.pooler(0)
