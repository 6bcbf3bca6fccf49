"""Spec -> haproxy.cfg: the read-write entrypoint, the read-only one, and the stats page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pgha.model.spec import Spec
from pgha.model.topology import POOLER_PROXY, RO_PROXY, RW_PROXY, Place, Topology
from pgha.state.layout import Layout
from pgha.state.secrets import STATS_USER, Secrets


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


@dataclass(frozen=True)
class ServerStyle:
    """How server lines name the nodes: by address (default), or by a name that HAProxy keeps
    resolving (compose: service names, so a recreated container is found again)."""

    host: Callable[[Place], str] = lambda place: place.address
    options: str = ""


def _servers(topo: Topology, style: ServerStyle, ca_file: Path | None) -> list[str]:
    extra = f" {style.options}" if style.options else ""

    def tls(place: Place) -> str:
        # The check talks HTTPS to Patroni's REST API and trusts only the cluster's CA; the name
        # checked is the node's (HAProxy 2.6 does not match an IP against IP SANs).
        return f" check-ssl verify required ca-file {ca_file} verifyhost {place.name}" if ca_file else ""

    return [
        f"    server {place.name} {style.host(place)}:{ports.postgres} check port {ports.rest}{tls(place)}{extra}"
        for place, ports in zip(topo.nodes, topo.node_ports, strict=True)
    ]


def _proxy(topo: Topology, bind: str, name: str, port: int, check_uri: str | None,
           balance: str | None, style: ServerStyle, ca_file: Path | None) -> list[str]:
    spec = topo.spec
    lines = [f"listen {name}", f"    bind {bind}:{port}"]
    if balance:
        lines.append(f"    balance {balance}")
    lines.append(f"    option httpchk GET {check_uri}" if check_uri else "    option httpchk")
    lines.append("    http-check expect status 200")
    lines.append(_default_server(spec))
    return [*lines, *_servers(topo, style, ca_file), ""]


def render_haproxy(topo: Topology, layout: Layout, secrets: Secrets, k: int = 0, *,
                   style: ServerStyle = ServerStyle(), stats_auth: str | None = None,
                   stats_password: str | None = None, extra_sections: Sequence[str] = (),
                   tls: bool = False) -> str:
    """The configuration of HAProxy host k (every host routes the same way).

    `stats_auth` replaces the `stats auth` argument and `stats_password` the password of the
    metrics' user list (compose: references to an environment variable instead of the password);
    `extra_sections` (e.g. `resolvers`) go before the proxies."""
    spec = topo.spec
    h = spec.haproxy
    bind, ports = topo.haproxies[k].address, topo.haproxy_ports[k]
    glob = ["global", f"    maxconn {h.maxconn}",
            f"    stats socket {layout.haproxy_socket} mode 600 level admin",
            "    log stdout format iso local0 info"]
    if h.threads:
        glob.append(f"    nbthread {h.threads}")
    me = topo.haproxies[k].name
    ca_file = layout.tls_ca if tls else None
    if tls:
        glob += ["    ssl-default-bind-options ssl-min-ver TLSv1.2",
                 "    ssl-default-server-options ssl-min-ver TLSv1.2"]
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
           *_proxy(topo, bind, RW_PROXY, ports.rw, rw_uri, None, style, ca_file)]
    if h.readonly_port and ports.ro is not None:
        out += _proxy(topo, bind, RO_PROXY, ports.ro, "/replica", "roundrobin", style, ca_file)
    # The stats page asks for a password: over HTTPS, so it never crosses a network in clear.
    stats_tls = f" ssl crt {layout.tls_pem(me)}" if tls else ""
    # Beside it, HAProxy's own Prometheus exporter, behind the same password (not in the lab's).
    metrics = spec.profile != "seed"
    password = stats_password or secrets.stats_password
    users = ["userlist stats_users", f"    user {STATS_USER} insecure-password {password}", ""] if metrics else []
    exporter = ["    acl metrics path /metrics",
                "    http-request auth realm metrics if metrics !{ http_auth(stats_users) }",
                "    http-request use-service prometheus-exporter if metrics"] if metrics else []
    out += [
        *users,
        "listen stats",
        "    mode http",
        f"    bind {bind}:{ports.stats}{stats_tls}",
        *exporter,
        "    stats enable",
        "    stats uri /",
        "    stats refresh 5s",
        f"    stats auth {stats_auth or f'{STATS_USER}:{secrets.stats_password}'}",
        "",
    ]
    return "\n".join(out)


def host_entrypoints(topo: Topology, place: Place) -> list[tuple[str, int]]:
    """(proxy, loopback port) an HAProxy host serves this machine's clients on (none for others;
    netns only)."""
    if place not in topo.haproxies:
        return []
    p, k = topo.spec.ports, place.index
    pooled = [(POOLER_PROXY, p.pooler[k])] if p.pooler else []
    if k > 0:
        return [(RW_PROXY, p.entrypoint_rw_more[k - 1]), *pooled]
    out = [(RW_PROXY, p.entrypoint_rw)]
    if p.entrypoint_ro is not None:
        out.append((RO_PROXY, p.entrypoint_ro))
    return [*out, *pooled]


def render_host_entry(frontends: list[tuple[str, int]], pooler: str | None = None) -> str:
    """The frontends that serve this machine's clients from sockets pgha passed in (netns only;
    a real machine's HAProxy and PgBouncer bind their own address, as their configs say). The
    pooler's socket is HAProxy's too, forwarded to PgBouncer beside it (`pooler`: its address)."""
    lines = []
    for proxy, fd in frontends:
        lines += [f"frontend host_{proxy}", f"    bind fd@{fd}", f"    default_backend {proxy}", ""]
    if pooler is not None and any(proxy == POOLER_PROXY for proxy, _ in frontends):
        lines += [f"backend {POOLER_PROXY}", f"    server {POOLER_PROXY} {pooler}", ""]
    return "\n".join(lines)
