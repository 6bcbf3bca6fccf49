"""What every component kind provides, and the two values it is rendered with: where its
programs are (Programs) and where in the cluster it sits (Site)."""

from __future__ import annotations

import shlex
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import ClassVar

from pgha.model.spec import Spec
from pgha.model.topology import Kind, Place, Topology
from pgha.render import RenderedFile
from pgha.render.patroni import PG_BIN_DIR
from pgha.security.pki import Pki
from pgha.state.layout import Layout
from pgha.state.secrets import Secrets

# Debian's paths: what a unit on a real machine names, and what a machine without the program on
# its PATH is told to install.
HAPROXY_BIN = "/usr/sbin/haproxy"
ETCD_BIN = "/usr/bin/etcd"
PGBOUNCER_BIN = "/usr/sbin/pgbouncer"
PROMETHEUS_BIN = "/usr/bin/prometheus"


@dataclass(frozen=True)
class Programs:
    """Where a component's programs are on the machine its unit runs on, and how HAProxy runs."""

    patroni: str
    haproxy: str = HAPROXY_BIN
    etcd: str = ETCD_BIN
    # Under systemd (real machines, and the netns backend that runs their units): master-worker
    # with readiness notification. Supervised by pgha itself: in the foreground.
    haproxy_mode: str = "-Ws"
    pgbouncer: str = PGBOUNCER_BIN
    prometheus: str = PROMETHEUS_BIN

    @classmethod
    def on_this_machine(cls, patroni: str) -> Programs:
        """The local backend's: what this machine's PATH has (Debian's paths otherwise)."""
        return cls(patroni, shutil.which("haproxy") or HAPROXY_BIN, shutil.which("etcd") or ETCD_BIN, "-db",
                   shutil.which("pgbouncer") or PGBOUNCER_BIN, shutil.which("prometheus") or PROMETHEUS_BIN)


@dataclass(frozen=True)
class NodeFence:
    """How a fencing guard makes sure a node can no longer write: SIGKILL to the processes its pid
    files name (the process backends: every host is on this machine, as a power switch would reach
    it), or an operator's fence command (real machines: IPMI, a cloud API), given the node's name."""

    node: str
    pidfile: str | None = None  # pgha's pid file of its Patroni
    pgdata: str | None = None  # its data directory (postmaster.pid)
    command: tuple[str, ...] = ()

    def as_config(self) -> dict[str, object]:
        if self.command:
            return {"command": list(self.command)}
        return {"signal": {"pidfile": self.pidfile, "pgdata": self.pgdata}}


@dataclass(frozen=True)
class Site:
    """One component at its place in the topology, with the directory tree it lives in on its
    host (a cluster directory, laid out by Layout) and the programs there."""

    topo: Topology
    place: Place
    layout: Layout
    secrets: Secrets
    programs: Programs
    # The cluster's certificates when it runs with TLS (spec.tls), else None.
    pki: Pki | None = None
    # HAProxy admin sockets a process on this host can open (the same machine's): where a new
    # primary pushes routing. None on real machines and in containers.
    haproxy_sockets: tuple[str, ...] = ()
    # pgBackRest's repository as this host's processes see it, where the backend keeps one
    # (spec.backup; the process backends: a directory of the cluster's on this machine).
    backup_repo: Path | None = None
    # Other places' directory trees as this host's processes name them (where the repository
    # host finds a node's data directory, which configuration file a pgBackRest server on another
    # host reads): on real machines every host has the same root; netns: each host's directory.
    # A place not listed: the same as this host's.
    peers: tuple[tuple[str, Layout], ...] = ()
    # How a fencing guard here fences each node (the backend's way); none without fencing.
    fences: tuple[NodeFence, ...] = ()

    def layout_of(self, name: str) -> Layout:
        return dict(self.peers).get(name, self.layout)

    @property
    def name(self) -> str:
        return self.place.name

    @property
    def tls(self) -> bool:
        return self.pki is not None

    def tls_files(self, *, pem: bool = False, clients: tuple[str, ...] = ()) -> list[RenderedFile]:
        """The host's own certificate and key, the CA it trusts, and (pem) both in one file
        and (clients) client certificates it logs in with elsewhere; nothing without TLS."""
        if self.pki is None:
            return []
        lay, own = self.layout, self.pki.leaf(self.name)
        files = [RenderedFile(lay.tls_ca, self.pki.ca.cert, 0o644),
                 RenderedFile(lay.tls_cert(self.name), own.cert, 0o644),
                 RenderedFile(lay.tls_key(self.name), own.key, 0o600)]
        if pem:
            files.append(RenderedFile(lay.tls_pem(self.name), own.pem, 0o600))
        for client in clients:
            leaf = self.pki.leaf(client)
            files += [RenderedFile(lay.tls_cert(client), leaf.cert, 0o644),
                      RenderedFile(lay.tls_key(client), leaf.key, 0o600)]
        return files


@dataclass(frozen=True)
class Unit:
    """How a component is started: a systemd unit on real machines; the process backends start
    its ExecStart with its Environment themselves."""

    name: str  # file name, e.g. "pgha-prod-patroni-node0.service"
    component: str
    description: str
    exec_start: list[str]
    user: str
    environment: dict[str, str] = field(default_factory=dict)
    service_type: str = "simple"
    extra: tuple[str, ...] = ()
    # Its limit on open files (LimitNOFILE=), where the default 1024 is too few.
    open_files: int | None = None

    def text(self) -> str:
        env = [f'Environment="{k}={v}"' for k, v in self.environment.items()]
        return "\n".join([
            "[Unit]",
            f"Description={self.description}",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            f"Type={self.service_type}",
            f"User={self.user}",
            f"Group={self.user}",
            f"ExecStart={shlex.join(self.exec_start)}",
            *env,
            *self.extra,
            *([f"LimitNOFILE={self.open_files}"] if self.open_files else []),
            "Restart=on-failure",
            "RestartSec=2",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ])


def base_environment(home: Path) -> dict[str, str]:
    # Deliberately no PG* variables: PGPASSWORD would override Patroni's pgpass and break
    # pg_basebackup.
    return {"PATH": f"{PG_BIN_DIR}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONUNBUFFERED": "1", "GOMAXPROCS": "2"}


Needed = dict[str, tuple[Path, str]]  # program -> (where it must be, how to install it)


class CertificateReload(Enum):
    """How a running component takes up a renewed certificate (`pgha rotate-certs`): the one place
    that knows it is each component kind's `certificate_reload`."""

    PER_HANDSHAKE = "reads it at every handshake"  # etcd: nothing to do
    SIGHUP = "reloaded"  # Patroni (REST listener re-created, PostgreSQL reloaded), PgBouncer
    RUNTIME_API = "runtime API"  # HAProxy: `set ssl cert` + `commit ssl cert` on its admin socket
    RESTART = "restarted"  # ZooKeeper: reads its PEM key store only at start


class Component(ABC):
    """One kind of component. Stateless: everything about one instance comes in a Site."""

    kind: ClassVar[Kind]  # its place in the topology
    # Debian packages a host running it needs (install.sh, the compose image).
    packages: ClassVar[tuple[str, ...]]
    # systemd's Type= for its unit.
    service_type: ClassVar[str] = "simple"
    # Data that must outlive its container (compose volumes).
    keeps_data: ClassVar[bool] = True
    # The kind of component it waits for (compose depends_on), and how the engine stops it.
    after: ClassVar[Kind | None] = None
    open_files: ClassVar[int | None] = None
    stop_settings: ClassVar[tuple[tuple[str, str], ...]] = ()
    certificate_reload: ClassVar[CertificateReload] = CertificateReload.SIGHUP

    @abstractmethod
    def files(self, site: Site) -> list[RenderedFile]:
        """Every file it reads, under site.layout."""

    @abstractmethod
    def command(self, programs: Programs, config: str, conf_dir: str) -> list[str]:
        """Its command line, given where its main config file and the config directory are."""

    @abstractmethod
    def config_path(self, layout: Layout, place: Place) -> Path:
        """Its main config file in a cluster directory."""

    @abstractmethod
    def unit_name(self, scope: str, place: Place) -> str:
        """Its systemd unit's file name in cluster `scope`."""

    @abstractmethod
    def description(self, scope: str, place: Place) -> str:
        """Its unit's Description=."""

    def unit_extra(self) -> tuple[str, ...]:
        """Unit lines of its own (how systemd reloads and stops it)."""
        return ()

    def argv(self, site: Site) -> list[str]:
        return self.command(site.programs, str(self.config_path(site.layout, site.place)), str(site.layout.conf))

    def unit(self, site: Site, user: str) -> Unit:
        scope = site.topo.spec.name
        return Unit(self.unit_name(scope, site.place), site.name, self.description(scope, site.place),
                    self.argv(site), user, base_environment(site.layout.root), self.service_type,
                    self.unit_extra(), self.open_files)

    @abstractmethod
    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int]]:
        """(what, port) of everything it listens on at its address."""

    def detached_data_dir(self, layout: Layout, place: Place) -> Path | None:
        """The data directory of a server it starts and detaches (found by its pid file there)."""
        return None

    def needs(self, programs: Programs) -> Needed:
        """The programs it runs, for a preflight on this machine."""
        return {}

    def install_lines(self, dcs_extra: str) -> list[str]:
        """install.sh lines after the packages (dcs_extra: Patroni's extra for the cluster's DCS)."""
        return []

    # --- as a container (the compose image) ------------------------------------------------------

    def container_config_name(self, place: Place) -> str:
        return f"{place.name}.yml"

    def container_command(self, programs: Programs, config: str, conf_dir: str, layout: Layout,
                          place: Place) -> list[str]:
        return self.command(programs, config, conf_dir)

    def container_environment(self, spec: Spec) -> dict[str, str]:
        """Variables compose fills from .env (never a password in compose.yaml itself)."""
        return {}

    def exposed(self, topo: Topology, place: Place) -> list[int]:
        """Ports only the other containers reach."""
        return [port for _, port in self.ports(topo, place)]

    def published(self, topo: Topology, place: Place) -> list[tuple[int, int]]:
        """(host port, container port) published on the host's loopback address."""
        return []
