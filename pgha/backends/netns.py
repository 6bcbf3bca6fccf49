"""The netns backend: every node, DCS member and HAProxy is a host of its own.

Each component runs in its own network namespace with its own address on a private bridge and
the standard ports, exactly as on separate machines; its files live in a directory of its own
(`hosts/<component>/`), rendered by the same functions as the bundles for real machines. It is
the process backend (same start order, same signals for faults) with a launcher that starts
each unit inside its host's namespace, plus the faults only a network has: isolation,
partitions, packet loss and lag.

Clients on this machine reach the cluster through HAProxy: pgha binds the host-facing
entrypoints on loopback and hands the listening sockets to HAProxy inside its namespace
(`bind fd@N`), so the machine's own namespace gets no address of the cluster's network.
"""

from __future__ import annotations

import os
import shutil
import socket
from contextlib import ExitStack
from pathlib import Path

from pgha.backends import link_faults
from pgha.backends import netns_network as network
from pgha.backends.local import patroni_bin
from pgha.backends.process import ProcessBackend
from pgha.components.base import Programs, Site, Unit
from pgha.deploy.host_bundle import HostBundle, render_bundle
from pgha.errors import BackendError
from pgha.model.spec import Spec
from pgha.model.topology import Place, Topology, topology
from pgha.net.dial import Endpoint
from pgha.net.reach import own_namespace
from pgha.render import RenderedFile
from pgha.render import netns_rules as rules
from pgha.render.haproxy import host_entrypoints, render_host_entry
from pgha.state import procs
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets

HOST_ENTRY_CONFIG = "host-entry.cfg"


class NamespaceLauncher:
    """Units started inside their host's network namespace, as the unit's User, from the bundle a
    real machine would get (with the project's venv for Patroni)."""

    kind = "netns"

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.spec = topo.spec
        self.programs = Programs(str(patroni_bin()))

    def _host_of(self, component: str) -> str:
        # pgBackRest's server beside a node lives on the node's host, among the node's files.
        place = self.topo.place(component)
        return self.topo.nodes[place.index].name if place.kind == "backup-agent" else component

    def host_layout(self, layout: Layout, component: str) -> Layout:
        return Layout(layout.root / "hosts" / self._host_of(component))

    def render(self, site: Site) -> list[RenderedFile]:
        # The bundle `pgha render hosts` writes for a real machine: one per host directory, with
        # every component that lives there.
        host = self._host_of(site.name)
        places = tuple(p for p in self.topo.places if self._host_of(p.name) == host)
        bundle = HostBundle(host, places, site.layout.root)
        return render_bundle(site.topo, bundle, site.secrets, site.programs, site.pki, site.haproxy_sockets,
                             site.backup_repo, site.peers, site.fences)

    def endpoint(self, place: Place, port: int) -> Endpoint:
        return own_namespace(place, port)

    def netns_path(self, place: Place) -> str | None:
        return str(network.NETNS_DIR / place.netns) if place.netns else None

    def preflight(self) -> None:
        if os.geteuid() != 0:
            raise BackendError("the netns backend needs root (it creates network namespaces)")
        for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("setpriv", "util-linux")):
            if shutil.which(tool) is None:
                raise BackendError(f"{tool} not found: install it with `apt-get install {package}`")

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int, str]]:
        # Everything else listens inside its own namespace, where nothing else runs.
        return [(self.spec.host, port, f"entrypoint {proxy} of {place.name}")
                for proxy, port in host_entrypoints(topo, place)]

    def prepare(self, topo: Topology) -> None:
        network.create(topo)

    def teardown(self, topo: Topology) -> None:
        network.destroy(topo)

    def launch(self, unit: Unit, place: Place, *, log: Path, pidfile: Path, cwd: Path, run_as: RunAs) -> None:
        argv = list(unit.exec_start)
        with ExitStack() as stack:
            fds: list[int] = []
            frontends = []
            for proxy, port in host_entrypoints(self.topo, place):
                sock = stack.enter_context(socket.create_server((self.spec.host, port), backlog=512))
                fds.append(sock.fileno())
                frontends.append((proxy, sock.fileno()))
            if frontends:
                extra = Layout(cwd).conf / HOST_ENTRY_CONFIG
                pooler = (f"{self.topo.poolers[place.index].address}:{self.topo.pooler_ports[place.index]}"
                          if self.topo.poolers else None)
                extra.write_text(render_host_entry(frontends, pooler))
                argv += ["-f", str(extra)]
            # Started as its unit says: the unit's ExecStart, User and Environment.
            procs.spawn(argv, log=log, pidfile=pidfile, env=unit.environment, cwd=cwd, run_as=RunAs(unit.user),
                        netns=place.netns, pass_fds=fds, open_files=unit.open_files)
            # HAProxy now holds the listening sockets; closing ours means a dead HAProxy refuses
            # connections at once, and a client's multi-host URI moves on to the next.


class NetnsBackend(ProcessBackend):
    """The process backend with the namespace launcher, and the network faults (NetworkFaults)."""

    def __init__(self, spec: Spec, layout: Layout, secrets: Secrets, run_as: RunAs) -> None:
        super().__init__(spec, layout, secrets, run_as, NamespaceLauncher(topology(spec)))

    def _ns(self, component: str) -> str:
        ns = self.topo.place(component).netns
        assert ns is not None
        return str(network.NETNS_DIR / ns)

    def isolate(self, component: str) -> None:
        """Cut a host off from every other host."""
        link_faults.cut_all(self._ns(component))

    def cut(self, component: str, others: list[str]) -> None:
        """Cut a host off from the given hosts only (both ways)."""
        link_faults.cut_from(self._ns(component), [self.topo.place(o).address for o in others])

    def partition(self, minority: list[str]) -> None:
        """Split the hosts in two: `minority` on one side, every other host on the other."""
        for name, others in rules.partition(minority, [p.name for p in self.topo.hosts]).items():
            self.cut(name, others)

    def lose_packets(self, component: str, percent: int) -> None:
        link_faults.lose(self._ns(component), percent)

    def lag(self, component: str, ms: int) -> None:
        link_faults.delay(self._ns(component), ms)

    def heal_network(self) -> None:
        network.heal(self.topo)
