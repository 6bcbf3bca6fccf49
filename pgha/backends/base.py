"""The seam between a cluster and where its processes run (this machine, namespaces, containers).

Small protocols, as Jepsen's `db` has Kill, Pause and LogFiles: every backend has a lifecycle and
logs (`Backend`); the faults are protocols of their own, and a drill asks for the one a fault
needs (`pgha.drill.faults`), so a backend implements what it can do, not one wide interface.
The CLI, the checks, the probe and the drill use only these, so a new backend is one new module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pgha.net.reach import Reach
from pgha.state.layout import Layout


@dataclass(frozen=True)
class ComponentState:
    name: str  # "dcs0", "node1", "haproxy"
    kind: str  # "dcs" | "node" | "haproxy"
    running: bool
    pids: tuple[int, ...]
    log: Path


class Lifecycle(Protocol):
    kind: str
    # Checked between steps of start(); True makes it raise KeyboardInterrupt (Ctrl-C as a flag).
    cancelled: Callable[[], bool]

    @property
    def reach(self) -> Reach:
        """How pgha on this machine reaches each component (probes, checks, drills)."""

    def host_layout(self, name: str) -> Layout:
        """The directory tree a component's configuration and data live in."""

    def netns_path(self, component: str) -> str | None:
        """The network namespace a component's sockets live in, or None for pgha's own."""

    def preflight(self) -> None:
        """Raise BackendError if a binary is missing or a port is taken (before starting anything)."""

    def start(self) -> None:
        """Start every component that is not running yet."""

    def stop_components(self, names: list[str]) -> None:
        """Stop these components gracefully, together (a step of pgha.model.topology.stop_order)."""

    def stop(self) -> None:
        """Stop every component in the one stop order; nothing of this cluster is left running."""

    def purge(self) -> None:
        """Delete what the cluster keeps outside its directory (compose: volumes, images)."""

    def components(self) -> list[ComponentState]: ...


class Logs(Protocol):
    def log_files(self) -> dict[str, Path]:
        """Each component's log on this machine (compose: copied out of the engine first)."""


class Backend(Lifecycle, Logs, Protocol):
    """What every backend does: run the cluster and keep its logs."""


@runtime_checkable
class CertificateRenewal(Protocol):
    def renew_certificates(self) -> list[str]:
        """Issue every host's certificate anew and have the running components take them up
        without a restart; the components that did. BackendError where the cluster has no TLS."""


# --- faults for drills (a node is addressed by its Patroni member name) ------------------------


@runtime_checkable
class NodeFaults(Protocol):
    """Kill and start a node, as Jepsen's Kill."""

    def stop_node(self, node: str) -> None:
        """Graceful: SIGTERM to Patroni, which stops PostgreSQL; waits for both to exit."""

    def kill_node(self, node: str) -> None:
        """SIGKILL Patroni and PostgreSQL of a node at once (the host keeps running)."""

    def crash_node(self, node: str) -> None:
        """SIGKILL a node and let its supervisor bring it back, as systemd's Restart= or a
        container's restart policy would."""

    def start_node(self, node: str) -> None: ...

    def restart_node(self, node: str) -> None: ...

    def node_pids(self, node: str) -> list[int]: ...


@runtime_checkable
class PauseFaults(Protocol):
    """Freeze and thaw a node, as Jepsen's Pause."""

    def freeze_node(self, node: str) -> None:
        """SIGSTOP every process of the node (a hung host)."""

    def thaw_node(self, node: str) -> None: ...


@runtime_checkable
class PostgresFaults(Protocol):
    """Faults of PostgreSQL's own processes, Patroni left running."""

    def kill_postgres(self, node: str) -> None:
        """SIGKILL the postmaster only; Patroni stays up."""

    def freeze_walsenders(self, node: str) -> bool:
        """SIGSTOP a primary's WAL senders (streaming to its replicas pauses); False if none."""

    def thaw_walsenders(self, node: str) -> None: ...


@runtime_checkable
class ComponentFaults(Protocol):
    """Kill and start any component: a node, a DCS member, an HAProxy, a pooler."""

    def stop_dcs_member(self, member: int) -> None: ...

    def start_dcs_member(self, member: int) -> None: ...

    def kill_component(self, name: str) -> None:
        """SIGKILL every process of any component (a node, a DCS member, an HAProxy)."""

    def start_component(self, name: str) -> None: ...


@runtime_checkable
class NetworkFaults(Protocol):
    """Faults only a backend whose components are hosts on a network can inject (netns)."""

    def isolate(self, component: str) -> None:
        """Cut a host off from every other host."""

    def cut(self, component: str, others: list[str]) -> None:
        """Cut a host off from the given hosts only, both ways."""

    def partition(self, minority: list[str]) -> None:
        """Split the hosts in two: `minority` against everyone else."""

    def lose_packets(self, component: str, percent: int) -> None: ...

    def lag(self, component: str, ms: int) -> None: ...

    def heal_network(self) -> None:
        """Restore every link."""


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """What went wrong, in the program's own words: its first ERROR line (pgBackRest warns
        about what it tried before it gives up), else its first line of complaint."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        errors = [line for line in text if line.startswith("ERROR")]
        return errors[0] if errors else text[0] if text else f"exit status {self.returncode}"


@runtime_checkable
class Backups(Protocol):
    """pgBackRest run beside a node's files, as the user PostgreSQL runs as (spec.backup)."""

    def pgbackrest(self, node: str, args: list[str], timeout: float) -> CommandResult:
        """`pgbackrest --config=<the node's> --stanza=<the cluster's> ARGS`; raises BackendError
        only when it could not be run at all (not found, timed out)."""

    def break_archive(self) -> None:
        """Make the repository unwritable for the cluster's processes (a full or lost backup
        disk): archive-push fails, the primary keeps the WAL and keeps acknowledging writes."""

    def heal_archive(self) -> None:
        """Make the repository writable again."""

    def set_aside_data(self, node: str, instance: str) -> bool:
        """Move the node's data directory (the node stopped) to the cluster's scratch instance
        `instance`, whole and unchanged; False when it had none."""

    def put_back_data(self, node: str, instance: str) -> bool:
        """Undo set_aside_data (the node stopped, its data directory gone); False when nothing
        was set aside under that name."""

    def remove_set_aside(self, instance: str) -> None:
        """Delete what set_aside_data moved to the scratch instance `instance`."""


@dataclass(frozen=True)
class GuardReport:
    """A fencing guard as pgha sees it: whether its process runs, and what it last wrote about
    itself (pgha.ops.fencing_guard: active, armed, the leader it watches, what it fenced)."""

    name: str
    running: bool
    state: dict[str, Any] | None
    age_s: float | None  # how long ago it wrote that


@runtime_checkable
class Fencing(Protocol):
    """The fencing guards beside the HAProxies (spec.fencing)."""

    def guard_reports(self) -> list[GuardReport]: ...

