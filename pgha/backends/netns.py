"""The netns backend: every node, DCS member and HAProxy is a host of its own.

Each component runs in its own network namespace with its own address on a private bridge and
the standard ports, exactly as on separate machines; its files live in a directory of its own
(`hosts/<component>/`), rendered by the same functions as the bundles for real machines. The
processes are managed like the local backend's (same start order, same signals for faults); what
this backend adds is the network, and the faults only a network has: isolation and partitions.

Clients on this machine reach the cluster through HAProxy: pgha binds the host-facing
entrypoints on loopback and hands the listening sockets to HAProxy inside its namespace
(`bind fd@N`), so the machine's own namespace gets no address of the cluster's network.
"""

from __future__ import annotations

import os
import shutil
import socket
from contextlib import ExitStack

from pgha import procs
from pgha.backends.base import Progress
from pgha.backends.local import LocalBackend
from pgha.components.base import Programs, Site
from pgha.dial import Endpoint
from pgha.errors import BackendError
from pgha.layout import Layout
from pgha.netns import network, rules
from pgha.procs import RunAs
from pgha.reach import own_namespace
from pgha.render import RenderedFile
from pgha.render.haproxy import RO_PROXY, RW_PROXY
from pgha.render.hosts import HostBundle, render_bundle
from pgha.topology import Place

HOST_ENTRY_CONFIG = "host-entry.cfg"


class NetnsBackend(LocalBackend):
    kind = "netns"

    def host_layout(self, name: str) -> Layout:
        return Layout(self.layout.root / "hosts" / name)

    def bundle(self, name: str) -> HostBundle:
        return HostBundle(name, (self.topo.place(name),), self.host_layout(name).root)

    def programs(self) -> Programs:
        # The units of real machines, with the project's venv for Patroni.
        return Programs(str(self._patroni_bin()))

    def site(self, name: str) -> Site:
        return self.bundle(name).site(self.topo, self.topo.place(name), self.secrets, self.programs())

    def rendered(self) -> list[RenderedFile]:
        # The bundles `pgha render hosts` writes for real machines, one host per component.
        return [f for p in self.topo.places
                for f in render_bundle(self.topo, self.bundle(p.name), self.secrets, self.programs())]

    def endpoint(self, place: Place, port: int) -> Endpoint:
        return own_namespace(place, port)

    def netns_path(self, component: str) -> str | None:
        ns = self.topo.place(component).netns
        return str(network.NETNS_DIR / ns) if ns else None

    # --- lifecycle -------------------------------------------------------------------------------

    def preflight(self) -> None:
        if os.geteuid() != 0:
            raise BackendError("the netns backend needs root (it creates network namespaces)")
        for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("setpriv", "util-linux")):
            if shutil.which(tool) is None:
                raise BackendError(f"{tool} not found: install it with `apt-get install {package}`")
        super().preflight()

    def _host_ports(self, place: Place) -> list[tuple[str, int]]:
        """The loopback ports an HAProxy host serves this machine's clients on (none for others)."""
        if place not in self.topo.haproxies:
            return []
        p, k = self.spec.ports, place.index
        if k > 0:
            return [(RW_PROXY, p.entrypoint_rw_more[k - 1])]
        out = [(RW_PROXY, p.entrypoint_rw)]
        if p.entrypoint_ro is not None:
            out.append((RO_PROXY, p.entrypoint_ro))
        return out

    def _check_ports(self) -> None:
        # Everything else listens inside its own namespace, where nothing else runs.
        for place in self.topo.haproxies:
            if self._main_proc(place.name) is not None:
                continue
            for proxy, port in self._host_ports(place):
                if procs.port_in_use(self.spec.host, port):
                    raise BackendError(f"port {port} (entrypoint {proxy} of {place.name}) is already in use "
                                       f"on {self.spec.host}")

    def start(self, progress: Progress) -> None:
        network.create(self.topo)
        super().start(progress)

    def stop(self) -> None:
        super().stop()
        network.destroy(self.topo)

    def _spawn(self, name: str) -> None:
        if self.cancelled():
            raise KeyboardInterrupt
        place = self.topo.place(name)
        unit = self.unit(name)
        argv = list(unit.exec_start)
        with ExitStack() as stack:
            fds: list[int] = []
            frontends = []
            for proxy, port in self._host_ports(place):
                sock = stack.enter_context(socket.create_server((self.spec.host, port), backlog=512))
                fds.append(sock.fileno())
                frontends.append((proxy, sock.fileno()))
            if frontends:
                extra = self.host_layout(name).conf / HOST_ENTRY_CONFIG
                extra.write_text(render_host_entry(frontends))
                argv += ["-f", str(extra)]
            # Started as its unit says: the unit's ExecStart, User and Environment.
            procs.spawn(argv, log=self.layout.log(name), pidfile=self.layout.pidfile(name), env=unit.environment,
                        cwd=self.host_layout(name).root, run_as=RunAs(unit.user), netns=place.netns, pass_fds=fds)
            # HAProxy now holds the listening sockets; closing ours means a dead HAProxy refuses
            # connections at once, and a client's multi-host URI moves on to the next.

    # --- network faults --------------------------------------------------------------------------

    def _ns(self, component: str) -> str:
        ns = self.topo.place(component).netns
        assert ns is not None
        return ns

    def isolate(self, component: str) -> None:
        """Cut a host off from every other host."""
        network.cut_all(self._ns(component))

    def cut(self, component: str, others: list[str]) -> None:
        """Cut a host off from the given hosts only (both ways)."""
        network.cut_from(self._ns(component), [self.topo.place(o).address for o in others])

    def partition(self, minority: list[str]) -> None:
        """Split the hosts in two: `minority` on one side, every other host on the other."""
        for name, others in rules.partition(minority, [p.name for p in self.topo.places]).items():
            self.cut(name, others)

    def lose_packets(self, component: str, percent: int) -> None:
        network.lose(self._ns(component), percent)

    def lag(self, component: str, ms: int) -> None:
        network.delay(self._ns(component), ms)

    def heal_network(self) -> None:
        network.heal(self.topo)

    def isolated_hosts(self) -> list[str]:
        return [p.name for p in self.topo.places if p.netns and network.has_rules(p.netns)]


def render_host_entry(frontends: list[tuple[str, int]]) -> str:
    """The frontends that serve this machine's clients from sockets pgha passed in (netns only;
    a real machine's HAProxy binds its own address, as haproxy.cfg says)."""
    lines = []
    for proxy, fd in frontends:
        lines += [f"frontend host_{proxy}", f"    bind fd@{fd}", f"    default_backend {proxy}", ""]
    return "\n".join(lines)

