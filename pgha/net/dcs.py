"""Asking a DCS member from outside whether it is healthy: etcd's `/health`, ZooKeeper's `srvr`
four-letter word (over TLS on its secure client port)."""

from __future__ import annotations

import contextlib

from pgha.net.dial import Endpoint, http_request, tcp_connect


def etcd_health(ep: Endpoint, timeout: float) -> tuple[bool, str]:
    _, data = http_request(ep, "health", timeout)
    healthy = str(data.get("health")) == "true"
    return healthy, "healthy" if healthy else f"unhealthy: {data.get('reason') or 'no quorum'}"


def zookeeper_health(ep: Endpoint, timeout: float) -> tuple[bool, str]:
    reply = four_letter(ep, "srvr", timeout)
    mode = next((ln.split(":", 1)[1].strip() for ln in reply.splitlines() if ln.startswith("Mode:")), "")
    healthy = mode in ("leader", "follower", "standalone")
    return healthy, mode if healthy else (reply.strip().splitlines() or ["no answer"])[0]


def member_health(kind: str, ep: Endpoint, timeout: float) -> tuple[bool, str]:
    """(healthy, one-line detail) of the member of DCS kind `kind` (spec.dcs.kind) at ep; raises
    OSError/ValueError when it does not answer."""
    return {"etcd": etcd_health, "zookeeper": zookeeper_health}[kind](ep, timeout)


def four_letter(ep: Endpoint, word: str, timeout: float) -> str:
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(tcp_connect(ep, timeout))
        if ep.tls is not None:
            # The secure client port: TLS first, with a certificate of the cluster's CA.
            s = stack.enter_context(ep.tls.context().wrap_socket(s, server_hostname=ep.host))
        s.sendall(word.encode())
        chunks = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
