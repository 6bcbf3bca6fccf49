"""Every backend by name, and what pgha must know about one before (or without) building it.

The one place that tells backends apart by name: the spec's validation, the topology, the
client URIs and the CLI ask a `BackendKind` what they need instead of comparing names. Adding a
backend is one module with its class plus one entry here.

Imports nothing from the spec or the backends at module level: the spec's validation uses this
module, and each backend pulls in only what it needs when it is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgha.errors import BackendError

if TYPE_CHECKING:
    from pgha.backends.base import Backend
    from pgha.layout import Layout
    from pgha.procs import RunAs
    from pgha.secrets import Secrets
    from pgha.spec import Spec


class UnknownBackendError(BackendError):
    """A backend name no entry of the registry has."""


@dataclass(frozen=True)
class BackendKind:
    name: str
    # "module:Class" of the backend, imported when one is built.
    implementation: str
    # Every component is a host of its own: its own address and the standard ports (pgha.topology).
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

    def build(self, spec: Spec, layout: Layout, secrets: Secrets, run_as: RunAs) -> Backend:
        module, _, cls = self.implementation.partition(":")
        backend: Backend = getattr(importlib.import_module(module), cls)(spec, layout, secrets, run_as)
        return backend

    def multihost_hosts(self, spec: Spec, readonly: bool = False) -> list[tuple[str, int]]:
        """What a libpq multi-host URI lists: every node where clients reach the nodes directly,
        otherwise every HAProxy host's entrypoint (no single proxy to lose); for reads, the
        read-only entrypoint first."""
        p = spec.ports
        if self.direct_nodes_on is not None:
            host = spec.node_host if self.direct_nodes_on == "node_host" else spec.host
            return [(host, port) for port in p.postgres]
        ro = [p.entrypoint_ro] if readonly and p.entrypoint_ro is not None else []
        return [(spec.host, port) for port in (*ro, p.entrypoint_rw, *p.entrypoint_rw_more)]


BACKENDS: dict[str, BackendKind] = {b.name: b for b in (
    BackendKind("local", "pgha.backends.local:LocalBackend", hosts_of_their_own=False, named_namespaces=False,
                direct_nodes_on="node_host"),
    BackendKind("netns", "pgha.backends.netns:NetnsBackend", hosts_of_their_own=True, named_namespaces=True,
                direct_nodes_on=None, default_haproxy_hosts=2, tls_by_default=True),
    # Containers are hosts of their own too, at fixed addresses on the compose network; their
    # namespaces are the engine's (Backend.netns_path). Each node's PostgreSQL is published on
    # loopback, as the lab had it.
    BackendKind("compose", "pgha.backends.compose:ComposeBackend", hosts_of_their_own=True,
                named_namespaces=False, direct_nodes_on="host", tls_by_default=True),
)}


def find(name: object) -> BackendKind | None:
    """The backend of that name, or None (for validation, which words its own message)."""
    return BACKENDS.get(name) if isinstance(name, str) else None


def backend_kind(name: str) -> BackendKind:
    kind = find(name)
    if kind is None:
        raise UnknownBackendError(f"backend: {name!r} is not one of {', '.join(BACKENDS)}")
    return kind


def make_backend(spec: Spec, layout: Layout, secrets: Secrets, run_as: RunAs) -> Backend:
    """The backend the spec names; an unknown name is refused, never replaced by another."""
    return backend_kind(spec.backend).build(spec, layout, secrets, run_as)
