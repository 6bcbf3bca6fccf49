"""Spec -> PgBouncer's configuration: a transaction pool in front of its HAProxy's read-write
entrypoint, SCRAM for clients, TLS on both sides when the cluster has it (pure)."""

from __future__ import annotations

from pgha.model.topology import Topology
from pgha.state.layout import Layout
from pgha.state.secrets import APP_USER, POOLER_ADMIN, Secrets

# Startup parameters some drivers send (JDBC, npgsql) that PgBouncer would otherwise refuse.
IGNORED_STARTUP_PARAMETERS = "extra_float_digits"
# After a failed login to the server (no primary yet), try again this soon: the pool is back
# within a fraction of a second of the new primary, not PgBouncer's default 15 s.
SERVER_LOGIN_RETRY_S = 0.25


def render_pooler(topo: Topology, layout: Layout, k: int = 0, *, upstream_host: str | None = None,
                  tls: bool = False) -> str:
    """pgbouncer.ini of the pooler beside HAProxy host k. Every database name is pooled to the
    same server: HAProxy's read-write entrypoint on that host (`upstream_host` names it where
    the address is not the host's own, e.g. a compose service)."""
    spec, place = topo.spec, topo.poolers[k]
    haproxy, ports = topo.haproxies[k], topo.haproxy_ports[k]
    p = spec.pooler
    upstream = f"host={upstream_host or haproxy.address} port={ports.rw}"
    settings: list[tuple[str, str | int | float]] = [
        ("listen_addr", place.address),
        ("listen_port", topo.pooler_ports[k]),
        # No Unix socket: a socket in /tmp would be shared by every cluster on the machine.
        ("unix_socket_dir", ""),
        ("auth_type", "scram-sha-256"),
        ("auth_file", str(layout.pooler_users)),
        ("admin_users", POOLER_ADMIN),
        ("stats_users", POOLER_ADMIN),
        ("pool_mode", p.pool_mode),
        ("default_pool_size", p.pool_size),
        ("max_client_conn", p.max_client_conn),
        ("query_wait_timeout", p.query_wait_timeout_s),
        ("server_login_retry", SERVER_LOGIN_RETRY_S),
        ("server_connect_timeout", 5),
        ("ignore_startup_parameters", IGNORED_STARTUP_PARAMETERS),
        # 20 connections a second would make two log lines each; errors and pauses stay.
        ("log_connections", 0),
        ("log_disconnections", 0),
        ("log_pooler_errors", 1),
    ]
    if tls:
        settings += [
            ("client_tls_sslmode", "require"),
            ("client_tls_cert_file", str(layout.tls_cert(place.name))),
            ("client_tls_key_file", str(layout.tls_key(place.name))),
            ("client_tls_ca_file", str(layout.tls_ca)),
            ("client_tls_protocols", "tlsv1.2,tlsv1.3"),
            # The server is reached through HAProxy, whose address is not in the node's
            # certificate: the chain is checked against the cluster's own CA, not the name.
            ("server_tls_sslmode", "verify-ca"),
            ("server_tls_ca_file", str(layout.tls_ca)),
            ("server_tls_protocols", "tlsv1.2,tlsv1.3"),
        ]
    lines = ["[databases]", f"* = {upstream}", "", "[pgbouncer]"]
    lines += [f"{key} = {value}" for key, value in settings]
    return "\n".join([*lines, ""])


def render_pooler_users(secrets: Secrets) -> str:
    """auth_file: the application's role (the server checks the same password again) and
    pgha's admin console user."""
    return "".join(f'"{user}" "{password}"\n' for user, password in
                   ((APP_USER, secrets.app_password), (POOLER_ADMIN, secrets.pooler_admin_password)))
