"""The local backend: every component is a process on this machine, bound to loopback, its files
in the one cluster directory. A process backend whose launcher starts each unit plainly."""

from __future__ import annotations

import sys
from pathlib import Path

from pgha.backends.process import ProcessBackend
from pgha.components.base import Programs, Site, Unit
from pgha.components.kinds import component_for
from pgha.components.render import render_component
from pgha.model.spec import Spec
from pgha.model.topology import Place, Topology
from pgha.net.dial import Endpoint
from pgha.net.reach import same_host
from pgha.render import RenderedFile
from pgha.state import procs
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets


def patroni_bin() -> Path:
    """Patroni of the venv pgha runs from."""
    return Path(sys.executable).parent / "patroni"


class PlainLauncher:
    """Units started as they are, as the backend's service account, sharing this machine's network."""

    kind = "local"

    def __init__(self) -> None:
        # This machine's programs; HAProxy in the foreground, supervised by pgha.
        self.programs = Programs.on_this_machine(str(patroni_bin()))

    def host_layout(self, layout: Layout, component: str) -> Layout:
        return layout  # one directory for all

    def render(self, site: Site) -> list[RenderedFile]:
        return render_component(site)[0]

    def endpoint(self, place: Place, port: int) -> Endpoint:
        return same_host(place, port)

    def netns_path(self, place: Place) -> str | None:
        return None

    def preflight(self) -> None:
        """Nothing beyond the components' programs."""

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int, str]]:
        # Every component listens on this machine, each on ports of its own.
        return [(place.address, port, what) for what, port in component_for(topo.spec, place).ports(topo, place)]

    def prepare(self, topo: Topology) -> None:
        """Loopback needs nothing."""

    def teardown(self, topo: Topology) -> None:
        """Nothing to remove."""

    def launch(self, unit: Unit, place: Place, *, log: Path, pidfile: Path, cwd: Path, run_as: RunAs) -> None:
        procs.spawn(unit.exec_start, log=log, pidfile=pidfile, env=unit.environment, cwd=cwd, run_as=run_as,
                    open_files=unit.open_files)


class LocalBackend(ProcessBackend):
    """The process backend with the plain launcher (configuration only: no behaviour of its own)."""

    def __init__(self, spec: Spec, layout: Layout, secrets: Secrets, run_as: RunAs) -> None:
        super().__init__(spec, layout, secrets, run_as, PlainLauncher())
