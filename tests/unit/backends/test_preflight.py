"""The local backend refuses to start with one line naming what is missing or taken."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pgha.backends import local
from pgha.components import dcs, patroni
from pgha.errors import BackendError
from pgha.model.spec import build_spec
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets

SECRETS = Secrets("a", "b", "c", "d")


def _backend(tmp_path: Path, **overrides: object) -> local.LocalBackend:
    spec = build_spec("default", overrides={"base_port": 27432, **overrides})
    return local.LocalBackend(spec, Layout(tmp_path), SECRETS, RunAs(None))


def test_a_missing_postgresql_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patroni, "PG_BIN_DIR", str(tmp_path / "no-such-bin"))
    with pytest.raises(BackendError) as err:
        _backend(tmp_path).preflight()
    assert "postgres not found" in str(err.value) and "apt-get install postgresql-15" in str(err.value)


def test_a_missing_zookeeper_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dcs, "ZOOKEEPER_JARS", (str(tmp_path / "zookeeper.jar"),))
    with pytest.raises(BackendError, match="apt-get install zookeeper"):
        _backend(tmp_path, dcs={"kind": "zookeeper", "members": 1}).preflight()


def test_a_taken_node_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.1.1", 27443))  # node1's PostgreSQL port at base 27432
        s.listen()
        with pytest.raises(BackendError, match=r"port 27443 \(postgres of node1\) is already in use on 127.0.1.1"):
            _backend(tmp_path).preflight()
