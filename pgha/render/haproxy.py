"""Spec -> haproxy.cfg: the read-write entrypoint, the read-only one, and the stats page.

`haproxy_config` is the whole file from explicit addresses, so the local backend (loopback
addresses and planned ports) and the compose deployment (service names, fixed in-container
ports, DNS re-resolution) share one renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgha.layout import Layout
from pgha.secrets import STATS_USER, Secrets
from pgha.spec import Spec

RW_PROXY = "primary"
RO_PROXY = "replicas"


@dataclass(frozen=True)
class Server:
    name: str  # the Patroni member name: the probe matches HAProxy's view to members by it
    host: str
    port: int
    check_port: int
    options: str = ""  # appended to the server line (e.g. resolvers)


@dataclass(frozen=True)
class Listen:
    host: str
    rw_port: int
    ro_port: int | None
    stats_port: int


def _default_server(spec: Spec) -> str:
    h = spec.haproxy
    parts = [f"inter {h.inter_ms}ms"]
    if h.fastinter_ms:
        parts.append(f"fastinter {h.fastinter_ms}ms")
    if h.downinter_ms:
        parts.append(f"downinter {h.downinter_ms}ms")
    parts += [f"fall {h.fall}", f"rise {h.rise}"]
    if h.shutdown_sessions:
        # Cut clients off a demoted primary at once instead of letting them hang on it.
        parts.append("on-marked-down shutdown-sessions")
    return "    default-server " + " ".join(parts)


def _server_lines(servers: Sequence[Server]) -> list[str]:
    return [
        f"    server {s.name} {s.host}:{s.port} check port {s.check_port}" + (f" {s.options}" if s.options else "")
        for s in servers
    ]


def _proxy(spec: Spec, name: str, bind: str, check_uri: str | None, balance: str | None,
           servers: Sequence[Server]) -> list[str]:
    lines = [f"listen {name}", f"    bind {bind}"]
    if balance:
        lines.append(f"    balance {balance}")
    lines.append(f"    option httpchk GET {check_uri}" if check_uri else "    option httpchk")
    lines.append("    http-check expect status 200")
    lines.append(_default_server(spec))
    return [*lines, *_server_lines(servers), ""]


def haproxy_config(spec: Spec, listen: Listen, servers: Sequence[Server], stats_sockets: Sequence[str],
                   stats_auth: str, extra_sections: Sequence[str] = ()) -> str:
    """The whole haproxy.cfg; `stats_auth` is the `stats auth` argument, `extra_sections` are
    whole sections (e.g. `resolvers`) placed before the proxies."""
    h = spec.haproxy
    glob = ["global", f"    maxconn {h.maxconn}",
            *(f"    stats socket {s}" for s in stats_sockets),
            "    log stdout format iso local0 info"]
    if h.threads:
        glob.append(f"    nbthread {h.threads}")
    defaults = [
        "defaults",
        "    mode tcp",
        "    log global",
        "    option dontlognull",
        "    retries 2",
        f"    timeout connect {h.timeout_connect_ms}ms",
        f"    timeout client {h.timeout_client}",
        f"    timeout server {h.timeout_server}",
        f"    timeout check {h.timeout_check_ms}ms",
    ]
    rw_uri = "/primary" if h.check == "role" else None
    out = [*glob, "", *defaults, "", *extra_sections,
           *_proxy(spec, RW_PROXY, f"{listen.host}:{listen.rw_port}", rw_uri, None, servers)]
    if h.readonly_port and listen.ro_port is not None:
        out += _proxy(spec, RO_PROXY, f"{listen.host}:{listen.ro_port}", "/replica", "roundrobin", servers)
    out += [
        "listen stats",
        "    mode http",
        f"    bind {listen.host}:{listen.stats_port}",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 5s",
        f"    stats auth {stats_auth}",
        "",
    ]
    return "\n".join(out)


def render_haproxy(spec: Spec, layout: Layout, secrets: Secrets) -> str:
    p = spec.ports
    servers = [Server(node, spec.node_host, p.postgres[i], p.rest[i]) for i, node in enumerate(spec.node_names)]
    return haproxy_config(spec, Listen(spec.host, p.entrypoint_rw, p.entrypoint_ro, p.stats), servers,
                          [f"{layout.haproxy_socket} mode 600 level admin"],
                          f"{STATS_USER}:{secrets.stats_password}")
