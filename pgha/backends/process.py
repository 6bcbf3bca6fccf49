"""The process backend: every component is a process pgha starts from its unit and supervises.

What differs between running on this machine's loopback (local) and as hosts of their own in
network namespaces (netns) is the Launcher's: where a component's files live, which programs
its units name, how pgha reaches it, what the machine must provide, and how a unit's process
is started. The start order, the stop order and the signals for faults are the same for both.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import psutil

from pgha.backends.base import CommandResult, ComponentState, GuardReport
from pgha.backends.postmaster import PostmasterFaults
from pgha.backends.stopping import stop_in_order
from pgha.components.base import CertificateReload, Component, NodeFence, Programs, Site, Unit
from pgha.components.kinds import component_for, components
from pgha.components.render import render_component
from pgha.errors import BackendError, tail
from pgha.model.spec import Spec
from pgha.model.topology import Place, Topology, topology
from pgha.model.topology import dcs_member_name as member_name
from pgha.net.dial import Endpoint
from pgha.net.probe import dcs_members, node_rest, replace_certificate
from pgha.net.probe import leader as probe_leader
from pgha.net.reach import Reach
from pgha.render import RenderedFile
from pgha.render.backup import PGBACKREST_BIN, pgbackrest_argv
from pgha.render.guard import guard_state_path
from pgha.security import pki
from pgha.security.dcs_auth import ensure_authentication
from pgha.security.pki import Pki, controller_tls
from pgha.state import ownership, procs
from pgha.state.files import replace_file, write_file
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets
from pgha.waiting import wait_until

log = logging.getLogger(__name__)

# What pgBackRest runs only where the repository is, once it is on a host of its own.
REPOSITORY_HOST_COMMANDS = frozenset({"backup", "stanza-create", "stanza-upgrade", "expire", "info"})

DCS_START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
LEADER_START_TIMEOUT = 60.0


class Launcher(Protocol):
    """Where a process backend's components live and how one unit's process starts."""

    # The backend's name (pgha.model.backend_kinds).
    kind: str
    # Where the units' programs are (Programs.on_this_machine, or a real machine's units').
    programs: Programs

    def host_layout(self, layout: Layout, component: str) -> Layout:
        """The directory tree a component's files live in, inside the cluster directory."""

    def render(self, site: Site) -> list[RenderedFile]:
        """Every file a component needs on its host."""

    def endpoint(self, place: Place, port: int) -> Endpoint:
        """How pgha on this machine dials a component's port."""

    def netns_path(self, place: Place) -> str | None: ...

    def preflight(self) -> None:
        """Raise BackendError if the machine lacks what this launcher needs."""

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int, str]]:
        """(address, port, what) this machine must have free before the component starts."""

    def prepare(self, topo: Topology) -> None:
        """Before the first start: what every component's network needs."""

    def teardown(self, topo: Topology) -> None:
        """After the last stop."""

    def launch(self, unit: Unit, place: Place, *, log: Path, pidfile: Path, cwd: Path, run_as: RunAs) -> None:
        """Start the unit's process, detached, its pid in pidfile."""


class ProcessBackend(PostmasterFaults):
    def __init__(self, spec: Spec, layout: Layout, secrets: Secrets, run_as: RunAs, launcher: Launcher) -> None:
        self.spec = spec
        self.layout = layout
        self.secrets = secrets
        self.run_as = run_as
        self.launcher = launcher
        self.kind = launcher.kind
        self.topo: Topology = topology(spec)
        # Set by a caller that turned Ctrl-C into a flag: long waits give up when it says so.
        self.cancelled: Callable[[], bool] = lambda: False

    # --- what runs -------------------------------------------------------------------------------

    def _dcs_names(self) -> list[str]:
        return [member_name(i) for i in range(self.spec.dcs.members)]

    def _haproxy_names(self) -> list[str]:
        return [p.name for p in self.topo.haproxies]

    def _pooler_names(self) -> list[str]:
        return [p.name for p in self.topo.poolers]

    def _guard_names(self) -> list[str]:
        return [p.name for p in self.topo.guards]

    def _backup_server_names(self) -> list[str]:
        return [p.name for p in (*self.topo.repository, *self.topo.backup_agents)]

    def _component(self, name: str) -> Component:
        return component_for(self.spec, self.topo.place(name))

    def host_layout(self, name: str) -> Layout:
        """The directory a component's configuration and data live in."""
        return self.launcher.host_layout(self.layout, name)

    def endpoint(self, place: Place, port: int) -> Endpoint:
        return self.launcher.endpoint(place, port)

    @property
    def reach(self) -> Reach:
        return Reach(self.topo, self.endpoint,
                     {name: self.host_layout(name).haproxy_socket for name in self._haproxy_names()},
                     controller_tls(self.layout.pki) if self.spec.tls else None)

    def netns_path(self, component: str) -> str | None:
        return self.launcher.netns_path(self.topo.place(component))

    def site(self, name: str) -> Site:
        sockets = tuple(str(self.host_layout(h).haproxy_socket) for h in self._haproxy_names())
        return Site(self.topo, self.topo.place(name), self.host_layout(name), self.secrets, self.launcher.programs,
                    self.pki, sockets, self.layout.backup_repo if self.spec.backup.enabled else None,
                    tuple((p.name, self.host_layout(p.name)) for p in self.topo.places), self._fences())

    def _fences(self) -> tuple[NodeFence, ...]:
        """Every host is on this machine: a guard fences a node as a power switch would, by killing
        the processes pgha's pid file and the postmaster's name."""
        if not self.spec.fencing.enabled:
            return ()
        return tuple(NodeFence(n, str(self.layout.pidfile(n)), str(self._pgdata(n))) for n in self.spec.node_names)

    @functools.cached_property
    def pki(self) -> Pki | None:
        """The cluster's certificates (made or completed here, on first use) when it has TLS."""
        return pki.ensure(self.layout.pki, self.topo) if self.spec.tls else None

    def unit(self, name: str) -> Unit:
        """How a component is started: its unit's ExecStart and Environment."""
        return render_component(self.site(name))[1]

    def _main_proc(self, name: str) -> psutil.Process | None:
        return procs.read_pidfile(self.layout.pidfile(name))

    def _pgdata(self, node: str) -> Path:
        return self.host_layout(node).pgdata(node)

    def _node_procs(self, node: str) -> list[psutil.Process]:
        self.spec.node_index(node)
        return self._procs_of(node)

    def _mains_of(self, name: str) -> list[psutil.Process | None]:
        place = self.topo.place(name)
        detached = self._component(name).detached_data_dir(self.host_layout(name), place)
        # Patroni detaches its postmaster: it is found through its data directory.
        return [self._main_proc(name), *([procs.postmaster(detached)] if detached else [])]

    def _procs_of(self, name: str) -> list[psutil.Process]:
        return procs.with_children(self._mains_of(name))

    # --- lifecycle -------------------------------------------------------------------------------

    def preflight(self) -> None:
        self.launcher.preflight()
        programs = self.launcher.programs
        for component in components(self.spec):
            for what, (path, how) in component.needs(programs).items():
                if not path.exists():
                    raise BackendError(f"{what} not found at {path}: install it with `{how}`")
        if self.spec.backup.enabled and not Path(PGBACKREST_BIN).exists():
            raise BackendError(f"pgbackrest not found at {PGBACKREST_BIN}: install it with "
                               f"`apt-get install pgbackrest` (or turn backups off: --no-backup)")
        self._check_ports()

    def _check_ports(self) -> None:
        for place in self.topo.places:
            if self._main_proc(place.name) is not None:
                continue
            for host, port, what in self.launcher.ports(self.topo, place):
                if procs.port_in_use(host, port):
                    raise BackendError(f"port {port} ({what}) is already in use on {host}")

    def rendered(self) -> list[RenderedFile]:
        files: list[RenderedFile] = []
        for place in self.topo.places:
            files += [f for f in self.launcher.render(self.site(place.name)) if f not in files]
        return files

    def materialize(self) -> None:
        """Write the rendered files and hand the cluster directory to the service account."""
        for d in self.layout.dirs():
            d.mkdir(parents=True, exist_ok=True)
        self.layout.root.chmod(0o750 if self.run_as.user is None else 0o755)
        layouts = {self.host_layout(p.name) for p in self.topo.places}
        for lay in layouts:
            for d in lay.dirs():
                d.mkdir(parents=True, exist_ok=True)
        for f in self.rendered():
            f.path.parent.mkdir(parents=True, exist_ok=True)
            write_file(f.path, f.text, f.mode)
        for node in self.spec.node_names:
            self.host_layout(node).wal_archive(node).mkdir(parents=True, exist_ok=True)
        if self.spec.backup.enabled:
            self._make_backup_dirs()
        # The service account owns everything but the secrets file, which stays the caller's.
        for lay in sorted(layouts, key=lambda x: str(x.root)):
            lay.root.chmod(0o750 if self.run_as.user is None else 0o755)
            for d in (lay.conf, lay.data, lay.logs, lay.run):
                procs.ensure_owner(d, self.run_as)
            lay.data.chmod(0o700)
        procs.ensure_owner(self.layout.logs, self.run_as)

    def _make_backup_dirs(self) -> None:
        """The repository (only its owner may read it: it holds the whole database), and each
        node's lock and log directories for pgBackRest."""
        if not self.layout.backup_repo.is_dir():
            self.layout.backup_repo.mkdir(parents=True)
            self.layout.backup.chmod(0o700)
            procs.ensure_owner(self.layout.backup, self.run_as)
        for name in (*self.spec.node_names, *self._backup_server_names()):
            lay = self.host_layout(name)
            for d in (lay.pgbackrest_run(name), lay.logs / f"pgbackrest-{name}"):
                d.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str) -> None:
        if self.cancelled():
            raise KeyboardInterrupt
        self.launcher.launch(self.unit(name), self.topo.place(name), log=self.layout.log(name),
                             pidfile=self.layout.pidfile(name), cwd=self.host_layout(name).root,
                             run_as=self.run_as)

    def _check_started(self, name: str) -> None:
        if self.cancelled():
            raise KeyboardInterrupt
        if self._main_proc(name) is None:
            log_file = self.layout.log(name)
            raise BackendError(f"{name} exited right after start (see {log_file})", tail(log_file))

    def start(self) -> None:
        self.launcher.prepare(self.topo)
        self.materialize()
        dcs_started = False
        for name in self._dcs_names():
            if self._main_proc(name) is None:
                log.info(f"starting DCS member {name} ({self.spec.dcs.kind})")
                self._spawn(name)
                dcs_started = True
        if dcs_started:
            self._wait_dcs()
        # Before any Patroni starts: no moment in which the cluster's keys are open to anyone.
        try:
            ensure_authentication(self.spec, self.reach.dcs_client(0), self.secrets)
        except OSError as e:
            raise BackendError(f"the DCS did not answer while pgha secured it: {e}") from None
        # Before any node: a primary archives from its first minute, and a node may be restored.
        for name in self._backup_server_names():
            if self._main_proc(name) is None:
                log.info(f"starting pgBackRest's TLS server {name}")
                self._spawn(name)
        first = self._restart_leader()
        if first is not None and self._main_proc(first) is None:
            # On a restart the last primary goes first, so that a replica with less WAL cannot
            # win the leader race while the primary is still starting.
            log.info(f"starting Patroni node {first} (the last primary) first")
            self._spawn(first)
            self._wait_role(first, "primary")
        for node in self.spec.node_names:
            if self._main_proc(node) is None:
                log.info(f"starting Patroni node {node}")
                self._spawn(node)
        for name in self._haproxy_names():
            if self._main_proc(name) is None:
                log.info(f"starting HAProxy {name}" if name != "haproxy" else "starting HAProxy")
                self._spawn(name)
        for name in self._pooler_names():
            if self._main_proc(name) is None:
                log.info(f"starting PgBouncer {name}")
                self._spawn(name)
        for name in self._guard_names():
            if self._main_proc(name) is None:
                log.info(f"starting fencing guard {name}: a primary silent for "
                         f"{self.spec.fencing.fence_after_s:g} s, confirmed by its replicas, is fenced")
                self._spawn(name)
        for place in self.topo.monitors:
            if self._main_proc(place.name) is None:
                log.info(f"starting Prometheus: it scrapes every component and evaluates the cluster's alert rules "
                         f"(web port {self.topo.monitor_port})")
                self._spawn(place.name)
        time.sleep(0.3)
        for place in self.topo.places:
            self._check_started(place.name)

    def renew_certificates(self) -> list[str]:
        """Every host's certificate issued anew by the cluster's CA and taken up by the running
        components: etcd reads its files at every handshake; Patroni on SIGHUP re-creates its
        REST listener when the certificate changed and reloads PostgreSQL, which re-reads its
        own; HAProxy's stats certificate is replaced through its runtime API. A DCS kind that
        reads its certificate only at start (ZooKeeper) is restarted one member at a time, each
        back in the quorum before the next. What each component did, one phrase each."""
        if not self.spec.tls:
            raise BackendError(f"cluster {self.spec.name!r} runs without TLS: it has no certificates to renew")
        log.info("issuing new certificates from the cluster's CA")
        self.__dict__["pki"] = pki.renew(self.layout.pki, self.topo)
        tls_dirs = {self.host_layout(p.name).tls for p in self.topo.places}
        for f in self.rendered():
            if f.path.parent in tls_dirs:
                replace_file(f.path, f.text, f.mode)
        done: list[str] = []
        for place in self.topo.places:  # the DCS first: a restarted member is back before the rest
            if self._main_proc(place.name) is None:
                continue
            how = component_for(self.spec, place).certificate_reload
            log.info(f"{place.name} takes its new certificate: {how.value}")
            self._take_up_certificate(place, how)
            done.append(f"{place.name} ({how.value})")
        return done

    def _take_up_certificate(self, place: Place, how: CertificateReload) -> None:
        name = place.name
        if how is CertificateReload.SIGHUP:
            procs.send([p for p in [self._main_proc(name)] if p is not None], signal.SIGHUP)
        elif how is CertificateReload.RESTART:
            self._terminate(name)
            self._spawn(name)
            if place.kind == "dcs":
                self._wait_dcs()  # one member at a time, each back in the quorum before the next
        elif how is CertificateReload.RUNTIME_API:
            pem = self.host_layout(name).tls_pem(name)
            replace_certificate(self.host_layout(name).haproxy_socket, pem, pem.read_text(), name)

    def _restart_leader(self) -> str | None:
        try:
            node = self.layout.last_leader_file.read_text().strip()
        except FileNotFoundError:
            return None
        if node in self.spec.node_names and (self._pgdata(node) / "PG_VERSION").exists():
            return node
        return None

    def _wait_role(self, node: str, role: str) -> None:
        def has_role() -> bool:
            self._check_started(node)
            _, body = node_rest(self.reach, node)
            return isinstance(body, dict) and body.get("role") == role

        if wait_until(has_role, LEADER_START_TIMEOUT, cancelled=self.cancelled):
            log.info(f"{node} runs as {role}")
        else:
            log.warning(f"{node} did not become {role} in {LEADER_START_TIMEOUT:.0f} s; starting the others")

    def _wait_dcs(self) -> None:
        log.info("waiting for the DCS to form a quorum")

        def quorate() -> bool:
            for name in self._dcs_names():
                self._check_started(name)
            return all(m.healthy for m in dcs_members(self.reach))

        if wait_until(quorate, DCS_START_TIMEOUT, cancelled=self.cancelled):
            log.info(f"the DCS has a quorum: {len(self._dcs_names())} of {len(self._dcs_names())} members healthy")
            return
        bad = next((m for m in dcs_members(self.reach) if not m.healthy), None)
        name = bad.name if bad else self._dcs_names()[0]
        raise BackendError(f"DCS member {name} did not become healthy in {DCS_START_TIMEOUT:.0f} s",
                           tail(self.layout.log(name)))

    def stop(self) -> None:
        leader = probe_leader(self.reach, self.spec.node_names)
        if leader is not None:
            self.layout.last_leader_file.write_text(leader)
        stop_in_order(self, self.topo, leader)
        for place in self.topo.places:
            self.layout.pidfile(place.name).unlink(missing_ok=True)
        self.launcher.teardown(self.topo)

    def stop_components(self, names: list[str]) -> None:
        # Fencing guards first: a node stopped on purpose is not one to fence.
        guards = [n for n in names if n in self._guard_names()]
        if guards:
            procs.terminate([p for n in guards for p in self._mains_of(n)], STOP_TIMEOUT)
        nodes = [n for n in names if n in self.spec.node_names]
        if nodes:
            self._stop_nodes(nodes)
        others = [n for n in names if n not in nodes and n not in guards]
        if others:
            procs.terminate([p for n in others for p in self._mains_of(n)], STOP_TIMEOUT)

    def _stop_nodes(self, nodes: list[str]) -> None:
        # SIGTERM to Patroni and a fast shutdown (SIGINT) to its postmaster at once: a down
        # need not wait for a smart shutdown or for a sync standby to be released.
        procs.terminate([self._main_proc(n) for n in nodes], STOP_TIMEOUT,
                        also=[(procs.postmaster(self._pgdata(n)), signal.SIGINT) for n in nodes])

    def _terminate(self, name: str) -> None:
        procs.terminate(self._mains_of(name), STOP_TIMEOUT)

    def components(self) -> list[ComponentState]:
        out = []
        for place in self.topo.places:
            ps = self._procs_of(place.name)
            main = self._main_proc(place.name)
            out.append(ComponentState(place.name, place.kind, main is not None, tuple(p.pid for p in ps),
                                      self.layout.log(place.name)))
        return out

    def log_files(self) -> dict[str, Path]:
        files = {p.name: self.layout.log(p.name) for p in self.topo.places}
        for node in self.spec.node_names:
            files[f"postgresql-{node}"] = self.host_layout(node).logs / f"postgresql-{node}.log"
        return files

    # --- fencing ---------------------------------------------------------------------------------

    def guard_reports(self) -> list[GuardReport]:
        out = []
        for name in self._guard_names():
            path = guard_state_path(self.host_layout(name), name)
            try:
                state = json.loads(path.read_text())
                age: float | None = max(0.0, time.time() - float(state.get("updated", 0)))
            except (OSError, ValueError, TypeError, AttributeError):
                state, age = None, None
            out.append(GuardReport(name, self._main_proc(name) is not None,
                                   state if isinstance(state, dict) else None, age))
        return out

    # --- backups ---------------------------------------------------------------------------------

    def pgbackrest(self, node: str, args: list[str], timeout: float) -> CommandResult:
        self.spec.node_index(node)
        lay = self.host_layout(node)
        # No PGPASSWORD: the node's own pgpass file, readable by the service account only.
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PGPASSFILE": str(lay.pgbackrest_pgpass(node))}
        where, config = node, lay.pgbackrest_config(node)
        if self.topo.repository and args and args[0] in REPOSITORY_HOST_COMMANDS:
            # With a repository host, pgBackRest runs these there, reaching the nodes through the
            # servers beside them.
            where = self.topo.repository[0].name
            config = self._component(where).config_path(self.host_layout(where), self.topo.place(where))
        argv = pgbackrest_argv(config, self.spec, *args)
        try:
            result = procs.run_as_account(argv, run_as=self.run_as, env=env, timeout=timeout,
                                          netns=self.topo.place(where).netns)
        except FileNotFoundError:
            raise BackendError(f"pgbackrest not found at {PGBACKREST_BIN}: install it with `apt-get install "
                               f"pgbackrest`") from None
        except subprocess.TimeoutExpired:
            raise BackendError(f"pgbackrest {' '.join(args)} on {node} did not finish in {timeout:.0f} s") from None
        return CommandResult(result.returncode, result.stdout, result.stderr)

    def break_archive(self) -> None:
        # Not for root (pgha): for the service account pgBackRest runs as.
        self.layout.backup_repo.chmod(0o000)

    def heal_archive(self) -> None:
        self.layout.backup_repo.chmod(0o750)

    def set_aside_data(self, node: str, instance: str) -> bool:
        self.spec.node_index(node)
        return ownership.set_aside(self.layout.root.parent, self.spec.name, self._pgdata(node), instance)

    def put_back_data(self, node: str, instance: str) -> bool:
        self.spec.node_index(node)
        return ownership.put_back(self.layout.root.parent, self.spec.name, instance, self._pgdata(node))

    def remove_set_aside(self, instance: str) -> None:
        ownership.remove_scratch_dir(self.layout.root.parent, self.spec.name, instance)

    # --- faults ----------------------------------------------------------------------------------

    def stop_node(self, node: str) -> None:
        patroni = self._main_proc(node)
        if patroni is not None:
            procs.send([patroni], signal.SIGCONT)
            procs.send([patroni], signal.SIGTERM)
            procs.wait_gone([patroni], STOP_TIMEOUT)
        # Patroni normally stops its postmaster; one left behind gets a fast shutdown.
        procs.terminate([procs.postmaster(self._pgdata(node))], STOP_TIMEOUT, signal.SIGINT)

    def kill_node(self, node: str) -> None:
        targets = self._node_procs(node)
        procs.kill_now(targets)
        procs.wait_gone(targets, 10)

    def crash_node(self, node: str) -> None:
        # No supervisor process here: pgha restarts the node itself, at once.
        self.kill_node(node)
        self.start_node(node)

    def purge(self) -> None:
        """Everything of a local cluster is inside its directory."""

    def start_node(self, node: str) -> None:
        self.spec.node_index(node)
        if self._main_proc(node) is None:
            self._spawn(node)

    def restart_node(self, node: str) -> None:
        self.stop_node(node)
        self.start_node(node)

    def freeze_node(self, node: str) -> None:
        procs.freeze(self._node_procs(node))

    def thaw_node(self, node: str) -> None:
        procs.thaw(self._node_procs(node))

    def _postmaster(self, node: str) -> psutil.Process | None:
        return procs.postmaster(self._pgdata(node))

    def stop_dcs_member(self, member: int) -> None:
        self._terminate(member_name(member))

    def start_dcs_member(self, member: int) -> None:
        name = member_name(member)
        if self._main_proc(name) is None:
            self._spawn(name)

    def kill_component(self, name: str) -> None:
        targets = self._procs_of(name)
        procs.kill_now(targets)
        procs.wait_gone(targets, 10)

    def start_component(self, name: str) -> None:
        self.topo.place(name)
        if self._main_proc(name) is None:
            self._spawn(name)

    def node_pids(self, node: str) -> list[int]:
        return [p.pid for p in self._node_procs(node)]
