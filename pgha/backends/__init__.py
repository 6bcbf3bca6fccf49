"""Backends: where a cluster's processes run. `make_backend` picks the one a spec names."""

from __future__ import annotations

from pgha.backends.base import Backend
from pgha.layout import Layout
from pgha.procs import RunAs
from pgha.secrets import Secrets
from pgha.spec import Spec


def make_backend(spec: Spec, layout: Layout, secrets: Secrets, run_as: RunAs) -> Backend:
    # Imported here: each backend pulls in only what it needs.
    if spec.backend == "netns":
        from pgha.backends.netns import NetnsBackend

        return NetnsBackend(spec, layout, secrets, run_as)
    if spec.backend == "compose":
        from pgha.backends.compose import ComposeBackend

        return ComposeBackend(spec, layout, secrets, run_as)
    from pgha.backends.local import LocalBackend

    return LocalBackend(spec, layout, secrets, run_as)
