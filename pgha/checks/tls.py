"""TLS as promised, checked from outside (`pgha check`'s security line): every hop encrypted and
verified against the cluster's CA, and cleartext refused where TLS is promised.

Each finding is (ok, one phrase of evidence). Nothing here writes to the cluster.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
from cryptography import x509

from pgha.cluster import Cluster
from pgha.net.dcs import member_health
from pgha.net.dial import Endpoint, http_request, tcp_connect
from pgha.net.probe import ClusterState

Finding = tuple[bool, str]
TIMEOUT = 3.0

_REPLICATION_SQL = ("SELECT r.application_name, s.ssl, coalesce(s.version, '') FROM pg_stat_replication r "
                    "JOIN pg_stat_ssl s USING (pid) ORDER BY 1")


def _refused(attempt: Callable[[], object]) -> tuple[bool, str]:
    """(refused, how): does the attempt fail (as a cleartext or certificate-less one must)?"""
    try:
        answer = attempt()
    except (OSError, ValueError, psycopg.Error) as e:
        text = (str(e).strip().splitlines() or [e.__class__.__name__])[-1]
        return True, text[:120]
    return False, f"answered {answer}"


def postgres(cluster: Cluster, state: ClusterState) -> list[Finding]:
    found: list[Finding] = []
    ssl_on, plain_refused = [], []
    for node in cluster.spec.node_names:
        try:
            with cluster.clients.node_target(node).connect(connect_timeout=TIMEOUT, autocommit=True) as conn:
                row = conn.execute("SELECT current_setting('ssl'), s.ssl, s.version FROM pg_stat_ssl s "
                                   "WHERE s.pid = pg_backend_pid()").fetchone()
            ok = row is not None and row[0] == "on" and row[1] is True
            ssl_on.append((ok, f"{node} ssl={row[0] if row else '?'} ({row[2] if row else '?'}, verify-full)"))
        except psycopg.Error as e:
            ssl_on.append((False, f"{node}: no verified TLS connection ({str(e).strip()[:80]})"))
        refused, how = _refused(functools.partial(_plain_select, cluster, node))
        plain_refused.append((refused, f"{node} {'refused' if refused else 'took'} cleartext"
                                       + ("" if refused else f" ({how})")))
    found += ssl_on + plain_refused
    if state.leader is not None and cluster.spec.nodes > 1:
        found.append(_replication(cluster, state.leader.name))
        found.append(_hba(cluster, state.leader.name))
    return found


def _plain_select(cluster: Cluster, node: str) -> Any:
    with cluster.clients.node_target(node, sslmode="disable").connect(connect_timeout=TIMEOUT) as conn:
        return conn.execute("SELECT 1").fetchone()


def _replication(cluster: Cluster, leader: str) -> Finding:
    """On the primary: pg_stat_ssl of the WAL senders (a standby's own view proves nothing)."""
    try:
        with cluster.clients.node_target(leader).connect(connect_timeout=TIMEOUT, autocommit=True) as conn:
            rows = conn.execute(_REPLICATION_SQL).fetchall()
    except psycopg.Error as e:
        return False, f"replication: {leader} did not answer ({str(e).strip()[:80]})"
    if not rows:
        return False, f"replication: no standby streams from {leader}"
    plain = [r[0] for r in rows if not r[1]]
    if plain:
        return False, f"replication in cleartext to {plain}"
    return True, f"replication from {leader} over TLS to {len(rows)} standby(s) ({rows[0][2]})"


def _hba(cluster: Cluster, node: str) -> Finding:
    try:
        with cluster.clients.node_target(node).connect(connect_timeout=TIMEOUT, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FILTER (WHERE type = 'host'), "
                               "count(*) FILTER (WHERE type = 'hostssl') FROM pg_hba_file_rules").fetchone()
    except psycopg.Error as e:
        return False, f"pg_hba of {node} unread ({str(e).strip()[:80]})"
    assert row is not None
    return row[0] == 0 and row[1] > 0, f"pg_hba of {node}: {row[1]} hostssl, {row[0]} host lines"


def tls_only(what: str, ep: Endpoint, ask: Callable[[Endpoint], object], *,
             needs_certificate: bool) -> list[Finding]:
    """A TLS port: asked over verified TLS it answers; asked in cleartext it does not; without a
    client certificate (where one is required) the handshake fails."""
    found: list[Finding] = []
    try:
        found.append((True, f"{what} over TLS ({ask(ep)})"))
    except (OSError, ValueError) as e:
        found.append((False, f"{what}: no verified TLS session ({str(e)[:80]})"))
    refused, how = _refused(lambda: ask(replace(ep, tls=None)))
    found.append((refused, f"{what} {'refused' if refused else 'took'} cleartext" + ("" if refused else f" ({how})")))
    if needs_certificate and ep.tls is not None:
        no_cert = replace(ep, tls=ep.tls.without_certificate())
        refused, how = _refused(lambda: ask(no_cert))
        found.append((refused, f"{what} {'refused' if refused else 'took'} a client without certificate"
                      + ("" if refused else f" ({how})")))
    return found


def _http_status(path: str) -> Callable[[Endpoint], object]:
    return lambda ep: f"HTTP {http_request(ep, path, TIMEOUT)[0]}"


# PostgreSQL's SSLRequest: a client asks for TLS before its startup message.
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def served_certificate(ep: Endpoint, *, postgres: bool = False) -> x509.Certificate:
    """The certificate a TLS port serves right now (after its SSLRequest for PostgreSQL),
    verified against the cluster's CA; raises OSError."""
    if ep.tls is None:
        raise OSError(f"{ep}: no TLS settings to dial it with")
    with tcp_connect(ep, TIMEOUT) as raw:
        if postgres:
            raw.sendall(_SSL_REQUEST)
            if raw.recv(1) != b"S":
                raise OSError(f"{ep}: PostgreSQL refused TLS")
        with ep.tls.context().wrap_socket(raw, server_hostname=ep.host) as tls:
            der = tls.getpeercert(binary_form=True)
    if der is None:
        raise OSError(f"{ep}: no certificate served")
    return x509.load_der_x509_certificate(der)


def transport(cluster: Cluster, state: ClusterState) -> list[Finding]:
    """Every hop pgha can dial: PostgreSQL, Patroni's REST API, the DCS, HAProxy's stats."""
    reach, spec = cluster.reach, cluster.spec
    found = postgres(cluster, state)
    for node in spec.node_names:
        found += tls_only(f"REST {node}", reach.rest(node), _http_status("health"), needs_certificate=False)

    def dcs_health(ep: Endpoint) -> object:
        healthy, detail = member_health(spec.dcs.kind, ep, TIMEOUT)
        if not healthy:
            raise ValueError(detail)
        return detail

    for i, place in enumerate(reach.topology.dcs):
        found += tls_only(f"{spec.dcs.kind} {place.name}", reach.dcs_client(i), dcs_health, needs_certificate=True)
    for k, place in enumerate(reach.topology.haproxies):
        found += tls_only(f"stats {place.name}", reach.haproxy_stats(k), _http_status(""), needs_certificate=False)
    return found
