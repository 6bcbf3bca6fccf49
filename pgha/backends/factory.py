"""A spec's backend name -> the backend that runs its cluster."""

from __future__ import annotations

from pgha.backends.base import Backend
from pgha.backends.compose import ComposeBackend
from pgha.backends.engine import detect
from pgha.backends.local import LocalBackend
from pgha.backends.netns import NetnsBackend
from pgha.model.backend_kinds import BACKENDS, backend_kind
from pgha.model.spec import Spec
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets

IMPLEMENTATIONS: dict[str, type[LocalBackend] | type[NetnsBackend] | type[ComposeBackend]] = {
    "local": LocalBackend, "netns": NetnsBackend, "compose": ComposeBackend,
}
assert IMPLEMENTATIONS.keys() == BACKENDS.keys(), "every backend kind has one implementation"


def make_backend(spec: Spec, layout: Layout, secrets: Secrets, run_as: RunAs) -> Backend:
    """The backend the spec names; an unknown name is refused, never replaced by another."""
    backend: Backend = IMPLEMENTATIONS[backend_kind(spec.backend).name](spec, layout, secrets, run_as)
    return backend


def settle(spec: Spec, stored: Spec | None = None) -> Spec:
    """The spec with what `up` chooses once and stores filled in: a container cluster's engine
    (the stored one's, else the one installed and answering, Docker first)."""
    if not backend_kind(spec.backend).runs_containers or spec.engine is not None:
        return spec
    if stored is not None:
        return spec.model_copy(update={"engine": stored.engine})
    return spec.model_copy(update={"engine": detect().name})
