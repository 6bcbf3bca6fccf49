"""The compose backend: the rendered compose deployment, run on Docker or rootful Podman.

pgha writes the deployment (`pgha render compose` output) into the cluster's `compose/`
directory, builds the image once, and lets the engine's compose program (docker compose,
docker-compose or podman-compose; pgha.backends.engine) create the network, the volumes and the
containers. Faults act on containers the way an operator (or a crash) would: `docker stop`,
SIGKILL to a container's init with the restart policy bringing it back, `docker kill` (no
restart), `docker pause` (or Podman's same verbs); only the WAL-sender stall reaches into a
container's processes.

Every container has a fixed address on the compose network (pgha.model.topology). pgha reaches nodes
and DCS members there: the network's bridge lives in this machine's namespace (rootful Podman),
and unlike a container's network namespace, which is new after every restart, the address stays
the same, so a monitor keeps reaching a node that the restart policy brought back.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from pgha.backends import link_faults
from pgha.backends.base import ComponentState
from pgha.backends.engine import SETUP_HINT, Engine
from pgha.backends.postmaster import PostmasterFaults
from pgha.backends.stopping import stop_in_order
from pgha.components.base import CertificateReload
from pgha.components.dcs import dcs_component
from pgha.components.kinds import component_for
from pgha.components.patroni import patroni_config
from pgha.deploy.compose_files import hand_tls_to_containers, write_files
from pgha.deploy.compose_project import (
    CONTAINER_LAYOUT,
    CONTAINERFILE,
    TLS_DIR,
    compose_spec,
    image_name,
    project_name,
    render_compose,
    services,
    tls_files,
)
from pgha.deploy.compose_project import container_name as _container_name
from pgha.errors import BackendError, tail
from pgha.model.names import IMAGE_REFERENCE
from pgha.model.spec import ENGINES, Spec
from pgha.model.topology import Place, Topology, topology
from pgha.model.topology import dcs_member_name as member_name
from pgha.net.dial import Endpoint
from pgha.net.probe import dcs_members, replace_certificate
from pgha.net.probe import leader as probe_leader
from pgha.net.reach import Reach
from pgha.render import RenderedFile, to_yaml
from pgha.render.netns_rules import partition as partition_rules
from pgha.security import pki
from pgha.security.pki import Pki, controller_tls
from pgha.state import procs
from pgha.state.files import replace_file
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets
from pgha.waiting import wait_until

log = logging.getLogger(__name__)

# Built by scripts/container-engine.sh; PGHA_BASE_IMAGE names another.
LOCAL_BASE_IMAGE = "localhost/pgha-base:bookworm"
BUILD_TIMEOUT = 1200.0
UP_TIMEOUT = 300.0
STOP_TIMEOUT = 30  # seconds Patroni gets for a graceful stop before the engine SIGKILLs it
RESTART_TIMEOUT = 30.0

# PostgreSQL's lines (log_line_prefix '%m [%p] ': "2026-11-27 18:26:56.538 UTC [123] ...") as
# opposed to Patroni's ("2026-11-27 18:26:56,538 INFO: ..."); both share a node's container log.
_PG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] ")
_PATRONI_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+: ")


def split_node_log(text: str) -> tuple[str, str]:
    """A node container's log -> (Patroni's lines, PostgreSQL's lines); a line that starts with
    neither prefix continues the line before it (pure)."""
    patroni: list[str] = []
    postgres: list[str] = []
    current = patroni
    for line in text.splitlines():
        if _PG_LINE.match(line):
            current = postgres
        elif _PATRONI_LINE.match(line):
            current = patroni
        current.append(line)
    return "\n".join(patroni) + ("\n" if patroni else ""), "\n".join(postgres) + ("\n" if postgres else "")


@dataclass(frozen=True)
class Container:
    name: str
    state: str  # running | paused | exited | created | stopping ...
    pid: int


class _HAProxySockets(Mapping[str, Path]):
    """HAProxy's admin socket, seen through its container's root (/proc/PID/root/...): looked up
    on each access, because a restarted container has a new PID."""

    def __init__(self, backend: ComposeBackend) -> None:
        self.backend = backend

    def __getitem__(self, name: str) -> Path:
        if name != "haproxy":
            raise KeyError(name)
        c = self.backend.container("haproxy")
        if c is None or c.pid <= 0:
            # No such file: the probe reports HAProxy as not answering.
            return Path(f"/nonexistent/{self.backend.container_name('haproxy')}")
        return Path(f"/proc/{c.pid}/root{CONTAINER_LAYOUT.haproxy_socket}")

    def __iter__(self) -> Iterator[str]:
        return iter(["haproxy"])

    def __len__(self) -> int:
        return 1


class ComposeBackend(PostmasterFaults):
    kind = "compose"

    def __init__(self, spec: Spec, layout: Layout, secrets: Secrets, run_as: RunAs) -> None:
        self.spec = spec
        self.layout = layout
        self.secrets = secrets
        self.run_as = run_as  # unused: the containers run their programs as their own user
        self.topo: Topology = topology(spec)
        self.cancelled: Callable[[], bool] = lambda: False
        self.dir = layout.root / "compose"
        self._service = {component: service for service, component, _ in services(spec)}
        # Clusters made before pgha knew Docker ran on Podman and stored no engine.
        self.engine = Engine(spec.engine or "podman")

    # --- names and the engine --------------------------------------------------------------------

    def container_name(self, component: str) -> str:
        try:
            return _container_name(self.spec, self._service[component])
        except KeyError:
            raise BackendError(f"no component named {component!r}") from None

    def _compose(self, *args: str, log: Path, timeout: float) -> None:
        """Run the engine's compose program in the deployment directory, its output appended to log."""
        log.parent.mkdir(parents=True, exist_ok=True)
        command = self.engine.compose_command()
        what = " ".join([Path(command[0]).name, *command[1:]])
        with open(log, "ab") as out:
            try:
                result = subprocess.run([*command, "-p", project_name(self.spec), *args], cwd=self.dir,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise BackendError(f"{what} {args[0]} did not finish in {timeout:.0f} s (see {log})",
                                   tail(log)) from None
        if result.returncode != 0:
            raise BackendError(f"{what} {args[0]} failed (see {log})", tail(log))

    def containers(self) -> dict[str, Container]:
        """This cluster's containers by component name (only those that exist)."""
        found: dict[str, Container] = {}
        for c in self.engine.containers(f"io.pgha.cluster={self.spec.name}"):
            component = c.labels.get("io.pgha.component")
            if component in self._service:
                found[component] = Container(c.name, c.state, c.pid)
        return found

    def container(self, component: str) -> Container | None:
        return self.containers().get(component)

    def _running(self, component: str) -> bool:
        c = self.container(component)
        return c is not None and c.state in ("running", "paused")

    def _procs(self, component: str) -> list[psutil.Process]:
        c = self.container(component)
        if c is None or c.pid <= 0:
            return []
        try:
            return procs.with_children([psutil.Process(c.pid)])
        except psutil.Error:
            return []

    # --- how pgha reaches the containers ---------------------------------------------------------

    def endpoint(self, place: Place, port: int) -> Endpoint:
        return Endpoint(place.address, port)

    @property
    def reach(self) -> Reach:
        return Reach(self.topo, self.endpoint, _HAProxySockets(self),
                     controller_tls(self.layout.pki) if self.spec.tls else None)

    @functools.cached_property
    def pki(self) -> Pki | None:
        """The cluster's certificates (made or completed on first use) when it has TLS."""
        return pki.ensure(self.layout.pki, self.topo) if self.spec.tls else None

    def netns_path(self, component: str) -> str | None:
        """The container's network namespace as the engine reports it (new after each restart),
        or None when it is not running."""
        c = self.container(component)
        if c is None or c.state not in ("running", "paused"):
            return None
        path = self.engine.run("inspect", "--format", "{{.NetworkSettings.SandboxKey}}", c.name).strip()
        return path or None

    # --- lifecycle -------------------------------------------------------------------------------

    def _base_image(self) -> str | None:
        """What the Containerfile builds FROM: PGHA_BASE_IMAGE, else the local base when it
        exists, else None (the Containerfile's public default, which needs a registry)."""
        chosen = os.environ.get("PGHA_BASE_IMAGE")
        if chosen:
            if not IMAGE_REFERENCE.fullmatch(chosen):
                # It is written into .env, one variable per line.
                raise BackendError(f"PGHA_BASE_IMAGE: {chosen!r} is not an image reference")
            return chosen
        return LOCAL_BASE_IMAGE if self.engine.image_exists(LOCAL_BASE_IMAGE) else None

    def _image_exists(self) -> bool:
        return self.engine.image_exists(image_name(self.spec))

    def preflight(self) -> None:
        if not self.engine.answers():
            raise BackendError(f"{self.engine.name} does not answer: {SETUP_HINT}"
                               + (", or start dockerd" if self.engine.name == "docker" else ""))
        if os.geteuid() != 0:
            raise BackendError(f"the compose backend needs root (rootful {self.engine.name})")
        self.engine.compose_command()
        running = self.containers()
        p = self.spec.ports
        published = [("HAProxy read-write entrypoint", p.entrypoint_rw, "haproxy"),
                     ("HAProxy stats", p.stats, "haproxy")]
        if p.entrypoint_ro is not None:
            published.append(("HAProxy read-only entrypoint", p.entrypoint_ro, "haproxy"))
        published += [(f"postgres of {n}", p.postgres[i], n) for i, n in enumerate(self.spec.node_names)]
        published += [("PgBouncer", port, place.name) for place, port in zip(self.topo.poolers, p.pooler, strict=True)]
        for what, port, component in published:
            c = running.get(component)
            if c is not None and c.state in ("running", "paused"):
                continue
            if procs.port_in_use(self.spec.host, port):
                raise BackendError(f"port {port} ({what}) is already in use on {self.spec.host}")
        self._check_network()

    def _check_network(self) -> None:
        """Another network on the subnet, in either engine, would make the engine refuse ours or
        (the other engine's bridge) take its traffic on this machine: say which one."""
        mine = f"{project_name(self.spec)}_cluster"
        for engine in (Engine(name) for name in ENGINES):
            if not engine.answers():
                continue
            taken = engine.networks_on(self.spec.network, other_than=mine if engine.name == self.engine.name else "")
            if taken:
                raise BackendError(f"network: {self.spec.network} is already used by {engine.name} network "
                                   f"{taken[0]!r}; set `network:` in pgha.yaml to another /24 inside 198.18.0.0/15")

    def host_layout(self, name: str) -> Layout:
        """The cluster's directory: `conf/` holds the Patroni configs patronictl uses from here."""
        return self.layout

    def materialize(self) -> None:
        for d in (self.layout.root, self.layout.conf, self.layout.logs, self.layout.runs, self.dir):
            d.mkdir(parents=True, exist_ok=True)
        self.layout.root.chmod(0o700)
        write_files(self.dir, render_compose(self.spec, self.secrets, self._base_image(), self.pki))
        hand_tls_to_containers(self.dir)
        # For `pgha ctl` on this machine: the containers' Patroni config with the credentials
        # patronictl needs (0600, never in the image), and pgha's own certificate.
        write_files(self.layout.root, [
            RenderedFile(self.layout.patroni_config(node).relative_to(self.layout.root),
                         to_yaml(self._ctl_config(node)), 0o600)
            for node in self.spec.node_names])

    def _ctl_config(self, node: str) -> dict[str, object]:
        cfg = patroni_config(self.topo, CONTAINER_LAYOUT, self.secrets, node, self.spec.tls)
        if self.spec.tls:
            ours = controller_tls(self.layout.pki)
            cfg["ctl"] = {**cfg["ctl"], "cacert": ours.ca, "certfile": ours.cert, "keyfile": ours.key}
            dcs = cfg[dcs_component(self.spec).patroni_key]
            for key, path in (("cacert", ours.ca), ("cert", ours.cert), ("key", ours.key)):
                if key in dcs:
                    dcs[key] = path
        return cfg

    def start(self) -> None:
        self.materialize()
        if self.cancelled():
            raise KeyboardInterrupt
        if not self._image_exists():
            log.info(f"building image {image_name(self.spec)} (once; `up` reuses it)")
            # The engine's own build, not the compose program's: the same Containerfile and
            # context, whichever of the three compose programs then starts the containers.
            base = self._base_image()
            self.engine.build(image_name(self.spec), self.dir, CONTAINERFILE,
                              {"BASE_IMAGE": base} if base else {}, log=self.layout.log("build"),
                              timeout=BUILD_TIMEOUT)
        if self.cancelled():
            raise KeyboardInterrupt
        log.info(f"starting containers ({' '.join(Path(a).name for a in self.engine.compose_command())} up -d "
                 f"on {self.engine.name})")
        self._compose("up", "-d", "--no-build", log=self.layout.log("compose"), timeout=UP_TIMEOUT)
        def down() -> list[str]:
            return [name for name in self._service if not self._running(name)]

        if wait_until(lambda: not down(), 30, every=0.3, cancelled=self.cancelled):
            return
        self.log_files()
        not_running = down() or list(self._service)
        name = not_running[0]
        raise BackendError(f"container of {name} is not running (see {self.layout.log(name)})",
                           tail(self.layout.log(name)))

    def stop(self) -> None:
        """Keep the logs, stop the containers in the one stop order (pgha.model.topology.stop_order),
        then remove them and the network; the volumes stay for the next `up`."""
        if not self.dir.exists():
            return
        with contextlib.suppress(BackendError):
            self.log_files()
        if self.containers():
            stop_in_order(self, self.topo, probe_leader(self.reach, self.spec.node_names))
        self._compose("down", log=self.layout.log("compose"), timeout=UP_TIMEOUT)

    def purge(self) -> None:
        """Also remove what outlives the containers: the volumes (the cluster's data) and the
        cluster's images (the base image stays)."""
        if self.dir.exists():
            self._compose("down", "-v", log=self.layout.log("compose"), timeout=UP_TIMEOUT)
        images = self.engine.images(f"localhost/pgha-{self.spec.name}")
        if images:
            self.engine.run("rmi", "--force", *images, check=False)

    def stop_components(self, names: list[str]) -> None:
        self._stop(names)

    def _stop(self, components: list[str]) -> None:
        names = [c.name for comp, c in self.containers().items() if comp in components]
        if names:
            # A paused container cannot take SIGTERM; the engine's stop unpauses it first.
            self.engine.run("stop", "-t", str(STOP_TIMEOUT), *names, timeout=STOP_TIMEOUT + 30, check=False)

    def components(self) -> list[ComponentState]:
        found = self.containers()
        out = []
        for place in self.topo.places:
            name, kind = place.name, place.kind
            c = found.get(name)
            running = c is not None and c.state in ("running", "paused")
            pids: tuple[int, ...] = ()
            if c is not None and c.pid > 0:
                with contextlib.suppress(psutil.Error):
                    pids = tuple(p.pid for p in procs.with_children([psutil.Process(c.pid)]))
            out.append(ComponentState(name, kind, running, pids, self.layout.log(name)))
        return out

    def log_files(self) -> dict[str, Path]:
        """Each container's log, written under logs/; a node's splits into Patroni's
        (`<node>.log`) and PostgreSQL's (`postgresql-<node>.log`), as the local backend has them."""
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        found = self.containers()
        for place in self.topo.places:
            name = place.name
            c = found.get(name)
            text = ""
            if c is not None:
                text = self.engine.logs(c.name)
            if place in self.topo.nodes:
                patroni, postgres = split_node_log(text)
                pg_file = self.layout.logs / f"postgresql-{name}.log"
                if c is not None:
                    self.layout.log(name).write_text(patroni)
                    pg_file.write_text(postgres)
                files[name] = self.layout.log(name)
                files[f"postgresql-{name}"] = pg_file
            else:
                if c is not None:
                    self.layout.log(name).write_text(text)
                files[name] = self.layout.log(name)
        return files

    # --- faults ----------------------------------------------------------------------------------

    def _require(self, component: str) -> Container:
        c = self.container(component)
        if c is None:
            raise BackendError(f"{component} has no container (is the cluster up?)")
        return c

    def stop_node(self, node: str) -> None:
        self.engine.run("stop", "-t", str(STOP_TIMEOUT), self._require(node).name, timeout=STOP_TIMEOUT + 30)

    def start_node(self, node: str) -> None:
        self.start_component(node)

    def start_component(self, name: str) -> None:
        c = self._require(name)
        if c.state == "paused":
            self.engine.run("unpause", c.name)
            return
        if c.state == "running":
            return
        try:
            self.engine.run("start", c.name)
        except BackendError:
            # The restart policy may be starting it at this very moment.
            if not self._wait_running(name, 10):
                raise

    def _wait_running(self, name: str, timeout: float, other_than: int = 0) -> bool:
        def running() -> bool:
            c = self.container(name)
            return c is not None and c.state == "running" and c.pid > 0 and c.pid != other_than

        return bool(wait_until(running, timeout, every=0.1))

    def restart_node(self, node: str) -> None:
        self.stop_node(node)
        self.start_node(node)

    def kill_node(self, node: str) -> None:
        """SIGKILL through the engine: a container killed that way stays down (node-loss)."""
        self.kill_component(node)

    def kill_component(self, name: str) -> None:
        c = self._require(name)
        if c.state in ("running", "paused"):
            self.engine.run("kill", "--signal", "KILL", c.name, check=False)
        wait_until(lambda: not self._running(name), 10, every=0.05)

    def crash_node(self, node: str) -> None:
        """SIGKILL to the container's init (Patroni) from outside, as a crash: PostgreSQL dies with
        it (the kernel kills a PID namespace with its init), and the engine's restart policy
        (`restart: always`) brings the container back, as it would after a real crash."""
        c = self._require(node)
        if c.pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.pid, signal.SIGKILL)
        if not self._wait_running(node, RESTART_TIMEOUT, other_than=c.pid):
            raise BackendError(f"the restart policy did not bring {node} back in {RESTART_TIMEOUT:.0f} s")

    def freeze_node(self, node: str) -> None:
        self.engine.run("pause", self._require(node).name)

    def thaw_node(self, node: str) -> None:
        c = self._require(node)
        if c.state == "paused":
            self.engine.run("unpause", c.name)

    def _postmaster(self, node: str) -> psutil.Process | None:
        c = self.container(node)
        if c is None or c.pid <= 0:
            return None
        try:
            for child in psutil.Process(c.pid).children():
                if Path(child.cmdline()[0]).name == "postgres":
                    return child
        except (psutil.Error, IndexError):
            return None
        return None


    def stop_dcs_member(self, member: int) -> None:
        self.engine.run("stop", "-t", "10", self._require(member_name(member)).name, timeout=40)

    def start_dcs_member(self, member: int) -> None:
        self.start_component(member_name(member))

    def node_pids(self, node: str) -> list[int]:
        return [p.pid for p in self._procs(node)]

    # --- certificates (CertificateRenewal) ------------------------------------------------------
    # Each service's certificate lives on this machine in tls/<service>/, mounted read-only into
    # its container: replacing a file there (a rename, its owner kept) is what the container sees
    # at once. Then each component takes it up as it would on a host of its own.

    def renew_certificates(self) -> list[str]:
        if not self.spec.tls:
            raise BackendError(f"cluster {self.spec.name!r} runs without TLS: it has no certificates to renew")
        log.info("issuing new certificates from the cluster's CA")
        self.__dict__["pki"] = renewed = pki.renew(self.layout.pki, self.topo)
        for f in tls_files(topology(compose_spec(self.spec)), renewed):
            replace_file(self.dir / f.path, f.text, f.mode)
        hand_tls_to_containers(self.dir)
        found = self.containers()
        done: list[str] = []
        for place in self.topo.places:  # the DCS first: a restarted member is back before the rest
            c = found.get(place.name)
            if c is None or c.state != "running":
                continue
            how = component_for(self.spec, place).certificate_reload
            log.info(f"{place.name} takes its new certificate: {how.value}")
            self._take_up_certificate(place, c, how)
            done.append(f"{place.name} ({how.value})")
        return done

    def _take_up_certificate(self, place: Place, c: Container, how: CertificateReload) -> None:
        if how is CertificateReload.SIGHUP:
            # The container's init is the program itself (Patroni, PgBouncer), which handles SIGHUP.
            self.engine.run("kill", "--signal", "HUP", c.name)
        elif how is CertificateReload.RESTART:
            self.engine.run("restart", "-t", "10", c.name, timeout=60)
            if place.kind == "dcs" and not wait_until(lambda: all(m.healthy for m in dcs_members(self.reach)),
                                                      RESTART_TIMEOUT * 4, every=0.5):
                raise BackendError(f"DCS member {place.name} did not rejoin a healthy quorum after its restart")
        elif how is CertificateReload.RUNTIME_API:
            pem = CONTAINER_LAYOUT.tls_pem(place.name)  # the path HAProxy knows, inside its container
            text = (self.dir / TLS_DIR / self._service[place.name] / pem.name).read_text()
            replace_certificate(_HAProxySockets(self)[place.name], pem, text, place.name)

    # --- network faults (NetworkFaults) ----------------------------------------------------------
    # The netns backend's nftables rules, inside the container's own network namespace. Not
    # `docker network disconnect`: that takes the container's address away from pgha too, and a
    # drill must keep watching an isolated primary to tell whether it stopped taking writes. So a
    # fault cuts the container off from the cluster's other containers (both ways), and this
    # machine (the network's gateway, where pgha watches from) still reaches it, as pgha reaches
    # a netns host through its loopback. A container the engine restarts gets a new namespace,
    # without the rules.

    def _netns(self, component: str) -> str:
        path = self.netns_path(component)
        if path is None:
            raise BackendError(f"{component} is not running: no network to cut")
        return path

    def _others(self, component: str) -> list[str]:
        return [p.address for p in self.topo.hosts if p.name != component]

    def isolate(self, component: str) -> None:
        """Cut a container off from every other container of the cluster."""
        link_faults.cut_from(self._netns(component), self._others(component))

    def cut(self, component: str, others: list[str]) -> None:
        link_faults.cut_from(self._netns(component), [self.topo.place(o).address for o in others])

    def partition(self, minority: list[str]) -> None:
        for name, others in partition_rules(minority, [p.name for p in self.topo.hosts]).items():
            self.cut(name, others)

    def lose_packets(self, component: str, percent: int) -> None:
        link_faults.lose(self._netns(component), percent, among=self._others(component))

    def lag(self, component: str, ms: int) -> None:
        link_faults.delay(self._netns(component), ms)

    def heal_network(self) -> None:
        for place in self.topo.hosts:
            path = self.netns_path(place.name)
            if path is not None:
                link_faults.heal(path)

