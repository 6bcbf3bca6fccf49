"""A handle on one named cluster: its stored state (directory, spec, secrets, backend) and its
lifecycle (up, down, waiting for health), each operation's decisions in its pgha.log.

This is what the CLI, the checks, the planned operations (pgha.ops) and the drill talk to; how
clients connect is `cluster.clients` (pgha.net.clients).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import psycopg

from pgha.backends.base import Backend, Backups
from pgha.backends.factory import make_backend, settle
from pgha.backends.stopping import stop_in_order
from pgha.errors import BackendError, PghaError, first_line, tail
from pgha.model.backup_info import BackupInfoError, RepoInfo, parse_info
from pgha.model.spec import Spec, SpecError
from pgha.model.topology import backups_from_standby, topology
from pgha.net.clients import Clients
from pgha.net.probe import ClusterState, HealthProblem, health_problem, observe
from pgha.net.probe import leader as probe_leader
from pgha.net.reach import Reach
from pgha.security import pki
from pgha.security.app_role import ensure_app_role
from pgha.security.dcs_auth import ensure_authentication
from pgha.security.service_user import service_account
from pgha.state import procs
from pgha.state import secrets as secrets_store
from pgha.state.files import write_file
from pgha.state.journal import journal
from pgha.state.layout import Layout, default_home
from pgha.state.ownership import (
    NotOursError,
    cluster_dir,
    create_cluster_dir,
    is_ours,
    owned_cluster_dir,
    remove_cluster_dir,
)
from pgha.state.secrets import APP_USER, Secrets
from pgha.waiting import wait_until

log = logging.getLogger(__name__)

HEALTHY_TIMEOUT = 180.0
# pgBackRest's short commands (stanza-create, info, check) and a whole backup.
PGBACKREST_TIMEOUT = 120.0
BACKUP_TIMEOUT = 6 * 3600.0


def _never() -> bool:
    return False


@contextlib.contextmanager
def _interrupt_as_flag() -> Iterator[threading.Event]:
    """Within the block, Ctrl-C (and SIGTERM) only set a flag that the caller checks between
    steps: a KeyboardInterrupt raised at an arbitrary point could land between starting a
    process and recording it, and leak that process."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        flag.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


P = ParamSpec("P")
R = TypeVar("R")


def journaled(method: Callable[Concatenate[Cluster, P], R]) -> Callable[Concatenate[Cluster, P], R]:
    """Run an operation with its decisions going to the cluster's pgha.log, ending with why it
    gave up when it did."""
    @functools.wraps(method)
    def run(self: Cluster, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.journal():
            try:
                return method(self, *args, **kwargs)
            except PghaError as e:
                log.error(f"{method.__name__} gave up: {str(e).splitlines()[0] if str(e) else e.__class__.__name__}")
                raise
            except KeyboardInterrupt:
                log.error(f"{method.__name__} interrupted")
                raise
    return run


class ClusterError(PghaError):
    """One line for the user, and optionally the tail of the log that explains it."""


@dataclass(frozen=True)
class UpResult:
    changed: bool
    state: ClusterState
    seconds: float


class Cluster:
    def __init__(self, name: str, home: Path | None = None) -> None:
        self.name = name
        self.home = home or default_home()
        try:
            # The name is checked before any path is built from it.
            self.layout = Layout(cluster_dir(self.home, name))
        except NotOursError as e:
            raise ClusterError(str(e)) from None
        self._spec: Spec | None = None
        self._backend: Backend | None = None
        # The primary this handle saw last: a change of it is a decision worth a line.
        self._known_leader: str | None = None
        self.cancelled: Callable[[], bool] = _never

    # --- stored state ----------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        """A cluster pgha created (its marker) with a spec; anything else is not one."""
        return self.layout.spec_file.exists() and is_ours(self.home, self.name)

    @property
    def spec(self) -> Spec:
        if self._spec is None:
            if not self.exists:
                raise ClusterError(f"no cluster named {self.name!r} (run `pgha up --name {self.name}`)")
            try:
                self._spec = Spec.model_validate_json(self.layout.spec_file.read_text())
            except ValueError:
                raise ClusterError(f"{self.layout.spec_file} is damaged; `pgha down --purge` it") from None
        return self._spec

    @property
    def secrets(self) -> Secrets:
        try:
            return secrets_store.load(self.layout.secrets_file)
        except FileNotFoundError:
            # New passwords would not match the cluster's: say so instead of inventing them.
            raise ClusterError(f"{self.layout.secrets_file} is missing; the cluster's passwords are lost") from None

    def backend(self) -> Backend:
        # Built once per handle: a backend may ask its engine for state (compose: podman) on
        # every call, and waits call it several times a second.
        if self._backend is None:
            self._backend = make_backend(self.spec, self.layout, self.secrets, service_account())
        return self._backend

    @property
    def reach(self) -> Reach:
        return self.backend().reach

    def replace_spec(self, spec: Spec) -> None:
        """Store a changed spec of this cluster (a restore in place names its own repository as the
        source of the bootstrap, then drops it); the next backend is built from it."""
        if not self.exists or spec.name != self.name:
            raise ClusterError(f"no cluster named {spec.name!r} to change")
        self._save_spec(spec)

    def _save_spec(self, spec: Spec) -> None:
        try:
            create_cluster_dir(self.home, self.name)
        except NotOursError as e:
            raise ClusterError(f"{e}; pick another --name") from None
        self.layout.spec_file.write_text(spec.model_dump_json(indent=2))
        self._spec = spec
        self._backend = None

    # --- lifecycle -------------------------------------------------------------------------------

    def state(self) -> ClusterState:
        return observe(self.reach, self.secrets.pooler_admin_password)

    def running_components(self) -> list[str]:
        return [c.name for c in self.backend().components() if c.running]

    def journal(self) -> contextlib.AbstractContextManager[None]:
        """pgha's decisions about this cluster go to its pgha.log while the block runs."""
        return journal(self.layout.journal, lambda: is_ours(self.home, self.name))

    @journaled
    def up(self, requested: Spec | None, timeout: float = HEALTHY_TIMEOUT, secrets: Secrets | None = None) -> UpResult:
        """Start the cluster, or do nothing if it is up and healthy. `secrets`: a new cluster's
        passwords when they must be another's (a restored cluster keeps its source's)."""
        start = time.monotonic()
        if requested is not None:
            try:
                requested = settle(requested, self.spec if self.exists else None)
            except BackendError as e:
                raise ClusterError(str(e)) from None
        if self.exists:
            if requested is not None and requested != self.spec:
                raise ClusterError(
                    f"cluster {self.name!r} already exists with a different spec "
                    f"(profile {self.spec.profile}); run `pgha down --name {self.name} --purge` first "
                    f"or pick another --name"
                )
            spec = self.spec
        else:
            if requested is None:
                raise SpecError("no spec given")
            spec = requested
        if self.exists and len(self.running_components()) == len(self.backend().components()):
            state = self.state()
            if health_problem(spec, state) is None:
                # Not the DCS's authentication: the running Patroni may have been started without
                # credentials (an older pgha); `pgha check` says so, and down + up turns it on.
                self._ensure_app_role()
                self._ensure_backups(state)
                log.info("every component runs and the cluster is healthy: nothing to change")
                return UpResult(False, state, time.monotonic() - start)
        fresh = not self.exists
        if fresh:
            try:
                # Refuse a taken port before writing anything.
                make_backend(spec, self.layout, Secrets("", "", "", ""), service_account()).preflight()
            except BackendError as e:
                raise ClusterError(str(e)) from None
            self._save_spec(spec)
            if secrets is not None:
                secrets_store.save(self.layout.secrets_file, secrets)
            secrets_store.load_or_create(self.layout.secrets_file)
            on = f" on {spec.engine}" if spec.engine else ""
            log.info(f"new cluster {self.name!r}: profile {spec.profile}, backend {spec.backend}{on}, {spec.nodes} "
                     f"node(s), {spec.dcs.members} {spec.dcs.kind} member(s), TLS {'on' if spec.tls else 'off'}; "
                     f"its spec and passwords are written to {self.layout.root}")
        backend = self.backend()
        # What ran before this call is not this call's to stop, whatever happens below.
        running_before = {c.name for c in backend.components() if c.running}
        with _interrupt_as_flag() as interrupted:
            backend.cancelled = interrupted.is_set
            self.cancelled = interrupted.is_set
            try:
                backend.preflight()
                backend.start()
                self._write_client_pgpass()
                log.info("waiting for one leader, streaming replicas and HAProxy routing")
                state = self.wait_healthy(timeout)
                log.info(f"healthy after {time.monotonic() - start:.1f} s: {_routing_sentence(state)}")
                if interrupted.is_set():
                    raise KeyboardInterrupt
                self._ensure_dcs_authentication()
                self._ensure_app_role()
            except KeyboardInterrupt:
                self._undo_start(backend, running_before)
                raise
            except BackendError as e:
                self._undo_start(backend, running_before)
                raise ClusterError(str(e), e.log_tail) from None
            except ClusterError as e:
                stopped = self._undo_start(backend, running_before)
                if running_before and not stopped:
                    raise ClusterError(f"{e}; it was running before, so nothing was stopped "
                                       f"(`pgha status --name {self.name}` shows more)", e.log_tail) from None
                raise
            finally:
                self.cancelled = _never
                backend.cancelled = _never
        # After the try: a backup that fails leaves a healthy cluster running, and says so.
        self._ensure_backups(state)
        return UpResult(True, state, time.monotonic() - start)

    def _undo_start(self, backend: Backend, running_before: set[str]) -> list[str]:
        """Stop what this call started, and nothing else; returns what was stopped."""
        log.warning("stopping what this call started, and nothing that ran before it")
        if not running_before:
            backend.stop()  # all of it was this call's, the netns network included
            return [c.name for c in backend.components()]
        started = {c.name for c in backend.components() if c.running} - running_before
        leader = probe_leader(self.reach, self.spec.node_names)
        return sorted(stop_in_order(backend, topology(self.spec), leader, only=started))

    def _ensure_dcs_authentication(self) -> None:
        """Backends that start Patroni themselves secure the DCS before it starts; this covers
        the others (compose starts everything at once; Patroni, which has its credentials from
        the start, logs in once authentication is on)."""
        try:
            ensure_authentication(self.spec, self.reach.dcs_client(0), self.secrets)
        except OSError as e:
            raise ClusterError(f"the DCS did not answer while pgha secured it: {e}") from None

    def _ensure_app_role(self) -> None:
        try:
            with psycopg.connect(self.clients.entrypoint_dsn(), connect_timeout=5, autocommit=True) as conn:
                ensure_app_role(conn, self.secrets.app_password)
        except psycopg.Error as e:
            raise ClusterError(f"could not create the application role {APP_USER!r}: {first_line(e)}") from None

    # --- backups ---------------------------------------------------------------------------------

    def backups_backend(self) -> Backups:
        backend = self.backend()
        if not self.spec.backup.enabled or not isinstance(backend, Backups):
            raise ClusterError(f"cluster {self.name!r} keeps no backups (backup.enabled is off in its spec)")
        return backend

    def pgbackrest(self, node: str, args: list[str], timeout: float = PGBACKREST_TIMEOUT) -> str:
        """pgBackRest's output on the node, or a ClusterError with its complaint."""
        try:
            result = self.backups_backend().pgbackrest(node, args, timeout)
        except BackendError as e:
            raise ClusterError(str(e)) from None
        if result.returncode != 0:
            raise ClusterError(f"pgbackrest {args[0]} on {node} failed: {result.error_line}")
        return result.stdout

    def repo_info(self, node: str) -> RepoInfo:
        try:
            return parse_info(self.pgbackrest(node, ["info", "--output=json"]), self.spec.name)
        except BackupInfoError as e:
            raise ClusterError(str(e)) from None

    def backup(self, primary: str, kind: str = "full") -> None:
        """`pgbackrest backup` of `kind`. With a repository host that knows several nodes, from a
        standby (pgBackRest copies the files from a replica and asks only the primary to start and
        stop the backup, sparing its disks); when no standby can be backed up from, from the
        primary, and the journal says so."""
        try:
            self.pgbackrest(primary, ["backup", f"--type={kind}"], BACKUP_TIMEOUT)
        except ClusterError as e:
            if not self.backs_up_from_standby or "standby" not in str(e):
                raise
            log.info(f"no standby could be backed up from ({e}): backing up from the primary {primary} instead")
            self.pgbackrest(primary, ["backup", f"--type={kind}", "--no-backup-standby"], BACKUP_TIMEOUT)

    @property
    def backs_up_from_standby(self) -> bool:
        return backups_from_standby(topology(self.spec))

    def _ensure_backups(self, state: ClusterState) -> None:
        """The repository's stanza, and the first full backup, so that point-in-time recovery
        works from the first minute."""
        if not self.spec.backup.enabled or state.leader is None:
            return
        primary = state.leader.name
        try:
            self.pgbackrest(primary, ["stanza-create"])
            if not self.spec.backup.first_backup or self.repo_info(primary).backups:
                return
            log.info(f"taking the first full backup from {primary}, so that point-in-time recovery works from now on")
            began = time.monotonic()
            self.backup(primary)
            log.info(f"the first full backup is in the repository after {time.monotonic() - began:.1f} s")
        except ClusterError as e:
            raise ClusterError(f"the cluster is up and healthy, but {e} "
                               f"(`pgha backup --name {self.name}` tries again)") from None

    def wait_healthy(self, timeout: float = HEALTHY_TIMEOUT) -> ClusterState:
        problem: HealthProblem | None = HealthProblem("not observed yet")

        def healthy() -> ClusterState | None:
            nonlocal problem
            dead = [c for c in self.backend().components() if not c.running]
            if dead:
                c = dead[0]
                raise ClusterError(f"{c.name} is not running (see {c.log})", tail(c.log))
            state = self.state()
            if state.leader is not None and state.leader.name != self._known_leader:
                self._known_leader = state.leader.name
                log.info(f"{self._known_leader} holds the leader key: it is the primary")
            problem = health_problem(self.spec, state)
            return None if problem else state

        state = wait_until(healthy, timeout, every=0.25, cancelled=self.cancelled)
        if state is not None:
            return state
        log_file = self._log_for(problem.component if problem else None)
        raise ClusterError(f"cluster not healthy after {timeout:.0f} s: {problem} (see {log_file})", tail(log_file))

    def _log_for(self, component: str | None) -> Path:
        """The log of the component a health problem names (the first node's when none)."""
        logs = {c.name: c.log for c in self.backend().components()}
        return logs.get(component or "", logs.get(self.spec.node_names[0], self.layout.log(self.spec.node_names[0])))

    def certificates_expire(self) -> tuple[str, datetime.datetime] | None:
        """(which, when) of the cluster's certificate that expires first; None without TLS."""
        if not self.spec.tls:
            return None
        return pki.load(self.layout.pki).earliest_expiry

    @journaled
    def down(self, purge: bool = False) -> list[str]:
        """Stop everything; returns what was running. With purge, delete the cluster's directory,
        and only a directory pgha created (pgha.state.ownership)."""
        if purge:
            try:
                remove = self._purgeable()
            except NotOursError as e:
                raise ClusterError(f"refusing to delete: {e}; nothing was deleted") from None
            if remove is not None:
                remove()
                return []
        if not self.exists:
            raise ClusterError(f"no cluster named {self.name!r}")
        backend = self.backend()
        was_running = [c.name for c in backend.components() if c.running]
        backend.stop()
        left = [c.name for c in backend.components() if c.pids]
        if left:
            raise ClusterError(f"could not stop: {', '.join(left)}")
        if purge:
            # Data kept outside the cluster's directory (compose: volumes) goes first.
            try:
                backend.purge()
            except BackendError as e:
                raise ClusterError(str(e), e.log_tail) from None
            remove_cluster_dir(self.home, self.name)
        return was_running

    def _purgeable(self) -> Callable[[], None] | None:
        """Raise NotOursError unless the directory is pgha's. A cluster whose spec is missing or
        damaged cannot be stopped by its backend: it is removed right away (returned as a
        callable) once no process recorded in its pidfiles is alive; None: stop it first."""
        if not self.layout.root.exists() and not self.layout.root.is_symlink():
            raise NotOursError(f"no cluster named {self.name!r}")
        owned_cluster_dir(self.home, self.name)
        try:
            _ = self.spec
            return None
        except ClusterError:
            pass
        alive = [p.pid for f in sorted(self.layout.run.glob("*.pid")) if (p := procs.read_pidfile(f))]
        if alive:
            raise NotOursError(f"its spec is unreadable and processes it started still run "
                               f"(pids {', '.join(map(str, alive))}); stop them first")
        return lambda: remove_cluster_dir(self.home, self.name)

    # --- how to connect --------------------------------------------------------------------------

    @property
    def clients(self) -> Clients:
        """How clients connect: logins, connection strings, the multi-host URI."""
        return Clients(self.spec, self.secrets, self.reach, self.layout.pki / "ca.crt")

    @property
    def client_pgpass(self) -> Path:
        return self.layout.root / "pgpass"

    def _write_client_pgpass(self) -> None:
        write_file(self.client_pgpass, "\n".join(self.clients.pgpass_lines()) + "\n")


def _routing_sentence(state: ClusterState) -> str:
    """What a healthy state says about who takes writes (health_problem found nothing wrong)."""
    if state.leader is None:
        return "no primary"
    replicas = [m.name for m in state.members if m.name != state.leader.name]
    streaming = f"{', '.join(replicas)} stream from it" if replicas else "no replicas"
    return f"{state.leader.name} is the primary, {streaming}, and every HAProxy routes writes to it"


def list_clusters(home: Path | None = None) -> list[str]:
    """The clusters pgha created under home (default: PGHA_HOME): a marker and a spec each."""
    home = home or default_home()
    if not home.is_dir():
        return []
    return sorted(p.name for p in home.iterdir() if (p / "spec.json").is_file() and is_ours(home, p.name))
