"""Prometheus beside the first HAProxy: scrapes every Patroni, HAProxy and etcd member of the
cluster and evaluates pgha's alert rules (pgha.render.prometheus, pgha.render.alert_rules).

Its web port asks for the stats user's password (a bcrypt hash in its web configuration, as
Prometheus wants it) and, with TLS, serves HTTPS with a certificate of the cluster's CA.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

import bcrypt

from pgha.components.base import Component, Needed, Programs, Site
from pgha.model.topology import Kind, Place, Topology
from pgha.render import RenderedFile, to_yaml
from pgha.render.alert_rules import render_alert_rules
from pgha.render.prometheus import ScrapeFiles, render_prometheus_config
from pgha.security.pki import dcs_client_name
from pgha.state.layout import Layout
from pgha.state.secrets import STATS_USER

BCRYPT_COST = 10  # checked on every request to its API: a fraction of a second, not seconds
# Its web configuration (users, TLS), in the conf directory beside the scrape configuration.
WEB_CONFIG = "prometheus-web.yml"
_BCRYPT_ALPHABET = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def password_hash(password: str, seed: str) -> str:
    """bcrypt of `password` with a salt derived from it and `seed`: the same files from the same
    secrets, so re-rendering a running cluster's configuration changes nothing."""
    digest = hashlib.sha256(f"{seed}\0{password}".encode()).digest()
    # 22 characters of bcrypt's base64: 21 free, the last one canonical (its low bits unused).
    salt = bytes(_BCRYPT_ALPHABET[b % 64] for b in digest[:21]) + bytes([b".Oeu"[digest[21] % 4]])
    return bcrypt.hashpw(password.encode(), b"$2b$%02d$" % BCRYPT_COST + salt).decode()


def monitor_files(layout: Layout) -> dict[str, Path]:
    conf = layout.conf
    return {"config": conf / "prometheus.yml", "rules": conf / "prometheus-rules.yml",
            "web": conf / WEB_CONFIG, "stats_password": conf / "prometheus-stats-password"}


def storage_path(layout: Layout) -> Path:
    return layout.data / "prometheus"


class Prometheus(Component):
    kind: ClassVar[Kind] = "monitor"
    packages: ClassVar[tuple[str, ...]] = ("prometheus",)
    keeps_data: ClassVar[bool] = True
    after: ClassVar[Kind | None] = "haproxy"

    def files(self, site: Site) -> list[RenderedFile]:
        spec, lay = site.topo.spec, site.layout
        paths = monitor_files(lay)
        client = dcs_client_name(site.name)
        scrape = ScrapeFiles(str(paths["rules"]), str(lay.tls_ca) if site.tls else None,
                             str(lay.tls_cert(client)) if site.tls else None,
                             str(lay.tls_key(client)) if site.tls else None, str(paths["stats_password"]))
        web: dict[str, object] = {"basic_auth_users": {
            STATS_USER: password_hash(site.secrets.stats_password, spec.patroni_scope)}}
        if site.tls:
            web["tls_server_config"] = {"cert_file": str(lay.tls_cert(site.name)),
                                        "key_file": str(lay.tls_key(site.name))}
        return [RenderedFile(paths["config"], render_prometheus_config(site.topo, scrape, STATS_USER), 0o600),
                RenderedFile(paths["rules"], render_alert_rules(spec), 0o644),
                RenderedFile(paths["web"], to_yaml(web), 0o600),
                RenderedFile(paths["stats_password"], site.secrets.stats_password, 0o600),
                *site.tls_files(clients=(client,) if spec.dcs.kind == "etcd" else ())]

    def config_path(self, layout: Layout, place: Place) -> Path:
        return monitor_files(layout)["config"]

    def command(self, programs: Programs, config: str, conf_dir: str) -> list[str]:
        return [programs.prometheus, f"--config.file={config}", f"--web.config.file={Path(conf_dir) / WEB_CONFIG}",
                "--log.level=warn"]

    def argv(self, site: Site) -> list[str]:
        spec, port = site.topo.spec, site.topo.monitor_port
        return [*super().argv(site), f"--web.listen-address={site.place.address}:{port}",
                f"--storage.tsdb.path={storage_path(site.layout)}",
                f"--storage.tsdb.retention.time={spec.monitoring.retention}"]

    def unit_name(self, scope: str, place: Place) -> str:
        return f"pgha-{scope}-{place.name}.service"

    def description(self, scope: str, place: Place) -> str:
        return f"pgha {scope}: Prometheus"

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int]]:
        return [("Prometheus", topo.monitor_port)] if topo.monitor_port is not None else []

    def needs(self, programs: Programs) -> Needed:
        return {"prometheus": (Path(programs.prometheus), "apt-get install prometheus")}


PROMETHEUS = Prometheus()
