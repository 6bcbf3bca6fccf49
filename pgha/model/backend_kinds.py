"""Every backend by name, and what pgha must know about one before (or without) building it.

The one place that tells backends apart by name: the spec's validation, the topology, the
client URIs and the CLI ask a `BackendKind` what they need instead of comparing names. These are
traits only; building a backend is `pgha.backends.make_backend`, which maps the same names to
classes. Adding a backend is one module with its class, one entry here and one there.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgha.errors import BackendError


class UnknownBackendError(BackendError):
    """A backend name no entry of the registry has."""


@dataclass(frozen=True)
class BackendKind:
    name: str
    # Every component is a host of its own: its own address and the standard ports (pgha.model.topology).
    hosts_of_their_own: bool
    # ... in a network namespace pgha creates and names (otherwise the engine's, or none).
    named_namespaces: bool
    # Clients on this machine reach each node's PostgreSQL directly, on these addresses: the
    # multi-host URI then lists the nodes; otherwise it lists every HAProxy host's entrypoint.
    # "node_host" (the nodes' loopback address), "host" (published on the clients' address) or
    # None (no direct way: the nodes live in namespaces of their own).
    direct_nodes_on: str | None
    # How many HAProxy hosts the default profile gets where the user did not say.
    default_haproxy_hosts: int = 1
    # Traffic between its hosts crosses a network: the default profile encrypts it (spec.tls).
    # On one machine's loopback it may stay plain (a user can still ask for TLS).
    tls_by_default: bool = False
    # Its components are containers of a container engine (spec.engine).
    runs_containers: bool = False
    # pgBackRest's repository is where this backend's nodes can write it (a directory of the
    # cluster's on this machine), so WAL archiving and backups can be on (spec.backup).
    keeps_backups: bool = False
    # The fencing guard can kill a node's processes from outside it (a power switch's job on real
    # machines), so a lost primary is replaced without waiting out Patroni's ttl (spec.fencing).
    fences: bool = False
    # pgha runs a Prometheus for the cluster there, scraping it and evaluating its alert rules
    # (spec.monitoring).
    monitors: bool = False


BACKENDS: dict[str, BackendKind] = {b.name: b for b in (
    BackendKind("local", hosts_of_their_own=False, named_namespaces=False, direct_nodes_on="node_host",
                keeps_backups=True, fences=True, monitors=True),
    BackendKind("netns", hosts_of_their_own=True, named_namespaces=True,
                direct_nodes_on=None, default_haproxy_hosts=2, tls_by_default=True, keeps_backups=True,
                fences=True, monitors=True),
    # Containers are hosts of their own too, at fixed addresses on the compose network; their
    # namespaces are the engine's (Backend.netns_path). Each node's PostgreSQL is published on
    # loopback, as the lab had it.
    BackendKind("compose", hosts_of_their_own=True, named_namespaces=False, direct_nodes_on="host",
                tls_by_default=True, runs_containers=True),
)}


def find(name: object) -> BackendKind | None:
    """The backend of that name, or None (for validation, which words its own message)."""
    return BACKENDS.get(name) if isinstance(name, str) else None


def backend_kind(name: str) -> BackendKind:
    kind = find(name)
    if kind is None:
        raise UnknownBackendError(f"backend: {name!r} is not one of {', '.join(BACKENDS)}")
    return kind
