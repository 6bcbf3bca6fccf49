"""pgBackRest's TLS servers, where the nodes are hosts of their own (netns with TLS): the
repository host, which keeps the encrypted repository, takes the nodes' WAL and runs the backups;
and the server beside each node, through which the repository host reaches the node's PostgreSQL
for a backup. Both are `pgbackrest server`, each admitting only the other side's certificate."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pgha.components.base import CertificateReload, Component, Needed, Programs, Site, Unit
from pgha.model.ports import PGBACKREST_TLS_PORT
from pgha.model.topology import Kind, Place, Topology
from pgha.render import RenderedFile
from pgha.render.backup import (
    PGBACKREST_BIN,
    NodeSeen,
    TlsFiles,
    agent_config,
    backup_pgpass,
    repository_host_config,
)
from pgha.state.layout import Layout


class _PgBackRestServer(Component):
    packages: ClassVar[tuple[str, ...]] = ("pgbackrest",)
    # It reads its certificate when it starts.
    certificate_reload: ClassVar[CertificateReload] = CertificateReload.RESTART

    def command(self, programs: Programs, config: str, conf_dir: str) -> list[str]:
        return [PGBACKREST_BIN, f"--config={config}", "server"]

    def unit_name(self, scope: str, place: Place) -> str:
        return f"pgha-{scope}-{place.name}.service"

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int]]:
        return [("pgBackRest TLS server", PGBACKREST_TLS_PORT)]

    def needs(self, programs: Programs) -> Needed:
        return {"pgbackrest": (Path(PGBACKREST_BIN), "apt-get install pgbackrest")}

    def _tls(self, site: Site) -> TlsFiles:
        if site.pki is None:
            raise ValueError(f"{site.name}: pgBackRest's TLS server needs the cluster's certificates (spec.tls)")
        return TlsFiles.of(site.layout, site.name)


class RepositoryHost(_PgBackRestServer):
    kind: ClassVar[Kind] = "repository"

    def files(self, site: Site) -> list[RenderedFile]:
        topo, lay = site.topo, site.layout
        if site.backup_repo is None:
            raise ValueError("the repository host needs the repository's directory (site.backup_repo)")
        seen = [NodeSeen(p.name, a.name, site.layout_of(p.name).pgdata(p.name), ports.postgres,
                         site.layout_of(p.name).socket_dir, BACKUP_AGENT.config_path(site.layout_of(a.name), a))
                for p, a, ports in zip(topo.nodes, topo.backup_agents, topo.node_ports, strict=True)]
        text = repository_host_config(topo.spec, lay, site.secrets, site.backup_repo, site.place.address,
                                      self._tls(site), seen)
        return [RenderedFile(self.config_path(lay, site.place), text, 0o600), *site.tls_files()]

    def config_path(self, layout: Layout, place: Place) -> Path:
        return layout.conf / "pgbackrest-repository.conf"

    def description(self, scope: str, place: Place) -> str:
        return f"pgha {scope}: pgBackRest repository host"


def repository_config_path(site: Site) -> Path:
    """Where the repository host's configuration is, as a node's site names that host's files."""
    host = site.topo.repository[0]
    return REPOSITORY_HOST.config_path(site.layout_of(host.name), host)


class BackupAgent(_PgBackRestServer):
    kind: ClassVar[Kind] = "backup-agent"
    keeps_data: ClassVar[bool] = False

    def files(self, site: Site) -> list[RenderedFile]:
        lay = site.layout
        node = site.topo.nodes[site.place.index]
        port = site.topo.node_ports[node.index].postgres
        text = agent_config(site.topo.spec, lay, site.name, site.place.address, self._tls(site))
        return [RenderedFile(self.config_path(lay, site.place), text, 0o600),
                RenderedFile(self._pgpass(lay, site.place), backup_pgpass(port, site.secrets.superuser_password),
                             0o600),
                *site.tls_files()]

    def _pgpass(self, layout: Layout, place: Place) -> Path:
        return layout.conf / f"pgpass-{place.name}"

    def unit(self, site: Site, user: str) -> Unit:
        # The backups' connections to the node's PostgreSQL are made here, over its socket, with
        # the superuser's password from this file (never in the environment: see base_environment).
        unit = super().unit(site, user)
        return Unit(unit.name, unit.component, unit.description, unit.exec_start, unit.user,
                    {**unit.environment, "PGPASSFILE": str(self._pgpass(site.layout, site.place))},
                    unit.service_type, unit.extra, unit.open_files)

    def config_path(self, layout: Layout, place: Place) -> Path:
        return layout.conf / f"pgbackrest-{place.name}.conf"

    def description(self, scope: str, place: Place) -> str:
        return f"pgha {scope}: pgBackRest server beside {place.name.removesuffix('-pgbackrest')}"


REPOSITORY_HOST = RepositoryHost()
BACKUP_AGENT = BackupAgent()
