"""Where components live: the shared-host topology, the netns one, and what renderers make of them."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from pgha.backends.netns_network import switch_port
from pgha.components.patroni import patroni_config
from pgha.model.spec import SpecError, build_spec
from pgha.model.topology import server_names, topology
from pgha.render.dcs import render_etcd
from pgha.render.haproxy import render_haproxy, render_host_entry
from pgha.state.layout import Layout
from pgha.state.secrets import Secrets

SECRETS = Secrets("super-pw-1", "repl-pw-2", "rest-pw-3", "stats-pw-4")


def test_local_topology_is_the_specs_port_block() -> None:
    spec = build_spec("default", overrides={"base_port": 9432})
    topo = topology(spec)
    assert [p.address for p in topo.nodes] == [spec.node_host] * 3
    assert [p.postgres for p in topo.node_ports] == list(spec.ports.postgres)
    assert [p.client for p in topo.dcs_ports] == list(spec.ports.dcs_client)
    assert topo.haproxy_ports[0].rw == spec.ports.entrypoint_rw
    assert all(p.netns is None for p in topo.places) and topo.switch_netns is None
    assert server_names(topo) == {(spec.node_host, 9442): "node0", (spec.node_host, 9443): "node1",
                                  (spec.node_host, 9444): "node2"}


def test_netns_topology_gives_every_component_a_host_of_its_own() -> None:
    spec = build_spec("default", overrides={"backend": "netns", "base_port": 9432, "name": "x"})
    topo = topology(spec)
    addresses = [p.address for p in topo.hosts]
    # nodes, etcd members, two HAProxies, the backup repository host
    assert len(set(addresses)) == len(addresses) == 3 + 3 + 2 + 1
    # A pooler beside each HAProxy: its host, its namespace.
    assert [(p.address, p.netns) for p in topo.poolers] == [(h.address, h.netns) for h in topo.haproxies]
    net = ipaddress.ip_network(spec.network)
    assert all(ipaddress.ip_address(a) in net for a in addresses)
    assert {p.postgres for p in topo.node_ports} == {5432} and {p.rest for p in topo.node_ports} == {8008}
    assert {p.client for p in topo.dcs_ports} == {2379}
    assert [p.netns for p in topo.haproxies] == ["pgha-x-haproxy", "pgha-x-haproxy1"]
    assert topo.client_networks == (spec.network,)
    # Nodes share a port, so a node is known by its address.
    assert len(set(server_names(topo).values())) == 3
    # Interface names must fit in 15 characters whatever the component names.
    assert all(len(switch_port(p)) <= 15 for p in topo.places)


def test_netns_renders_bind_own_addresses(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"backend": "netns", "base_port": 9432})
    topo = topology(spec)
    conf = patroni_config(topo, Layout(tmp_path), SECRETS, "node1")
    assert conf["postgresql"]["listen"] == "198.18.0.11:5432"
    assert conf["restapi"]["connect_address"] == "198.18.0.11:8008"
    assert conf["etcd3"]["hosts"] == ["198.18.0.20:2379", "198.18.0.21:2379", "198.18.0.22:2379"]
    assert "host all all 198.18.0.0/24 scram-sha-256" in conf["postgresql"]["pg_hba"]
    second = render_haproxy(topo, Layout(tmp_path), SECRETS, 1)
    assert "bind 198.18.0.31:5432" in second and "server node2 198.18.0.12:5432 check port 8008" in second
    etcd = render_etcd(topo, Layout(tmp_path), 2)
    assert etcd["listen-client-urls"] == "http://198.18.0.22:2379"
    assert "dcs0=http://198.18.0.20:2380" in etcd["initial-cluster"]


def test_host_entry_serves_inherited_sockets() -> None:
    text = render_host_entry([("primary", 5), ("replicas", 6)])
    assert "bind fd@5" in text and "default_backend primary" in text
    assert "bind fd@6" in text and "default_backend replicas" in text


@pytest.mark.parametrize(("overrides", "message"), [
    ({"backend": "netns", "network": "10.0.0.0/24"}, "network: must lie inside 198.18.0.0/15"),
    ({"backend": "netns", "network": "198.18.0.0/28"}, "network: must have room for 64 hosts"),
    ({"backend": "netns", "network": "nonsense"}, "network: 'nonsense' is not a network"),
    ({"haproxy": {"hosts": 2}}, "more than one HAProxy needs hosts of their own"),
    ({"backend": "cloud"}, "backend:"),
])
def test_bad_topology_settings_are_one_line(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as err:
        build_spec("default", overrides=overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_netns_default_profile_has_two_haproxy_hosts_and_the_seed_one() -> None:
    assert build_spec("default", overrides={"backend": "netns"}).haproxy.hosts == 2
    assert build_spec("seed", overrides={"backend": "netns"}).haproxy.hosts == 1
    assert build_spec("default").haproxy.hosts == 1


def test_one_stop_order_entrypoints_replicas_primary_then_dcs_one_at_a_time() -> None:
    from pgha.model.topology import stop_order

    topo = topology(build_spec("default", overrides={"backend": "netns", "name": "x"}))
    steps = [[p.name for p in step.places] for step in stop_order(topo, leader="node1")]
    assert steps == [["guard", "guard1"], ["prometheus"], ["pooler", "pooler1", "haproxy", "haproxy1"],
                     ["node0", "node2"], ["node1"],
                     ["node0-pgbackrest", "node1-pgbackrest", "node2-pgbackrest", "backup"],
                     ["dcs0"], ["dcs1"], ["dcs2"]]
    # No primary known: every node stops in one step, before the DCS.
    no_leader = [[p.name for p in step.places] for step in stop_order(topo, leader=None)]
    assert no_leader[3] == ["node0", "node1", "node2"] and no_leader[5] == ["dcs0"]
    seed = topology(build_spec("seed"))
    assert [[p.name for p in s.places] for s in stop_order(seed, "postgresql0")] == [
        ["haproxy"], ["postgresql1"], ["postgresql0"], ["dcs0"]]
