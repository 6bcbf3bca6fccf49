"""Line 7 of `pgha check`: what is promised against local users and the network (the TLS part in
pgha.checks.tls)."""

from __future__ import annotations

from pgha.checks import tls as tls_probe
from pgha.checks.result import CONNECT_TIMEOUT, Outcome
from pgha.cluster import Cluster
from pgha.net.dial import http_request
from pgha.net.probe import ClusterState
from pgha.security.dcs_auth import anonymous_write_refused


def check_security(cluster: Cluster, state: ClusterState) -> Outcome:
    """What is promised against local users and the network, verified from outside: the DCS
    refuses a write without credentials (a probe that never writes); Patroni's REST API refuses
    a change without its password (a switchover request with no candidate, which does nothing
    even where it is let through); with TLS, every hop is encrypted and verified and refuses
    cleartext (pgha.checks.tls)."""
    spec = cluster.spec
    name = "security: only Patroni writes the DCS; REST changes need the password"
    if spec.tls:
        name += "; TLS on every hop"
    if not spec.dcs.authentication:
        return Outcome(name, "SKIP", f"profile {spec.profile} is the lab as published: its DCS "
                                     f"({spec.dcs.kind}) takes writes from anyone who reaches it, "
                                     "and nothing is encrypted")
    try:
        refused, evidence = anonymous_write_refused(spec, cluster.reach.dcs_client(0))
    except OSError as e:
        refused, evidence = False, f"the DCS did not answer: {e}"
    node = state.leader.name if state.leader else spec.node_names[0]
    try:
        status, _ = http_request(cluster.reach.rest(node), "switchover", CONNECT_TIMEOUT, method="POST", body={})
        rest_ok = status == 401
        rest = f"{node}'s REST API answered an unauthenticated POST with HTTP {status}"
    except OSError as e:
        rest_ok, rest = False, f"{node}'s REST API did not answer: {e}"
    findings = [(refused, evidence), (rest_ok, rest)]
    if spec.tls:
        findings += tls_probe.transport(cluster, state)
    else:
        findings.append((True, "TLS off (spec.tls: the cluster's hosts share this machine's loopback)"))
    failed = [text for ok, text in findings if not ok]
    if failed:
        return Outcome(name, "FAIL", "; ".join(failed))
    return Outcome(name, "PASS", "; ".join(text for _, text in findings))
