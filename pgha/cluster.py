"""A handle on one named cluster: its directory, spec, secrets, backend and probe.

This is what the CLI, the checks and the drill talk to.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

from pgha import secrets as secrets_store
from pgha.backends import make_backend
from pgha.backends.base import Backend, BackendError, Progress
from pgha.dial import PgTarget
from pgha.errors import PghaError, tail
from pgha.layout import Layout, default_home
from pgha.probe import ClusterState, health_problem, observe
from pgha.reach import Reach
from pgha.secrets import SUPERUSER, Secrets
from pgha.service_user import service_account
from pgha.spec import Spec, SpecError

HEALTHY_TIMEOUT = 180.0


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
        self.layout = Layout((home or default_home()) / name)
        self._spec: Spec | None = None
        self._cancelled: Callable[[], bool] = _never

    # --- stored state ----------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.layout.spec_file.exists()

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
        return secrets_store.load(self.layout.secrets_file)

    def backend(self) -> Backend:
        return make_backend(self.spec, self.layout, self.secrets, service_account())

    @property
    def reach(self) -> Reach:
        return self.backend().reach

    def _save_spec(self, spec: Spec) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.layout.spec_file.write_text(spec.model_dump_json(indent=2))
        self._spec = spec

    # --- lifecycle -------------------------------------------------------------------------------

    def state(self) -> ClusterState:
        return observe(self.reach)

    def running_components(self) -> list[str]:
        return [c.name for c in self.backend().components() if c.running]

    def up(self, requested: Spec | None, progress: Progress,
           timeout: float = HEALTHY_TIMEOUT) -> UpResult:
        start = time.monotonic()
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
                return UpResult(False, state, time.monotonic() - start)
        fresh = not self.exists
        if fresh:
            try:
                # Refuse a taken port before writing anything.
                make_backend(spec, self.layout, Secrets("", "", "", ""), service_account()).preflight()
            except BackendError as e:
                raise ClusterError(str(e)) from None
            self._save_spec(spec)
            secrets_store.load_or_create(self.layout.secrets_file)
        backend = self.backend()
        with _interrupt_as_flag() as interrupted:
            backend.cancelled = interrupted.is_set
            self._cancelled = interrupted.is_set
            try:
                backend.preflight()
                backend.start(progress)
                self._write_client_pgpass()
                progress("waiting for one leader, streaming replicas and HAProxy routing")
                state = self.wait_healthy(timeout)
                if interrupted.is_set():
                    raise KeyboardInterrupt
            except KeyboardInterrupt:
                backend.stop()
                raise
            except BackendError as e:
                backend.stop()
                raise ClusterError(str(e), e.log_tail) from None
            except ClusterError:
                backend.stop()
                raise
            finally:
                self._cancelled = _never
        return UpResult(True, state, time.monotonic() - start)

    def wait_healthy(self, timeout: float = HEALTHY_TIMEOUT,
                     until: Callable[[ClusterState], str | None] | None = None) -> ClusterState:
        check = until or (lambda s: health_problem(self.spec, s))
        deadline = time.monotonic() + timeout
        problem = "not observed yet"
        state: ClusterState | None = None
        while time.monotonic() < deadline:
            if self._cancelled():
                raise KeyboardInterrupt
            dead = [c for c in self.backend().components() if not c.running]
            if dead:
                c = dead[0]
                raise ClusterError(f"{c.name} is not running (see {c.log})", tail(c.log))
            state = self.state()
            problem = check(state) or ""
            if not problem:
                return state
            time.sleep(0.25)
        raise ClusterError(f"cluster not healthy after {timeout:.0f} s: {problem}",
                           tail(self._log_for(problem)))

    def _log_for(self, problem: str) -> Path:
        for c in self.backend().components():
            if c.name in problem:
                return c.log
        if "HAProxy" in problem:
            return self.layout.log("haproxy")
        return self.layout.log(self.spec.node_names[0])

    def down(self, purge: bool = False) -> list[str]:
        """Stop everything; returns what was running. With purge, delete the cluster's directory."""
        if not self.exists:
            if purge and self.layout.root.exists():
                shutil.rmtree(self.layout.root)
                return []
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
            shutil.rmtree(self.layout.root)
        return was_running

    # --- how to connect --------------------------------------------------------------------------

    @property
    def client_pgpass(self) -> Path:
        return self.layout.root / "pgpass"

    def _write_client_pgpass(self) -> None:
        s, spec = self.secrets, self.spec
        addresses = [(spec.host, spec.ports.entrypoint_rw), *self.multihost_hosts()]
        addresses += [(self.reach.postgres(n).host, self.reach.postgres(n).port) for n in spec.node_names]
        if spec.ports.entrypoint_ro is not None:
            addresses.append((spec.host, spec.ports.entrypoint_ro))
        lines = [f"{h}:{p}:*:{SUPERUSER}:{s.superuser_password}" for h, p in addresses]
        fd = os.open(self.client_pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def dsn(self, port: int, dbname: str = "postgres", host: str | None = None, **extra: str) -> str:
        return make_conninfo(host=host or self.spec.host, port=port, dbname=dbname, user=SUPERUSER,
                             password=self.secrets.superuser_password, **extra)

    def entrypoint_dsn(self, readonly: bool = False, **extra: str) -> str:
        port = self.spec.ports.entrypoint_ro if readonly else self.spec.ports.entrypoint_rw
        if port is None:
            raise ClusterError(f"cluster {self.name!r} has no read-only entrypoint (profile "
                               f"{self.spec.profile})")
        return self.dsn(port, **extra)

    def entrypoint(self, readonly: bool = False, **extra: str) -> PgTarget:
        return PgTarget(self.entrypoint_dsn(readonly, **extra))

    def node_target(self, node: str, **extra: str) -> PgTarget:
        ep = self.reach.postgres(node)
        return PgTarget(self.dsn(ep.port, host=ep.host, **extra), ep.netns)

    def multihost_hosts(self) -> list[tuple[str, int]]:
        """What a multi-host URI lists: every node where pgha can reach the nodes directly,
        otherwise every HAProxy host's entrypoint (no single proxy to lose)."""
        spec = self.spec
        if spec.backend == "local":
            return [(spec.node_host, p) for p in spec.ports.postgres]
        if spec.backend == "compose":
            # Each node's PostgreSQL is published on loopback, as the lab had it.
            return [(spec.host, p) for p in spec.ports.postgres]
        return [(spec.host, p) for p in (spec.ports.entrypoint_rw, *spec.ports.entrypoint_rw_more)]

    def multihost_uri(self, with_password: bool = False) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.multihost_hosts())
        cred = SUPERUSER + (f":{self.secrets.superuser_password}" if with_password else "")
        return f"postgresql://{cred}@{hosts}/postgres?target_session_attrs=read-write&connect_timeout=2"

    def list_clusters(self) -> list[str]:
        home = self.layout.root.parent
        return sorted(p.name for p in home.iterdir() if (p / "spec.json").exists()) if home.exists() else []
