"""The ZooKeeper ACL probe (pgha.security.zk_acl.write_refused) against a fake kazoo client:
what each answer of ZooKeeper means, that the probe never writes for real, and that it always
lets go of its session."""

from __future__ import annotations

import gc
import logging
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kazoo.exceptions import BadVersionError, ConnectionLoss, NoAuthError, NoNodeError
from kazoo.handlers.threading import SequentialThreadingHandler

from pgha.model.spec import build_spec
from pgha.model.topology import topology
from pgha.net.dial import ClientTls, Endpoint
from pgha.security import pki, zk_acl
from pgha.security.zk_acl import NEVER_VERSION, write_refused

TLS = ClientTls("/pki/ca.crt", "/pki/pgha.crt", "/pki/pgha.key")
EP = Endpoint("198.18.0.21", 2181, "/run/netns/pgha-x-dcs1", TLS)
PATH = "/service/pgha-x"


class _FakeKazoo:
    """Records what write_refused does with its client; `start_error` / `set_error` are raised
    by start() and set()."""

    instances: ClassVar[list[_FakeKazoo]] = []
    start_error: ClassVar[BaseException | None] = None
    set_error: ClassVar[BaseException | None] = None

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []
        _FakeKazoo.instances.append(self)

    def start(self, timeout: float = 15) -> None:
        self.calls.append(("start", (), {"timeout": timeout}))
        if self.start_error is not None:
            raise self.start_error

    def set(self, path: str, value: bytes, version: int = -1) -> object:
        self.calls.append(("set", (path, value), {"version": version}))
        if self.set_error is not None:
            raise self.set_error
        return object()

    def stop(self) -> None:
        self.calls.append(("stop", (), {}))

    def close(self) -> None:
        self.calls.append(("close", (), {}))

    @property
    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def kazoo(monkeypatch: pytest.MonkeyPatch) -> type[_FakeKazoo]:
    monkeypatch.setattr(_FakeKazoo, "instances", [])
    monkeypatch.setattr(_FakeKazoo, "start_error", None)
    monkeypatch.setattr(_FakeKazoo, "set_error", None)
    monkeypatch.setattr(zk_acl, "KazooClient", _FakeKazoo)
    return _FakeKazoo


def _only(kazoo: type[_FakeKazoo]) -> _FakeKazoo:
    assert len(kazoo.instances) == 1
    return kazoo.instances[0]


def test_the_client_speaks_tls_with_pghas_certificate_from_the_members_namespace(
        kazoo: type[_FakeKazoo]) -> None:
    kazoo.set_error = NoAuthError()
    write_refused(EP, PATH)
    kwargs = _only(kazoo).kwargs
    assert kwargs["hosts"] == "198.18.0.21:2181"
    assert (kwargs["use_ssl"], kwargs["verify_certs"]) == (True, True)
    assert (kwargs["ca"], kwargs["certfile"], kwargs["keyfile"]) == ("/pki/ca.crt", "/pki/pgha.crt", "/pki/pgha.key")
    assert kwargs["timeout"] == zk_acl.TIMEOUT_S == 5.0
    handler = kwargs["handler"]
    assert isinstance(handler, zk_acl._NamespaceHandler) and handler._netns == "/run/netns/pgha-x-dcs1"
    # One try each: a probe, not a client that keeps at it.
    assert kwargs["connection_retry"].max_tries == 1 and kwargs["command_retry"].max_tries == 1


def test_noauth_means_refused(kazoo: type[_FakeKazoo]) -> None:
    kazoo.set_error = NoAuthError()
    assert write_refused(EP, PATH) == (
        True, "198.18.0.21:2181 refused a write to /service/pgha-x from a certificate outside its ACL (NoAuth)")
    client = _only(kazoo)
    assert client.calls[:2] == [("start", (), {"timeout": 5.0}), ("set", (PATH, b""), {"version": NEVER_VERSION})]
    assert client.names[2:] == ["stop", "close"]


def test_bad_version_means_anyone_may_write(kazoo: type[_FakeKazoo]) -> None:
    kazoo.set_error = BadVersionError()
    assert write_refused(EP, PATH) == (
        False, "198.18.0.21:2181 lets anyone write /service/pgha-x (the probe's impossible version kept it a no-op)")
    assert _only(kazoo).names == ["start", "set", "stop", "close"]


def test_a_write_that_goes_through_is_not_refused(kazoo: type[_FakeKazoo]) -> None:
    assert write_refused(EP, PATH) == (False, "198.18.0.21:2181 took a write to /service/pgha-x at an impossible "
                                              "version")
    assert _only(kazoo).names == ["start", "set", "stop", "close"]


def test_a_missing_znode_is_not_refused_and_says_why(kazoo: type[_FakeKazoo]) -> None:
    kazoo.set_error = NoNodeError()
    assert write_refused(EP, PATH) == (
        False, "/service/pgha-x does not exist on 198.18.0.21:2181: Patroni has not created the cluster yet")
    assert _only(kazoo).names == ["start", "set", "stop", "close"]


def test_the_impossible_version_is_one_no_znode_reaches() -> None:
    assert NEVER_VERSION == 2**31 - 1  # ZooKeeper's versions are signed 32-bit


def test_another_zookeeper_error_is_an_oserror(kazoo: type[_FakeKazoo]) -> None:
    kazoo.set_error = ConnectionLoss()
    with pytest.raises(OSError, match=r"^198\.18\.0\.21:2181: ConnectionLoss$"):
        write_refused(EP, PATH)
    assert _only(kazoo).names == ["start", "set", "stop", "close"]


def test_no_session_is_an_oserror_and_the_client_is_closed(kazoo: type[_FakeKazoo]) -> None:
    kazoo.start_error = ConnectionLoss()
    with pytest.raises(OSError, match=r"^198\.18\.0\.21:2181: no ZooKeeper session over TLS \(ConnectionLoss\)$"):
        write_refused(EP, PATH)
    assert _only(kazoo).names == ["start", "close"]  # never a write


@pytest.mark.parametrize("tls", [None, ClientTls("/pki/ca.crt")])
def test_without_a_client_certificate_there_is_no_probe(kazoo: type[_FakeKazoo], tls: ClientTls | None) -> None:
    with pytest.raises(OSError, match="the secure client port needs a client certificate"):
        write_refused(Endpoint("198.18.0.21", 2181, None, tls), PATH)
    assert kazoo.instances == []


def test_the_handler_dials_from_inside_the_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []

    class _Entered:
        def __init__(self, netns: str | None) -> None:
            self.netns = netns

        def __enter__(self) -> None:
            events.append(f"enter {self.netns}")

        def __exit__(self, *exc: object) -> None:
            events.append(f"leave {self.netns}")

    def create_connection(self: SequentialThreadingHandler, *args: Any, **kwargs: Any) -> str:
        events.append(f"connect {args} {kwargs}")
        return "socket"

    monkeypatch.setattr(zk_acl, "entered", _Entered)
    monkeypatch.setattr(SequentialThreadingHandler, "create_connection", create_connection)
    handler = zk_acl._NamespaceHandler("/run/netns/pgha-x-dcs0")
    assert handler.create_connection(("198.18.0.20", 2181), timeout=5.0) == "socket"
    assert events == ["enter /run/netns/pgha-x-dcs0", "connect (('198.18.0.20', 2181),) {'timeout': 5.0}",
                      "leave /run/netns/pgha-x-dcs0"]


@pytest.fixture
def kazoos_leaked_socket() -> Iterator[None]:
    """kazoo does not close the TLS socket of a connection that failed, and logs the error with
    its traceback (which the log capture would hold, socket and all, until the session ends):
    kazoo's log is off for the test, and the socket is collected after it, without a warning."""
    log = logging.getLogger("kazoo")
    level = log.level
    log.setLevel(logging.CRITICAL)
    yield
    log.setLevel(level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.mark.usefixtures("kazoos_leaked_socket")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_member_that_does_not_answer_is_an_oserror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The real kazoo client with real certificates, against a local port nothing listens on.
    topo = topology(build_spec("default", overrides={"backend": "netns", "name": "x", "dcs": {"kind": "zookeeper"}}))
    pki.ensure(tmp_path / "pki", topo)
    tls = pki.controller_tls(tmp_path / "pki")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(zk_acl, "TIMEOUT_S", 0.3)
    with pytest.raises(OSError, match="no ZooKeeper session"):
        write_refused(Endpoint("127.0.0.1", port, None, tls), PATH)
