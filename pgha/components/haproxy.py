"""HAProxy: the read-write and read-only entrypoints and the stats page."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pgha.components.base import CertificateReload, Component, Needed, Programs, Site
from pgha.model.spec import Spec
from pgha.model.topology import Kind, Place, Topology
from pgha.render import RenderedFile
from pgha.render.haproxy import render_haproxy
from pgha.state.layout import Layout

ENV_STATS = "PGHA_STATS_PASSWORD"


class HAProxy(Component):
    kind: ClassVar[Kind] = "haproxy"
    packages: ClassVar[tuple[str, ...]] = ("haproxy",)
    keeps_data: ClassVar[bool] = False
    service_type: ClassVar[str] = "notify"
    after: ClassVar[Kind | None] = "node"
    # The stats page's certificate, replaced through the admin socket without a reload.
    certificate_reload: ClassVar[CertificateReload] = CertificateReload.RUNTIME_API
    # HAProxy as a container's init ignores SIGTERM; SIGUSR1 is its graceful stop (the official
    # image's STOPSIGNAL), which ends once no client is connected.
    stop_settings: ClassVar[tuple[tuple[str, str], ...]] = (("stop_signal", "SIGUSR1"),
                                                            ("stop_grace_period", "5s"))

    def files(self, site: Site) -> list[RenderedFile]:
        text = render_haproxy(site.topo, site.layout, site.secrets, site.place.index, tls=site.tls)
        return [RenderedFile(self.config_path(site.layout, site.place), text, 0o600), *site.tls_files(pem=True)]

    def config_path(self, layout: Layout, place: Place) -> Path:
        return layout.haproxy_config

    def command(self, programs: Programs, config: str, conf_dir: str) -> list[str]:
        return [programs.haproxy, programs.haproxy_mode, "-f", config]

    def unit_name(self, scope: str, place: Place) -> str:
        return f"pgha-{scope}-{place.name}.service"

    def description(self, scope: str, place: Place) -> str:
        return f"pgha {scope}: HAProxy {place.name}"

    def unit_extra(self) -> tuple[str, ...]:
        return ("ExecReload=/bin/kill -USR2 $MAINPID", "KillMode=mixed")

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int]]:
        p = topo.haproxy_ports[place.index]
        out = [("HAProxy read-write entrypoint", p.rw), ("HAProxy stats", p.stats)]
        if p.ro is not None:
            out.append(("HAProxy read-only entrypoint", p.ro))
        return out

    def needs(self, programs: Programs) -> Needed:
        return {"haproxy": (Path(programs.haproxy), "apt-get install haproxy")}

    def install_lines(self, dcs_extra: str) -> list[str]:
        return ["systemctl disable --now haproxy 2>/dev/null || true"]

    def container_config_name(self, place: Place) -> str:
        return "haproxy.cfg"

    def container_environment(self, spec: Spec) -> dict[str, str]:
        return {ENV_STATS: f"${{{ENV_STATS}:?missing from .env}}"}

    def exposed(self, topo: Topology, place: Place) -> list[int]:
        return []  # everything it serves is published

    def published(self, topo: Topology, place: Place) -> list[tuple[int, int]]:
        p, inside = topo.spec.ports, topo.haproxy_ports[place.index]
        out = [(p.entrypoint_rw, inside.rw)]
        if p.entrypoint_ro is not None and inside.ro is not None:
            out.append((p.entrypoint_ro, inside.ro))
        return [*out, (p.stats, inside.stats)]
