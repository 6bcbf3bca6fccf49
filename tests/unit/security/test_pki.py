"""The cluster's CA and certificates (pure issuing, and the store), and where TLS is on by default."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgha.model.spec import build_spec
from pgha.model.topology import topology
from pgha.security import pki


def _netns_topology(nodes: int = 3):  # type: ignore[no-untyped-def]
    return topology(build_spec("default", overrides={"backend": "netns", "name": "sec", "nodes": nodes}))


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), [str(i) for i in san.get_values_for_type(x509.IPAddress)]


def test_plan_names_every_host_and_the_client_certificates() -> None:
    topo = _netns_topology()
    planned = pki.plan(topo)
    assert set(planned) == {"node0", "node1", "node2", "dcs0", "dcs1", "dcs2", "haproxy", "haproxy1",
                            "pooler", "pooler1", "node0-dcs", "node1-dcs", "node2-dcs", "pgha",
                            "backup", "node0-pgbackrest", "node1-pgbackrest", "node2-pgbackrest",
                            # the fencing guards serve nothing: a client certificate for etcd only
                            "guard-dcs", "guard1-dcs",
                            # Prometheus serves HTTPS, and scrapes etcd with a client certificate
                            "prometheus", "prometheus-dcs"}
    # pgBackRest's TLS peers verify each other by DNS name.
    assert planned["backup"].dns == ("backup",) and planned["node0-pgbackrest"].dns == ("node0-pgbackrest",)
    node0 = planned["node0"]
    # The node's own address, and the entrypoint clients on this machine verify through HAProxy.
    assert node0.common_name == "node0" and node0.dns == ("node0",)
    assert node0.ips == (topo.nodes[0].address, topo.spec.host)
    assert planned["dcs1"].ips == (topo.dcs[1].address,)
    # etcd's gateway refuses client certificates with a CommonName once authentication is on;
    # Java refuses one with neither a subject nor a SAN.
    assert planned["node1-dcs"].common_name is None and not planned["node1-dcs"].server
    assert planned["node1-dcs"].dns == ("node1-dcs",)
    assert planned["pgha"].common_name is None and planned["pgha"].dns == ("pgha",)


def test_issued_certificates_chain_to_the_ca_with_the_planned_names(tmp_path: Path) -> None:
    topo = _netns_topology()
    store = pki.ensure(tmp_path / "pki", topo)
    ca = store.ca.x509
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name, who in pki.plan(topo).items():
        cert = store.leaf(name).x509
        cert.verify_directly_issued_by(ca)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
        assert (ExtendedKeyUsageOID.SERVER_AUTH in usage) == who.server
        cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        assert cn == ([who.common_name] if who.common_name else [])
        assert _sans(cert) == (list(who.dns), list(who.ips))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.critical is (who.common_name is None)
    # Python's own TLS stack takes the files as they are (the probes use it).
    ctx = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.crt"))
    ctx.load_cert_chain(str(tmp_path / "pki" / "pgha.crt"), str(tmp_path / "pki" / "pgha.key"))


def test_loopback_hosts_are_also_127_0_0_1() -> None:
    # Connections between loopback addresses come from 127.0.0.1 (ZooKeeper's quorum checks it).
    topo = topology(build_spec("default", overrides={"name": "lo", "tls": True}))
    node0 = pki.plan(topo)["node0"]
    assert node0.ips == ("127.0.1.1", "127.0.0.1") and node0.dns == ("node0", "localhost")


def test_keys_are_private_and_the_store_closed(tmp_path: Path) -> None:
    pki.ensure(tmp_path / "pki", _netns_topology())
    assert (tmp_path / "pki").stat().st_mode & 0o777 == 0o700
    keys = list((tmp_path / "pki").glob("*.key"))
    assert keys and all(k.stat().st_mode & 0o777 == 0o600 for k in keys)


def test_ensure_keeps_what_is_right_and_issues_what_is_missing(tmp_path: Path) -> None:
    store = tmp_path / "pki"
    first = pki.ensure(store, _netns_topology(nodes=2))
    again = pki.ensure(store, _netns_topology(nodes=2))
    assert again.ca.serial == first.ca.serial
    assert {n: c.serial for n, c in again.leaves.items()} == {n: c.serial for n, c in first.leaves.items()}
    grown = pki.ensure(store, _netns_topology(nodes=3))
    assert grown.ca.serial == first.ca.serial and "node2" in grown.leaves
    assert grown.leaf("node0").serial == first.leaf("node0").serial


def test_a_changed_address_gets_a_new_certificate(tmp_path: Path) -> None:
    store = tmp_path / "pki"
    first = pki.ensure(store, _netns_topology())
    moved = topology(build_spec("default", overrides={"backend": "netns", "name": "sec", "network": "198.18.1.0/24"}))
    second = pki.ensure(store, moved)
    assert second.leaf("node0").serial != first.leaf("node0").serial
    assert str(ipaddress.ip_address(moved.nodes[0].address)) in _sans(second.leaf("node0").x509)[1]


def test_renew_issues_every_leaf_anew_under_the_same_ca(tmp_path: Path) -> None:
    store, topo = tmp_path / "pki", _netns_topology()
    before = pki.ensure(store, topo)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    after = pki.renew(store, topo, now=later)
    assert after.ca.serial == before.ca.serial
    for name in before.leaves:
        assert after.leaf(name).serial != before.leaf(name).serial
        after.leaf(name).x509.verify_directly_issued_by(before.ca.x509)
    assert after.earliest_expiry[1] > before.earliest_expiry[1]
    assert pki.load(store).leaf("node1").serial == after.leaf("node1").serial


def test_a_damaged_store_is_one_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "pki"
    pki.ensure(store, _netns_topology())
    (store / "node0.crt").write_text("not a certificate\n")
    with pytest.raises(pki.PkiError, match=r"node0\.crt is not a certificate"):
        pki.load(store)
    with pytest.raises(pki.PkiError, match="no CA"):
        pki.load(tmp_path / "elsewhere")


@pytest.mark.parametrize(("overrides", "tls"), [
    ({"backend": "local"}, False),  # one machine's loopback may stay plain
    ({"backend": "netns"}, True),  # hosts of their own talk over a network
    ({"backend": "netns", "profile": "seed"}, False),  # the lab as published
    ({"backend": "local", "tls": True}, True),
    ({"backend": "netns", "tls": False}, False),
    # ZooKeeper's ACLs need client certificates: TLS even on loopback, unless the DCS is left open.
    ({"backend": "local", "dcs": {"kind": "zookeeper"}}, True),
    ({"backend": "local", "dcs": {"kind": "zookeeper", "authentication": False}}, False),
    ({"backend": "compose"}, True),  # containers are hosts of their own too
])
def test_where_tls_is_on_by_default(overrides: dict[str, object], tls: bool) -> None:
    assert build_spec("default", overrides={"name": "x", **overrides}).tls is tls
