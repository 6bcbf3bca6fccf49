"""Connecting to a component from where it can be reached.

Components of a netns or container cluster have addresses that exist only inside their network
namespaces; pgha on the host has no address there (by design: nothing of a cluster is routed
off its namespaces). So a connection is opened from inside the component's own namespace: the
calling thread enters it with setns(2), creates the socket, and returns. A socket stays in the
namespace it was created in, so it can be used from any thread afterwards; other threads never
leave pgha's own namespace, because setns changes only the calling thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class ClientTls:
    """How pgha speaks TLS to a component: the cluster's CA, and pgha's own client certificate."""

    ca: str
    cert: str | None = None
    key: str | None = None

    def context(self) -> ssl.SSLContext:
        # The default context checks the chain and the name (an IP against the IP SANs).
        ctx = ssl.create_default_context(cafile=self.ca)
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def without_certificate(self) -> ClientTls:
        return ClientTls(self.ca)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    netns: str | None = None  # path of the namespace to connect from; None: pgha's own
    tls: ClientTls | None = None  # HTTPS (and a client certificate) instead of plain HTTP

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def entered(netns: str | None) -> Iterator[None]:
    """Within the block, sockets this thread creates belong to `netns`."""
    if netns is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(netns, os.O_RDONLY)
    except OSError:
        os.close(own)
        raise
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


@dataclass(frozen=True)
class PgTarget:
    """A PostgreSQL server to connect to, and the namespace to connect from."""

    dsn: str
    netns: str | None = None

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        # psycopg opens the socket in the calling thread (libpq's connect poll), inside the block.
        with entered(self.netns):
            return psycopg.connect(self.dsn, **kwargs)


def tcp_connect(ep: Endpoint, timeout: float) -> socket.socket:
    with entered(ep.netns):
        return socket.create_connection((ep.host, ep.port), timeout=timeout)


class _NetnsHandler(urllib.request.HTTPHandler):
    def __init__(self, netns: str | None) -> None:
        super().__init__()
        self.netns = netns

    def http_open(self, req: urllib.request.Request) -> Any:
        with entered(self.netns):
            # The socket is connected inside do_open, before the response is read.
            return self.do_open(http.client.HTTPConnection, req)


class _NetnsHttpsHandler(urllib.request.HTTPSHandler):
    def __init__(self, netns: str | None, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.netns = netns
        self.tls_context = context

    def https_open(self, req: urllib.request.Request) -> Any:
        with entered(self.netns):
            return self.do_open(http.client.HTTPSConnection, req, context=self.tls_context)


def http_request(ep: Endpoint, path: str, timeout: float, method: str = "GET", body: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, JSON body, or the text of a body that is not JSON) of one HTTP request; HTTP
    errors are answers too (status, body).

    Raises OSError when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    scheme = "https" if ep.tls else "http"
    req = urllib.request.Request(f"{scheme}://{ep.host}:{ep.port}/{path.lstrip('/')}", data=data, method=method,
                                 headers={**({"Content-Type": "application/json"} if data else {}),
                                          **(headers or {})})
    # No proxy from the environment: a cluster's addresses are reachable only from here.
    handler: urllib.request.BaseHandler = (
        _NetnsHttpsHandler(ep.netns, ep.tls.context()) if ep.tls else _NetnsHandler(ep.netns))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), handler)
    try:
        with opener.open(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        # Not JSON: the text itself (Patroni explains a refusal in plain words).
        return status, raw.decode(errors="replace").strip() or None
