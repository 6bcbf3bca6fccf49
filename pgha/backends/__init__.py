"""Backends: where a cluster's processes run. The registry (pgha.backends.registry) maps a
spec's backend name to one; nothing else tells backends apart by name."""

from __future__ import annotations

from pgha.backends.registry import BackendKind, UnknownBackendError, backend_kind, make_backend

__all__ = ["BackendKind", "UnknownBackendError", "backend_kind", "make_backend"]
