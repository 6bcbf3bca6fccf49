"""Pushed routing, against a stand-in for HAProxy's admin socket (a Unix socket that records)."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pgha.ops import node_hook
from pgha.ops.routing import route_writes_to


@pytest.fixture
def admin_socket(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    received: list[str] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            received.append(self.rfile.readline().decode().strip())
            self.wfile.write(b"\n")  # HAProxy answers a successful `set server` with an empty line

    path = tmp_path / "haproxy.sock"
    server = socketserver.UnixStreamServer(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path, received
    server.shutdown()
    server.server_close()


def test_the_new_primary_goes_up_before_the_others_go_down(admin_socket: tuple[Path, list[str]]) -> None:
    path, received = admin_socket
    reach: Any = SimpleNamespace(haproxy_sockets={"haproxy": path},
                                 spec=SimpleNamespace(node_names=("node0", "node1", "node2")))
    assert route_writes_to(reach, "node1") == []
    assert received == ["set server primary/node1 health up", "set server primary/node0 health down",
                        "set server primary/node2 health down"]


def test_the_node_hook_pushes_the_same_commands(admin_socket: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, received = admin_socket
    cfg = {"node": "node2", "nodes": [{"name": f"node{i}", "host": "127.0.1.1", "port": 5442 + i} for i in range(3)],
           "haproxy_sockets": [str(path)], "rw_proxy": "primary", "poolers": []}
    config = tmp_path / "hook.json"
    config.write_text(json.dumps(cfg))
    assert node_hook.main(["hook", str(config), "on_role_change", "primary", "scope"]) == 0
    assert received == ["set server primary/node2 health up", "set server primary/node0 health down",
                        "set server primary/node1 health down"]
    received.clear()
    # A demotion pushes nothing: the new primary does.
    assert node_hook.main(["hook", str(config), "on_role_change", "replica", "scope"]) == 0
    assert received == []
