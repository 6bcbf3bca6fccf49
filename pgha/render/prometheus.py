"""Topology -> the Prometheus scrape configuration of one cluster (pure).

Every target carries the cluster's `scope` label, and every Patroni target its node's `name`, so
that `up` (the only series a target that stops answering leaves) names what went silent, as the
alert rules expect (pgha.render.alert_rules: the job names are theirs). Patroni's own series
carry scope and name already: `honor_labels` keeps them rather than renaming them exported_*.
With TLS every scrape is HTTPS verified against the cluster's CA; etcd (client-cert-auth) gets
the client certificate pgha gives Prometheus, HAProxy's exporter (on its stats listener) the
stats password, from a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgha.model.topology import Topology
from pgha.render import to_yaml
from pgha.render.alert_rules import JOB_DCS, JOB_HAPROXY, JOB_PATRONI

# Fast enough that the no-primary alert fires well within 15 s of a frozen primary (issue 23):
# a scrape every 2 s, rules evaluated every 2 s, and the alert's own `for:`.
SCRAPE_INTERVAL_S = 2
EVALUATION_INTERVAL_S = 2
HAPROXY_METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class ScrapeFiles:
    """Files Prometheus reads, as paths on its host."""

    rules: str
    ca: str | None  # the cluster's CA (None: no TLS)
    client_cert: str | None  # Prometheus's client certificate for etcd
    client_key: str | None
    stats_password: str  # HAProxy's stats password


def _tls(files: ScrapeFiles, client: bool = False) -> dict[str, Any]:
    if files.ca is None:
        return {}
    config: dict[str, Any] = {"ca_file": files.ca}
    if client and files.client_cert and files.client_key:
        config |= {"cert_file": files.client_cert, "key_file": files.client_key}
    return {"scheme": "https", "tls_config": config}


def scrape_configs(topo: Topology, files: ScrapeFiles, stats_user: str) -> list[dict[str, Any]]:
    spec = topo.spec
    scope = spec.patroni_scope
    jobs: list[dict[str, Any]] = [{
        "job_name": JOB_PATRONI,
        "honor_labels": True,
        **_tls(files),
        "static_configs": [{"targets": [f"{place.address}:{ports.rest}"],
                            "labels": {"scope": scope, "name": place.name}}
                           for place, ports in zip(topo.nodes, topo.node_ports, strict=True)],
    }, {
        "job_name": JOB_HAPROXY,
        "metrics_path": HAPROXY_METRICS_PATH,
        **_tls(files),
        "basic_auth": {"username": stats_user, "password_file": files.stats_password},
        "static_configs": [{"targets": [f"{place.address}:{ports.stats}"], "labels": {"scope": scope,
                                                                                        "haproxy": place.name}}
                           for place, ports in zip(topo.haproxies, topo.haproxy_ports, strict=True)],
    }]
    if spec.dcs.kind == "etcd":
        jobs.append({
            "job_name": JOB_DCS,
            **_tls(files, client=True),
            "static_configs": [{"targets": [f"{place.address}:{ports.client}"],
                                "labels": {"scope": scope, "member": place.name}}
                               for place, ports in zip(topo.dcs, topo.dcs_ports, strict=True)],
        })
    return jobs


def render_prometheus_config(topo: Topology, files: ScrapeFiles, stats_user: str) -> str:
    return to_yaml({
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
                   "evaluation_interval": f"{EVALUATION_INTERVAL_S}s"},
        "rule_files": [files.rules],
        "scrape_configs": scrape_configs(topo, files, stats_user),
    })
