"""PgBouncer: a transaction pool beside each HAProxy, in front of the read-write path, so that
a planned hand-over (PAUSE, switch, RESUME) is a wait for clients instead of an error."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pgha.components.base import Component, Needed, Programs, Site
from pgha.model.spec import Spec
from pgha.model.topology import Kind, Place, Topology
from pgha.render import RenderedFile
from pgha.render.pooler import render_pooler, render_pooler_users
from pgha.state.layout import Layout
from pgha.state.secrets import APP_USER, POOLER_ADMIN

# compose: the passwords come from .env, and the users file is written at the container's start.
ENV_APP = "PGHA_APP_PASSWORD"
ENV_POOLER_ADMIN = "PGHA_POOLER_ADMIN_PASSWORD"


class Pooler(Component):
    kind: ClassVar[Kind] = "pooler"
    packages: ClassVar[tuple[str, ...]] = ("pgbouncer",)
    keeps_data: ClassVar[bool] = False
    service_type: ClassVar[str] = "notify"
    after: ClassVar[Kind | None] = "haproxy"
    # Every waiting client holds a descriptor: room for max_client_conn and the pools.
    open_files: ClassVar[int | None] = 65536

    def files(self, site: Site) -> list[RenderedFile]:
        lay = site.layout
        return [RenderedFile(lay.pooler_config, render_pooler(site.topo, lay, site.place.index, tls=site.tls), 0o600),
                RenderedFile(lay.pooler_users, render_pooler_users(site.secrets), 0o600),
                *site.tls_files()]

    def config_path(self, layout: Layout, place: Place) -> Path:
        return layout.pooler_config

    def command(self, programs: Programs, config: str, conf_dir: str) -> list[str]:
        return [programs.pgbouncer, config]

    def unit_name(self, scope: str, place: Place) -> str:
        return f"pgha-{scope}-{place.name}.service"

    def description(self, scope: str, place: Place) -> str:
        return f"pgha {scope}: PgBouncer {place.name}"

    def unit_extra(self) -> tuple[str, ...]:
        return ("ExecReload=/bin/kill -HUP $MAINPID",)

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int]]:
        return [("PgBouncer (pooled read-write)", topo.pooler_ports[place.index])]

    def needs(self, programs: Programs) -> Needed:
        return {"pgbouncer": (Path(programs.pgbouncer), "apt-get install pgbouncer")}

    def install_lines(self, dcs_extra: str) -> list[str]:
        # Debian's package starts a pooler of its own on 6432.
        return ["systemctl disable --now pgbouncer 2>/dev/null || true"]

    def container_config_name(self, place: Place) -> str:
        return "pgbouncer.ini"

    def container_command(self, programs: Programs, config: str, conf_dir: str, layout: Layout,
                          place: Place) -> list[str]:
        # No password in the image: the users file is made from the environment, private, at start.
        users = layout.pooler_users
        script = (f'umask 077 && printf \'"%s" "%s"\\n"%s" "%s"\\n\' {APP_USER} "${ENV_APP}" '
                  f'{POOLER_ADMIN} "${ENV_POOLER_ADMIN}" > {users} && exec {programs.pgbouncer} {config}')
        return ["sh", "-c", script]

    def container_environment(self, spec: Spec) -> dict[str, str]:
        return {e: f"${{{e}:?missing from .env}}" for e in (ENV_APP, ENV_POOLER_ADMIN)}

    def exposed(self, topo: Topology, place: Place) -> list[int]:
        return []

    def published(self, topo: Topology, place: Place) -> list[tuple[int, int]]:
        return [(topo.spec.ports.pooler[place.index], topo.pooler_ports[place.index])]
