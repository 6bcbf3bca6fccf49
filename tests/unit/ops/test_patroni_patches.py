"""pgha's patches to Patroni's graceful stop: made for the pinned version, and this test fails as
soon as the upstream code they rely on moves (each patch in a fresh interpreter: they change
Patroni's classes for the whole process)."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import patroni.api
import patroni.postgresql
from patroni.version import __version__

from pgha.ops import patroni_patches

ROOT = Path(__file__).resolve().parents[3]


def test_made_for_the_patroni_pgha_pins() -> None:
    assert __version__ == patroni_patches.PATRONI_VERSION
    pin = re.search(r'"patroni\[[^\]]*\]==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin is not None and pin.group(1) == patroni_patches.PATRONI_VERSION


def test_the_upstream_code_the_patches_rely_on_is_where_it_was() -> None:
    # Patch 1: the daemon's REST shutdown stops serving without closing the socket; its reload
    # closes the socket after the same shutdown (what the patch does too).
    shutdown = inspect.getsource(patroni.api.RestApiServer.shutdown)
    assert "super(RestApiServer, self).shutdown()" in shutdown and "server_close" not in shutdown
    initialize = inspect.getsource(patroni.api.RestApiServer._RestApiServer__initialize)
    assert "HTTPServer.shutdown(self)" in initialize and "self.server_close()" in initialize
    # Patch 2: the stop is polled with the module's constant, read at every sleep.
    assert patroni.postgresql.STOP_POLLING_INTERVAL == 1
    do_stop = inspect.getsource(patroni.postgresql.Postgresql._do_stop)
    assert do_stop.count("time.sleep(STOP_POLLING_INTERVAL)") == 1 and "controldata()" in do_stop
    close = inspect.getsource(patroni.postgresql.Postgresql._wait_for_connection_close)
    assert "time.sleep(STOP_POLLING_INTERVAL)" in close


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_a_stopped_rest_api_refuses_connections_at_once() -> None:
    out = _run("""
import concurrent.futures, socket, socketserver, threading
from http.server import BaseHTTPRequestHandler
from patroni.api import RestApiServer
from pgha.ops import patroni_patches

def served_then_shut_down(patched):
    if patched:
        patroni_patches.close_rest_socket_on_shutdown()
    srv = RestApiServer.__new__(RestApiServer)
    socketserver.TCPServer.__init__(srv, ("127.0.0.1", 0), BaseHTTPRequestHandler)
    srv._executor = concurrent.futures.ThreadPoolExecutor(1)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    srv.shutdown()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return "accepted"
    except ConnectionRefusedError:
        return "refused"

print(served_then_shut_down(False), served_then_shut_down(True))
""")
    # Unpatched, the kernel still accepts (and nobody answers: a candidate waits 2 s); patched, refused.
    assert out.split() == ["accepted", "refused"]


def test_patches_apply_to_the_pinned_version_only() -> None:
    out = _run("""
import patroni.postgresql
from pgha.ops import patroni_patches
assert not patroni_patches.apply("4.0.0") and patroni.postgresql.STOP_POLLING_INTERVAL == 1
assert patroni_patches.apply(patroni_patches.PATRONI_VERSION)
print(patroni.postgresql.STOP_POLLING_INTERVAL)
""")
    assert "running it unpatched" in out and "0.1" in out.split()


def test_the_unit_runs_patroni_through_the_patches() -> None:
    from pgha.components.base import Programs
    from pgha.components.patroni import PATRONI_SCRIPT, PatroniNode

    argv = PatroniNode().command(Programs("/opt/pgha/venv/bin/patroni"), "/c/conf/patroni-node0.yml", "/c/conf")
    assert argv == ["/opt/pgha/venv/bin/python", f"/c/conf/{PATRONI_SCRIPT}", "/c/conf/patroni-node0.yml"]


def test_the_fixed_wait_for_replicas_is_where_it_was() -> None:
    from patroni.ha import Ha
    from patroni.postgresql import Postgresql

    for method in (Ha.shutdown, Ha.demote):
        source = inspect.getsource(method)
        # One fixed second inside the on_shutdown callback, handed to the stop by keyword, then
        # the check that a replica has the shutdown checkpoint.
        assert source.count("time.sleep(1)  # give replicas some more time to catch up") == 1
        assert "on_shutdown=on_shutdown" in source or "on_shutdown=_on_shutdown" in source or \
            "on_shutdown=on_shutdown if" in source
        assert "is_failover_possible(cluster_lsn=checkpoint_location)" in source
    assert "on_shutdown" in inspect.signature(Postgresql.stop).parameters
    ha_shutdown = inspect.getsource(Ha.shutdown)
    # ...and without a replica that has it, the key is still released once PostgreSQL has stopped.
    assert "if self.is_leader() and not status['deleted']:" in ha_shutdown


def test_only_the_fixed_wait_inside_on_shutdown_is_shortened() -> None:
    out = _run("""
import time
from patroni.postgresql import Postgresql
import patroni.ha
from pgha.ops import patroni_patches

def fake_stop(self, mode="fast", on_shutdown=None, **kwargs):
    if on_shutdown is not None:
        on_shutdown(2, 1)
    return True

Postgresql.stop = fake_stop
patroni_patches.wait_less_for_replicas_at_shutdown()
took = {}

def on_shutdown(checkpoint, prev):
    began = time.monotonic()
    patroni.ha.time.sleep(1)
    took["inside"] = time.monotonic() - began

Postgresql.stop(None, on_shutdown=on_shutdown)
began = time.monotonic()
patroni.ha.time.sleep(1)
took["outside"] = time.monotonic() - began
assert patroni.ha.time.time() > 0  # the rest of the module, unchanged
print(round(took["inside"], 1), round(took["outside"], 1))
""")
    assert out.split() == ["0.1", "1.0"]


def test_the_race_asks_each_member_with_the_fixed_timeout_where_it_did() -> None:
    from patroni.ha import Ha
    from patroni.request import PatroniRequest

    fetch = inspect.getsource(Ha.fetch_node_status)
    assert fetch.count(f"self.patroni.request(member, timeout={patroni_patches.UPSTREAM_RACE_TIMEOUT_S}, "
                       "retries=0)") == 1
    assert "self.fetch_node_status, member" in inspect.getsource(Ha.fetch_nodes_statuses)
    assert list(inspect.signature(PatroniRequest.__call__).parameters) == ["self", "member", "method", "endpoint",
                                                                           "data", "kwargs"]


def test_a_member_that_never_answers_costs_the_race_one_second_not_two() -> None:
    out = _run("""
import socket, time
from types import SimpleNamespace
import patroni.postgresql  # before patroni.ha, as Patroni's own start imports them
from patroni.dcs import Member
from patroni.ha import Ha
from patroni.request import PatroniRequest
from pgha.ops import patroni_patches

silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen(8)  # the kernel accepts; nobody ever answers (a frozen or cut-off Patroni)
port = silent.getsockname()[1]
ha = Ha.__new__(Ha)
ha.patroni = SimpleNamespace(request=PatroniRequest({}, True))
member = Member(0, "lost", None, {"api_url": f"http://127.0.0.1:{port}/patroni"})

def asked():
    began = time.monotonic()
    status = ha.fetch_node_status(member)
    return round(time.monotonic() - began), status.failover_limitation() is not None

before = asked()
patroni_patches.ask_the_members_faster_in_the_race()
after = asked()
began = time.monotonic()
try:
    ha.patroni.request(member, timeout=2, retries=0)  # any other request keeps its own timeout
except Exception:
    pass
print(before, after, round(time.monotonic() - began))
""")
    assert out.splitlines()[0] == "(2, True) (1, True) 2", out  # the warnings on stderr follow
