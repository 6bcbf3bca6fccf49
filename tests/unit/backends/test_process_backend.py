"""One process backend, two launchers: what each starts, where, as whom, and which ports it
checks; only the netns backend has network faults."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from pgha.backends.base import NetworkFaults
from pgha.backends.local import LocalBackend
from pgha.backends.netns import NetnsBackend
from pgha.model.spec import build_spec
from pgha.state import procs
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets

SECRETS = Secrets("a", "b", "c", "d")


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_spawn(argv: list[str], **kw: Any) -> int:
        calls.append({"argv": list(argv), **kw})
        return 1

    monkeypatch.setattr(procs, "spawn", fake_spawn)
    return calls


def test_only_the_netns_backend_injects_network_faults(tmp_path: Path) -> None:
    local = LocalBackend(build_spec("default"), Layout(tmp_path), SECRETS, RunAs(None))
    netns = NetnsBackend(build_spec("default", overrides={"backend": "netns"}), Layout(tmp_path), SECRETS, RunAs(None))
    assert not isinstance(local, NetworkFaults) and isinstance(netns, NetworkFaults)
    assert (local.kind, netns.kind) == ("local", "netns")


def test_local_starts_the_unit_plainly_as_the_service_account(tmp_path: Path, spawned: list[dict[str, Any]]) -> None:
    backend = LocalBackend(build_spec("default", overrides={"name": "c"}), Layout(tmp_path), SECRETS, RunAs("svc"))
    backend._spawn("dcs1")
    (call,) = spawned
    assert call["argv"][1:] == ["--config-file", str(tmp_path / "conf" / "dcs-1.conf")]
    assert call["run_as"] == RunAs("svc") and "netns" not in call
    assert call["cwd"] == tmp_path and call["pidfile"] == tmp_path / "run" / "dcs1.pid"
    assert call["env"]["HOME"] == str(tmp_path)


def test_netns_starts_the_unit_in_its_namespace_as_the_units_user(tmp_path: Path,
                                                                   spawned: list[dict[str, Any]]) -> None:
    backend = NetnsBackend(build_spec("default", overrides={"backend": "netns", "name": "c"}), Layout(tmp_path),
                           SECRETS, RunAs(None))
    backend._spawn("node1")
    (call,) = spawned
    host = tmp_path / "hosts" / "node1"
    assert call["argv"][1:] == [str(host / "conf" / "pgha-patroni.py"), str(host / "conf" / "patroni-node1.yml")]
    assert call["netns"] == "pgha-c-node1" and call["run_as"] == RunAs("pgha") and call["pass_fds"] == []
    assert call["cwd"] == host and call["log"] == tmp_path / "logs" / "node1.log"


def test_netns_hands_haproxy_its_loopback_entrypoints(tmp_path: Path, spawned: list[dict[str, Any]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bound: list[tuple[str, int]] = []

    def fake_server(address: tuple[str, int], backlog: int) -> socket.socket:
        bound.append(address)
        return socket.socket()

    monkeypatch.setattr(socket, "create_server", fake_server)
    spec = build_spec("default", overrides={"backend": "netns", "name": "c", "base_port": 9432})
    backend = NetnsBackend(spec, Layout(tmp_path), SECRETS, RunAs(None))
    (tmp_path / "hosts" / "haproxy" / "conf").mkdir(parents=True)
    backend._spawn("haproxy")
    (call,) = spawned
    entry = tmp_path / "hosts" / "haproxy" / "conf" / "host-entry.cfg"
    assert bound == [("127.0.0.1", 9432), ("127.0.0.1", 9433), ("127.0.0.1", 9437)]
    assert call["argv"][-4:] == ["-f", str(tmp_path / "hosts" / "haproxy" / "conf" / "haproxy.cfg"), "-f", str(entry)]
    assert len(call["pass_fds"]) == 3
    text = entry.read_text()
    assert "frontend host_primary\n" in text and "frontend host_replicas\n" in text
    # The pooler's host-facing port goes to PgBouncer beside HAProxy, in the same namespace.
    assert "frontend host_pooler\n" in text and "server pooler 198.18.0.30:6432" in text


def test_each_launcher_checks_the_ports_it_would_take(tmp_path: Path) -> None:
    local = LocalBackend(build_spec("default", overrides={"base_port": 9432}), Layout(tmp_path), SECRETS,
                         RunAs(None))
    node = local.topo.place("node0")
    assert local.launcher.ports(local.topo, node) == [("127.0.1.1", 9442, "postgres of node0"),
                                                      ("127.0.1.1", 9452, "REST API of node0")]
    netns = NetnsBackend(build_spec("default", overrides={"backend": "netns", "base_port": 9432}),
                         Layout(tmp_path), SECRETS, RunAs(None))
    assert netns.launcher.ports(netns.topo, netns.topo.place("node0")) == []
    assert netns.launcher.ports(netns.topo, netns.topo.place("haproxy1")) == [
        ("127.0.0.1", 9435, "entrypoint primary of haproxy1"), ("127.0.0.1", 9438, "entrypoint pooler of haproxy1")]
