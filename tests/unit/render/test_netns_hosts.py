"""The hosts file every netns namespace gets, and that pgha removes only the one it wrote (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgha.backends import netns_network
from pgha.model.spec import build_spec
from pgha.model.topology import topology
from pgha.render.netns_hosts import hosts_file, marker


def test_every_component_is_named_at_its_address() -> None:
    topo = topology(build_spec("default", overrides={"name": "shop", "backend": "netns"}))
    text = hosts_file(topo)
    assert text.startswith(marker("shop"))
    lines = dict(line.split("\t") for line in text.splitlines()[1:])
    assert lines["198.18.0.10"] == "node0 node0-pgbackrest"  # pgBackRest's server beside node0
    # the fencing guard and Prometheus beside HAProxy
    assert lines["198.18.0.30"] == "haproxy pooler guard prometheus"
    assert lines["198.18.0.50"] == "backup" and lines["127.0.0.1"] == "localhost"


def test_only_a_hosts_file_with_this_clusters_marker_is_removed(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns_network, "ETC_NETNS", tmp_path)
    ours, theirs, other_cluster = (tmp_path / ns for ns in ("pgha-shop-node0", "pgha-shop-node1", "pgha-shop-node2"))
    for d in (ours, theirs, other_cluster):
        d.mkdir()
    (ours / "hosts").write_text(marker("shop") + "198.18.0.10\tnode0\n")
    (theirs / "hosts").write_text("10.0.0.1 someone-elses\n")
    (other_cluster / "hosts").write_text(marker("shopping") + "198.18.0.12\tnode2\n")
    for d in (ours, theirs, other_cluster):
        netns_network._remove_hosts_file(d.name, "shop")
    assert not ours.exists()
    assert (theirs / "hosts").read_text() == "10.0.0.1 someone-elses\n"
    assert (other_cluster / "hosts").exists()
