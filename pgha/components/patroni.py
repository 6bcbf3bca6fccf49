"""A PostgreSQL node: Patroni, which runs PostgreSQL 15 itself."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, ClassVar

from pgha.components.backup import repository_config_path
from pgha.components.base import Component, Needed, Programs, Site
from pgha.components.dcs import dcs_component, patroni_dcs_section
from pgha.components.pooler import ENV_APP, ENV_POOLER_ADMIN
from pgha.model.spec import Spec
from pgha.model.topology import Kind, Place, Topology
from pgha.render import RenderedFile, to_yaml
from pgha.render.backup import TlsFiles, backup_pgpass, node_tls_config, pgbackrest_config
from pgha.render.node_hook import (
    hook_config_path,
    hook_script_path,
    hooks_wanted,
    patroni_hooks,
    post_bootstrap_command,
    render_hook_config,
)
from pgha.render.patroni import PG_BIN_DIR, render_patroni
from pgha.security.pki import dcs_client_name
from pgha.state.layout import Layout
from pgha.state.secrets import REPLICATION_USER, REST_USER, SUPERUSER, Secrets

# The version pgha itself is tested with, installed on real machines.
PATRONI_VERSION = importlib.metadata.version("patroni")
# compose.yaml's references to .env (the variable names are pgha.deploy.compose_project's).
ENV_SUPERUSER = "PGHA_SUPERUSER_PASSWORD"
ENV_REPLICATION = "PGHA_REPLICATION_PASSWORD"
ENV_REST = "PGHA_REST_PASSWORD"
ENV_DCS = "PGHA_DCS_PASSWORD"
# Patroni's hooks as one file a node host gets (it imports nothing of pgha's).
HOOK_SOURCE = (Path(__file__).resolve().parent.parent / "ops" / "node_hook.py").read_text(encoding="utf-8")
# Patroni started with pgha's patches to its graceful stop (pgha/ops/patroni_patches.py), one file too.
PATRONI_SCRIPT = "pgha-patroni.py"
PATRONI_SOURCE = (Path(__file__).resolve().parent.parent / "ops" / "patroni_patches.py").read_text(encoding="utf-8")


def _from_env(var: str) -> str:
    return f"${{{var}:?missing from .env}}"


class PatroniNode(Component):
    kind: ClassVar[Kind] = "node"
    packages: ClassVar[tuple[str, ...]] = ("postgresql-15", "postgresql-client-15", "python3-venv")
    after: ClassVar[Kind | None] = "dcs"
    # Patroni's graceful stop (a fast shutdown, leader key released) needs more than 10 s on a
    # loaded machine; the engine's default would SIGKILL it.
    stop_settings: ClassVar[tuple[tuple[str, str], ...]] = (("stop_grace_period", "30s"),)

    def files(self, site: Site) -> list[RenderedFile]:
        backup = backup_files(site)
        cfg = patroni_config(site.topo, site.layout, site.secrets, site.name, site.tls,
                             site.layout.pgbackrest_config(site.name) if backup else None)
        hooks: list[RenderedFile] = []
        if hooks_wanted(site.topo, site.haproxy_sockets):
            python = str(Path(site.programs.patroni).parent / "python")
            cfg["postgresql"].update(patroni_hooks(python, site.layout, site.name))
            cfg["bootstrap"]["post_bootstrap"] = post_bootstrap_command(
                python, str(hook_script_path(site.layout)), str(hook_config_path(site.layout, site.name)))
            config = render_hook_config(site.topo, site.layout, site.secrets, site.name, tls=site.tls,
                                        haproxy_sockets=site.haproxy_sockets)
            hooks = [RenderedFile(hook_script_path(site.layout), HOOK_SOURCE, 0o644),
                     RenderedFile(hook_config_path(site.layout, site.name), config, 0o600)]
        return [RenderedFile(self.config_path(site.layout, site.place), to_yaml(cfg), 0o600), *hooks, *backup,
                *site.tls_files(clients=(dcs_client_name(site.name),)),
                RenderedFile(site.layout.conf / PATRONI_SCRIPT, PATRONI_SOURCE, 0o644)]

    def config_path(self, layout: Layout, place: Place) -> Path:
        return layout.patroni_config(place.name)

    def command(self, programs: Programs, config: str, conf_dir: str) -> list[str]:
        # Patroni's own entry point, run by the Python of its venv after pgha's patches.
        return [str(Path(programs.patroni).parent / "python"), f"{conf_dir}/{PATRONI_SCRIPT}", config]

    def unit_name(self, scope: str, place: Place) -> str:
        return f"pgha-{scope}-patroni-{place.name}.service"

    def description(self, scope: str, place: Place) -> str:
        return f"pgha {scope}: Patroni and PostgreSQL 15, member {place.name}"

    def unit_extra(self) -> tuple[str, ...]:
        # Patroni stops PostgreSQL itself; systemd must not kill the postmaster first.
        return ("ExecReload=/bin/kill -HUP $MAINPID", "KillMode=process", "TimeoutStopSec=60")

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int]]:
        p = topo.node_ports[place.index]
        return [(f"postgres of {place.name}", p.postgres), (f"REST API of {place.name}", p.rest)]

    def published(self, topo: Topology, place: Place) -> list[tuple[int, int]]:
        return [(topo.spec.ports.postgres[place.index], topo.node_ports[place.index].postgres)]

    def detached_data_dir(self, layout: Layout, place: Place) -> Path | None:
        # Patroni starts the postmaster in a session of its own: it outlives a SIGKILLed Patroni.
        return layout.pgdata(place.name)

    def needs(self, programs: Programs) -> Needed:
        return {
            "patroni": (Path(programs.patroni), "the project's venv (make setup)"),
            "postgres": (Path(PG_BIN_DIR) / "postgres", "apt-get install postgresql-15"),
            "pg_basebackup": (Path(PG_BIN_DIR) / "pg_basebackup", "apt-get install postgresql-15"),
        }

    def install_lines(self, dcs_extra: str) -> list[str]:
        return [
            "# The Debian package's own cluster is not used: Patroni runs initdb itself.",
            "systemctl disable --now postgresql 2>/dev/null || true",
            "test -x /opt/pgha/venv/bin/patroni || {",
            "  python3 -m venv /opt/pgha/venv",
            f"  /opt/pgha/venv/bin/pip install 'patroni[{dcs_extra}]=={PATRONI_VERSION}' 'psycopg[binary]>=3.1'",
            "}",
        ]

    def container_environment(self, spec: Spec) -> dict[str, str]:
        dcs = dcs_component(spec)
        dcs_env = dcs.patroni_environment(spec.patroni_scope, _from_env(ENV_DCS), spec.tls) \
            if spec.dcs.authentication else {}
        return {**dcs_env,
            "PATRONI_SUPERUSER_USERNAME": SUPERUSER,
            "PATRONI_SUPERUSER_PASSWORD": _from_env(ENV_SUPERUSER),
            "PATRONI_REPLICATION_USERNAME": REPLICATION_USER,
            "PATRONI_REPLICATION_PASSWORD": _from_env(ENV_REPLICATION),
            "PATRONI_RESTAPI_USERNAME": REST_USER,
            "PATRONI_RESTAPI_PASSWORD": _from_env(ENV_REST),
            "PATRONI_CTL_USERNAME": REST_USER,
            "PATRONI_CTL_PASSWORD": _from_env(ENV_REST),
            # The node hook pauses and resumes the poolers (pgha/ops/node_hook.py).
            **({e: _from_env(e) for e in (ENV_APP, ENV_POOLER_ADMIN)} if spec.pooler.enabled else {}),
        }


def backup_files(site: Site) -> list[RenderedFile]:
    """The node's pgBackRest configuration and login: for the repository host's TLS server when
    the cluster has one, else for a repository directory this host can write; none without
    backups."""
    spec, topo = site.topo.spec, site.topo
    if not spec.backup.enabled or (site.backup_repo is None and not topo.repository):
        return []
    port = topo.node_ports[site.place.index].postgres
    lay = site.layout
    if topo.repository:
        config = node_tls_config(spec, lay, site.name, port, topo.repository[0].name, repository_config_path(site),
                                 TlsFiles.of(lay, site.name))
    else:
        assert site.backup_repo is not None
        config = pgbackrest_config(spec, lay, site.secrets, site.name, site.backup_repo, port)
    login = backup_pgpass(port, site.secrets.superuser_password)
    files = [RenderedFile(lay.pgbackrest_config(site.name), config, 0o600),
             RenderedFile(lay.pgbackrest_pgpass(site.name), login, 0o600)]
    if spec.restore_from is not None:
        # A restore in place reads the cluster's own repository the way its nodes always do.
        own = spec.restore_from.cluster == spec.name and topo.repository
        source = config if own else pgbackrest_config(spec, lay, site.secrets, site.name,
                                                      Path(spec.restore_from.repo), port, spec.restore_from.cluster)
        files.append(RenderedFile(lay.pgbackrest_source_config(site.name), source, 0o600))
    return files


def patroni_config(topo: Topology, layout: Layout, secrets: Secrets, node: str, tls: bool = False,
                   backup_config: Path | None = None) -> dict[str, Any]:
    """One node's whole Patroni configuration, its DCS section from the DCS kind."""
    dcs = patroni_dcs_section(topo, secrets, layout if tls else None, node)
    return render_patroni(topo, layout, secrets, node, dcs, tls, backup_config)
