"""The backend registry: names to backends, an unknown name refused, and what each entry says
about clients and hosts (the multi-host URI, the topology, the number of HAProxy hosts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgha.backends.compose import ComposeBackend
from pgha.backends.factory import make_backend
from pgha.backends.local import LocalBackend
from pgha.backends.netns import NetnsBackend
from pgha.errors import PghaError
from pgha.model.backend_kinds import UnknownBackendError
from pgha.model.spec import SpecError, build_spec
from pgha.model.topology import multihost_hosts, topology
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets

SECRETS = Secrets("a", "b", "c", "d")


@pytest.mark.parametrize(("name", "cls"), [("local", LocalBackend), ("netns", NetnsBackend),
                                           ("compose", ComposeBackend)])
def test_each_name_builds_its_backend(tmp_path: Path, name: str, cls: type) -> None:
    spec = build_spec("default", overrides={"backend": name})
    backend = make_backend(spec, Layout(tmp_path), SECRETS, RunAs(None))
    assert type(backend) is cls and backend.kind == name


def test_an_unknown_name_is_refused_in_one_line(tmp_path: Path) -> None:
    spec = build_spec("default").model_copy(update={"backend": "cloud"})
    with pytest.raises(UnknownBackendError) as err:
        make_backend(spec, Layout(tmp_path), SECRETS, RunAs(None))
    assert isinstance(err.value, PghaError)
    assert str(err.value) == "backend: 'cloud' is not one of local, netns, compose"


def test_local_multihost_lists_the_nodes_on_their_loopback_address() -> None:
    spec = build_spec("default", overrides={"base_port": 9432})
    assert multihost_hosts(spec) == [("127.0.1.1", 9442), ("127.0.1.1", 9443),
                                                           ("127.0.1.1", 9444)]


def test_compose_multihost_lists_the_published_node_ports() -> None:
    spec = build_spec("seed", overrides={"backend": "compose"})
    assert multihost_hosts(spec, readonly=True) == [("127.0.0.1", 5433),
                                                                           ("127.0.0.1", 5434)]


def test_netns_multihost_lists_every_haproxy_host_read_only_first() -> None:
    spec = build_spec("default", overrides={"backend": "netns", "base_port": 9432})
    assert multihost_hosts(spec) == [("127.0.0.1", 9432), ("127.0.0.1", 9435)]
    assert multihost_hosts(spec, readonly=True) == [("127.0.0.1", 9433), ("127.0.0.1", 9432),
                                                         ("127.0.0.1", 9435)]


def test_only_hosts_of_their_own_get_addresses_and_only_netns_names_namespaces() -> None:
    local = topology(build_spec("default"))
    netns = topology(build_spec("default", overrides={"backend": "netns", "name": "x"}))
    compose = topology(build_spec("default", overrides={"backend": "compose"}))
    assert {p.address for p in local.nodes + local.dcs} == {"127.0.1.1"}
    assert [p.address for p in compose.nodes] == [p.address for p in netns.nodes] == \
        ["198.18.0.10", "198.18.0.11", "198.18.0.12"]
    assert [p.netns for p in netns.nodes] == ["pgha-x-node0", "pgha-x-node1", "pgha-x-node2"]
    assert {p.netns for p in compose.places} == {p.netns for p in local.places} == {None}
    assert netns.switch_netns == "pgha-x-switch" and compose.switch_netns is None


def test_two_haproxy_hosts_by_default_only_on_netns() -> None:
    assert build_spec("default", overrides={"backend": "netns"}).haproxy.hosts == 2
    assert build_spec("default", overrides={"backend": "compose"}).haproxy.hosts == 1
    assert build_spec("seed", overrides={"backend": "netns"}).haproxy.hosts == 1
    with pytest.raises(SpecError, match=r"haproxy\.hosts: more than one HAProxy needs hosts of their own"):
        build_spec("default", overrides={"haproxy": {"hosts": 2}})
